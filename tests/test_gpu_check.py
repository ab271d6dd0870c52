"""bench/gpu_check.py: the one-shot device check, smoke-run on the CPU with tiny sizes."""

from __future__ import annotations

import json

import pytest
import torch

from bench import gpu_check
from tests.conftest import tiny_corpus_lines


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_requested_without_a_gpu_stops_with_one_line(tmp_path) -> None:
    out = tmp_path / "gpu_check.json"
    with pytest.raises(SystemExit, match="no CUDA device here"):
        gpu_check.main(["--device", "cuda", "--out", str(out)])
    assert not out.exists()


@pytest.mark.slow
def test_smoke_run_on_cpu_passes_every_check(tmp_path, tiny_teacher_dir, glue_dir) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_corpus_lines(200)) + "\n", encoding="utf-8")
    out = tmp_path / "gpu_check.json"
    gpu_check.main(
        [
            "--device", "cpu", "--teacher", str(tiny_teacher_dir), "--corpus", str(corpus),
            "--lines", "200", "--check-lines", "200", "--steps", "40", "--hidden-size", "16",
            "--batch-size", "8", "--glue-dir", str(glue_dir), "--max-train-examples", "32",
            "--max-eval-examples", "16", "--out", str(out),
        ]
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["passed"] and result["device_name"].startswith("CPU")
    steps = result["steps"]
    assert steps["encode"]["min_cosine_vs_cpu_fp32"] >= gpu_check.MIN_COSINE
    assert steps["train"]["last_loss"] < steps["train"]["first_loss"]
    assert steps["embed"]["sentences_per_second"] > 0
    for step in ("encode", "embed"):
        figure = steps[step]["roofline"]
        assert figure["achieved_gflops"] > 0 and figure["share_of_peak"] > 0
    assert any(s["task"] == "rte" for s in steps["glue"]["scores"])
