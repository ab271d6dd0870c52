"""`pipeline train` under torchrun with two CPU processes (gloo): DDP, rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stage2_train import Student
from tests.stage2_helpers import TINY_ARCH, make_tiny_shards

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_two_process_ddp_training_and_resume(tmp_path, tiny_teacher_dir) -> None:
    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir)
    out = tmp_path / "student"
    command = [
        str(BIN / "torchrun"),
        "--nproc_per_node=2",
        "--no-python",
        str(BIN / "pipeline"),
        "train",
        "--targets",
        str(shards),
        "--out",
        str(out),
        *TINY_ARCH,
        "--val-every",
        "5",
        "--checkpoint-every",
        "5",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    first = subprocess.run(
        [*command, "--max-steps", "12"], env=env, capture_output=True, text=True, timeout=300
    )
    assert first.returncode == 0, first.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["world_size"] == 2 and config["training"]["steps"] == 12
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_cosine" in r] == [5, 10, 12]  # rank 0 only
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-00000010",
        "step-00000012",
    ]
    vectors = Student.from_pretrained(out).encode(["the cat runs"])
    assert vectors.shape[0] == 1 and np.isfinite(vectors).all()
    # Same command again: resumes from the final checkpoint, trains nothing, re-exports.
    again = subprocess.run(
        [*command, "--max-steps", "12"], env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming from step-00000012" in again.stderr


@pytest.mark.slow
def test_ddp_student_matches_single_process_quality(tmp_path, tiny_teacher_dir) -> None:
    """Two gloo ranks with half the batch each reach a single process's validation cosine."""
    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir, lines=480, shard_size=60)
    common = [
        "train",
        "--targets",
        str(shards),
        *TINY_ARCH,
        "--batch-size",
        "8",
        "--epochs",
        "6",
        "--val-fraction",
        "0.1",
        "--val-every",
        "10",
        "--seed",
        "3",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    runs = [
        [sys.executable, "-m", "pipeline", *common, "--out", str(single), "--batch-size", "16"],
        [
            str(BIN / "torchrun"),
            "--nproc_per_node=2",
            "--no-python",
            str(BIN / "pipeline"),
            *common,
            "--out",
            str(ddp),
        ],
    ]
    for command in runs:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]

    def cosines(out: Path) -> list[float]:
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return [r["val_cosine"] for r in records if "val_cosine" in r]

    first_single, last_single = cosines(single)[0], cosines(single)[-1]
    assert last_single > first_single + 0.05, "the single-process run should learn"
    assert abs(cosines(ddp)[-1] - last_single) < 0.05
    Student.from_pretrained(ddp).encode(["the cat runs"])
