"""``pipeline.distill``: the whole job from Python, with the CLI's defaults and resume rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from data.errors import PipelineError
from data.manifest import MANIFEST
from pipeline import distill
from pipeline.cli import main
from pipeline.distill import default_shards
from stage2_train.layout import TRAIN_CONFIG
from tests.conftest import tiny_corpus_lines

ROOT = Path(__file__).resolve().parents[1]
TINY = {"hidden_size": 16, "batch_size": 8, "threads": 1, "progress": False, "max_steps": 6}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(tiny_corpus_lines(120)) + "\n", encoding="utf-8")
    return path


def run_distill(corpus: Path, out: Path, teacher: Path, **extra) -> object:
    encode = {"shard_size": 40, "progress": False}
    return distill(corpus, out, teacher=str(teacher), encode_options=encode, **TINY, **extra)


def test_distill_encodes_trains_and_returns_the_student(corpus, tmp_path, tiny_teacher_dir):
    out = tmp_path / "student"
    student = run_distill(corpus, out, tiny_teacher_dir)
    shards = default_shards(out)
    assert shards == tmp_path / "student-shards" and (shards / MANIFEST).is_file()
    assert len(list(shards.glob("shard-*.h5"))) == 3
    vectors = student.encode(["the cat runs", "a dog walks"])
    assert vectors.shape == (2, 32) and np.isfinite(vectors).all()
    run = json.loads((out / TRAIN_CONFIG).read_text())
    assert run["max_steps"] == 6 and run["student"]["hidden_size"] == 16


def test_a_second_call_resumes_instead_of_redoing(corpus, tmp_path, tiny_teacher_dir):
    out = tmp_path / "student"
    run_distill(corpus, out, tiny_teacher_dir)
    shard_times = {p: p.stat().st_mtime_ns for p in default_shards(out).glob("shard-*.h5")}
    weights = (out / "model.safetensors").read_bytes()
    again = run_distill(corpus, out, tiny_teacher_dir)
    assert {p: p.stat().st_mtime_ns for p in shard_times} == shard_times
    assert (out / "model.safetensors").read_bytes() == weights
    assert again.encode(["the cat"]).shape == (1, 32)


def test_same_configuration_as_pipeline_train_with_the_same_options(
    corpus, tmp_path, tiny_teacher_dir
):
    api_out = tmp_path / "api"
    run_distill(corpus, api_out, tiny_teacher_dir)
    cli_out = tmp_path / "cli"
    argv = ["train", "--targets", default_shards(api_out), "--out", cli_out, "--hidden-size", "16"]
    argv += ["--batch-size", "8", "--threads", "1", "--no-progress", "--max-steps", "6"]
    result = CliRunner().invoke(main, [str(a) for a in argv])
    assert result.exit_code == 0, result.output
    api, cli = (json.loads((d / TRAIN_CONFIG).read_text()) for d in (api_out, cli_out))
    assert {k: v for k, v in api.items() if k != "out"} == {
        k: v for k, v in cli.items() if k != "out"
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hiden_size": 16}, "unknown option(s) hiden_size"),
        ({"encode_options": {"shard_sise": 4}}, "unknown encode option(s) shard_sise"),
    ],
)
def test_a_misspelt_option_is_refused_before_any_work(
    corpus, tmp_path, tiny_teacher_dir, options, message
):
    out = tmp_path / "student"
    with pytest.raises(PipelineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        distill(corpus, out, teacher=str(tiny_teacher_dir), **options)
    assert not out.exists() and not default_shards(out).exists()


def test_the_example_script_runs(corpus, tmp_path, tiny_teacher_dir):
    out = tmp_path / "example"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(ROOT / "examples" / "distill.py"), str(corpus), str(out)]
    argv += ["--teacher", str(tiny_teacher_dir), "--max-steps", "4", "--hidden-size", "16"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "2 vectors of 32 dims" in result.stdout
    assert (out / "model.safetensors").is_file()
