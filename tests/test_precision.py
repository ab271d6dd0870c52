"""``--precision``: what auto picks, bf16 close to float32, recorded, refused without hardware."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from data import precision as data_precision
from pipeline.cli import main
from stage1_encode.teacher import Teacher
from tests.cli_helpers import refused

needs_bf16 = pytest.mark.skipif(
    not data_precision.cpu_has_native_bf16(), reason="this CPU has no native bfloat16"
)
CPU = torch.device("cpu")


@pytest.fixture
def no_bf16(monkeypatch) -> None:
    monkeypatch.setattr(data_precision, "cpu_has_native_bf16", lambda: False)


@pytest.fixture
def has_bf16(monkeypatch) -> None:
    monkeypatch.setattr(data_precision, "cpu_has_native_bf16", lambda: True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_auto_follows_the_hardware_and_the_measured_gain(has_bf16) -> None:
    assert data_precision.resolve_precision("auto", CPU, "teacher") == "bf16"
    assert data_precision.resolve_precision("auto", CPU, "student") == (
        "bf16" if data_precision.BF16_PAYS_ON_CPU["student"] else "fp32"
    )
    assert data_precision.resolve_precision("fp32", CPU, "teacher") == "fp32"
    assert data_precision.resolve_precision("bf16", CPU, "student") == "bf16"


def test_auto_is_fp32_without_native_bf16(no_bf16) -> None:
    assert data_precision.resolve_precision("auto", CPU, "teacher") == "fp32"


def test_cpu_flags_are_read() -> None:
    data_precision.cpu_has_native_bf16.cache_clear()
    info = Path("/proc/cpuinfo")
    flags = info.read_text() if info.is_file() else ""
    want = "avx512_bf16" in flags or "amx_bf16" in flags
    assert data_precision.cpu_has_native_bf16() is want


def test_encode_bf16_refused_without_native_bf16(no_bf16, tmp_path, tiny_corpus, tiny_teacher_dir):
    out = tmp_path / "shards"
    args = ["encode", tiny_corpus, "--out", out, "--teacher", tiny_teacher_dir, "--device", "cpu"]
    refused([*args, "--precision", "bf16"], "no native bfloat16", untouched=[out, tiny_corpus])


def test_index_bf16_refused_without_native_bf16(no_bf16, tmp_path, tiny_corpus, tiny_teacher_dir):
    out = tmp_path / "index"
    args = ["index", "--model", tiny_teacher_dir, "--corpus", tiny_corpus, "--out", out]
    refused([*args, "--precision", "bf16"], "--precision bf16", untouched=out)


def test_embed_int8_and_bf16_refused(tmp_path, tiny_corpus) -> None:
    out = tmp_path / "vectors.npy"
    args = ["embed", tiny_corpus, "--model", tmp_path, "--out", out, "--int8"]
    refused([*args, "--precision", "bf16"], "exclude each other", untouched=out)


@needs_bf16
def test_bf16_teacher_stays_close_and_is_recorded(tmp_path, tiny_corpus, tiny_teacher_dir) -> None:
    texts = tiny_corpus.read_text().splitlines()
    fp32 = Teacher(str(tiny_teacher_dir))
    fp32.pack_for_inference()
    bf16 = Teacher(str(tiny_teacher_dir), precision="bf16")
    assert bf16.pack_for_inference() > 0
    got, want = bf16.encode(texts), fp32.encode(texts)
    assert got.dtype == np.float32 and not np.array_equal(got, want)
    assert cosines(got, want).min() > 0.999

    out = tmp_path / "shards"
    args = ["encode", tiny_corpus, "--out", out, "--teacher", tiny_teacher_dir, "--device", "cpu"]
    result = CliRunner().invoke(main, [str(a) for a in [*args, "--precision", "bf16"]])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher"]["precision"] == "bf16"
    # vectors of another precision do not go into the same directory
    refused([*args, "--precision", "fp32"], "teacher.precision", untouched=out)


@needs_bf16
def test_auto_resumes_in_the_recorded_precision(tmp_path, tiny_corpus, tiny_teacher_dir) -> None:
    """An fp32 encode resumes under the default ``--precision auto`` (bf16 on this CPU)."""
    out = tmp_path / "shards"
    args = ["encode", tiny_corpus, "--out", out, "--teacher", tiny_teacher_dir, "--device", "cpu"]
    args = [str(a) for a in [*args, "--shard-size", "4"]]
    first = CliRunner().invoke(main, [*args, "--precision", "fp32"])
    assert first.exit_code == 0, first.output
    last = sorted(out.glob("shard-*.h5"))[-1]
    last.unlink()  # as if killed before the last shard
    resumed = CliRunner().invoke(main, args)
    assert resumed.exit_code == 0, resumed.output
    assert "1 shard(s) written" in resumed.output and "fp32" in resumed.output
    assert json.loads((out / "manifest.json").read_text())["teacher"]["precision"] == "fp32"
    assert last.is_file()


@needs_bf16
def test_bf16_student_stays_close(tmp_path, tiny_teacher_dir) -> None:
    from stage3_eval.encoders import load_encoder
    from tests.stage2_helpers import make_tiny_shards, train_cli

    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir)
    assert train_cli(shards, tmp_path / "student", "--max-steps", "3").exit_code == 0
    texts = (tmp_path / "shards-corpus.txt").read_text().splitlines()
    fp32 = load_encoder(str(tmp_path / "student")).encode(texts)
    bf16_encoder = load_encoder(str(tmp_path / "student"), precision="bf16")
    assert bf16_encoder.describe()["precision"] == "bf16"
    bf16 = bf16_encoder.encode(texts)
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, fp32)
    assert cosines(bf16, fp32).min() > 0.999


def test_train_bf16_refused_without_native_bf16(no_bf16, tmp_path, tiny_teacher_dir) -> None:
    from tests.stage2_helpers import TINY_ARCH, make_tiny_shards

    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir)
    out = tmp_path / "student"
    args = ["train", "--targets", shards, "--out", out, *TINY_ARCH, "--max-steps", "2"]
    refused([*args, "--precision", "bf16"], "no native bfloat16", untouched=[out, shards])


@needs_bf16
def test_train_bf16_autocast_trains_float32_weights(tmp_path, tiny_teacher_dir) -> None:
    from safetensors.torch import load_file

    from tests.stage2_helpers import make_tiny_shards, train_cli

    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir)
    scores = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        extra = ("--max-steps", "20", "--val-every", "20", "--precision", precision)
        result = train_cli(shards, out, *extra)
        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in (out / "metrics.jsonl").open()]
        scores[precision] = [r for r in records if "val_cosine" in r][-1]["val_cosine"]
        weights = load_file(str(out / "model.safetensors"))
        assert all(t.dtype == torch.float32 for t in weights.values())
    assert np.isfinite(scores["bf16"]) and scores["bf16"] != scores["fp32"]
    assert abs(scores["bf16"] - scores["fp32"]) < 0.05


def test_stage1_policy_reads_the_resumed_directory(has_bf16, tmp_path) -> None:
    """``auto`` follows the hardware unless a readable manifest records a precision."""
    from stage1_encode.precision import teacher_precision

    assert teacher_precision("auto", CPU) == "bf16"
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    assert teacher_precision("auto", CPU, tmp_path) == "bf16"  # run_encode reports it
    assert teacher_precision("fp32", CPU, tmp_path) == "fp32"
