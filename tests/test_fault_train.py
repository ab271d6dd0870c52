"""Fault injection for stage 2: random SIGKILLs, corrupt checkpoints, damaged shards.

A killed run resumed by re-running the same command must end with the weights of an
uninterrupted run; a damaged latest checkpoint costs only the steps since the previous one; a
damaged shard is refused by `pipeline shards verify` and by `pipeline train` before any step.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from data import shards
from stage2_train.layout import CHECKPOINTS
from tests.stage2_helpers import TINY_ARCH, copy_shards, make_tiny_shards, run_cli, train_cli

PIPELINE = str(Path(sys.executable).with_name("pipeline"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory, tiny_teacher_dir) -> Path:
    return make_tiny_shards(tmp_path_factory.mktemp("fault-train") / "shards", tiny_teacher_dir)


def _weights(directory: Path) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in load_file(str(directory / "model.safetensors")).items()}


def _assert_same_weights(a: Path, b: Path) -> float:
    """Equal to 1e-5 tensor by tensor; returns the largest absolute difference seen."""
    first, second = _weights(a), _weights(b)
    assert first.keys() == second.keys()
    largest = 0.0
    for key in first:
        np.testing.assert_allclose(first[key], second[key], atol=1e-5, rtol=0, err_msg=key)
        largest = max(largest, float(np.abs(first[key] - second[key]).max()))
    return largest


def _latest_step(out: Path) -> int:
    root = out / CHECKPOINTS
    if not root.is_dir():
        return 0
    steps = [int(p.name.removeprefix("step-")) for p in root.iterdir() if p.name[:5] == "step-"]
    return max(steps, default=0)


# ------------------------------------------------------------------------------ SIGKILL


@pytest.mark.slow
def test_random_sigkills_resume_to_the_uninterrupted_weights(tiny_shards, tmp_path) -> None:
    args = [
        PIPELINE,
        "train",
        "--targets",
        str(tiny_shards),
        *TINY_ARCH,
        "--max-steps",
        "500",
        "--checkpoint-every",
        "5",
        "--val-every",
        "100",
        "--dropout",
        "0.1",
        "--seed",
        "11",
    ]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run([*args, "--out", str(straight)], env=ENV, check=True, capture_output=True)

    rng = random.Random(2024)
    targets = sorted(rng.sample(range(10, 450), 5))
    kills: list[int] = []
    logs = []
    for target in targets:
        log = tmp_path / f"run-{len(logs)}.err"
        logs.append(log)
        with log.open("w") as stderr:
            proc = subprocess.Popen(
                [*args, "--out", str(killed)], env=ENV, stdout=subprocess.DEVNULL, stderr=stderr
            )
            deadline = time.time() + 60
            while proc.poll() is None and _latest_step(killed) < target and time.time() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.05))  # inside a step, a checkpoint write or between
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills.append(_latest_step(killed))
            proc.wait()
    assert len(kills) == 5, f"only {len(kills)} of 5 kills landed before the run finished"
    assert not (killed / "model.safetensors").exists()

    done = subprocess.run([*args, "--out", str(killed)], env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = [re.search(r"resuming from step-(\d+)", log.read_text()) for log in logs[1:]]
    assert all(resumed), "a re-run did not resume from a checkpoint"
    assert "resuming from step-" in done.stderr
    largest = _assert_same_weights(straight, killed)
    print(f"kills after checkpoint steps {kills}; largest weight difference {largest:.2e}")
    assert not [p.name for p in (killed / CHECKPOINTS).iterdir() if ".tmp" in p.name]
    metrics = (killed / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in metrics]
    assert len(steps) == len(set(steps)), "a resumed run duplicated metric lines"


# -------------------------------------------------------------------- corrupt checkpoints


def _corrupt_model(checkpoint: Path) -> None:
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])


def _corrupt_state(checkpoint: Path) -> None:
    (checkpoint / "state.json").write_text('{"step": ')


def _drop_trainer(checkpoint: Path) -> None:
    (checkpoint / "trainer.pt").unlink()


@pytest.mark.parametrize("damage", [_corrupt_model, _corrupt_state, _drop_trainer])
def test_corrupt_latest_checkpoint_falls_back_to_the_previous(
    tiny_shards, tmp_path, damage
) -> None:
    options = (
        "--max-steps",
        "20",
        "--checkpoint-every",
        "5",
        "--keep-checkpoints",
        "3",
        "--val-every",
        "100",
        "--seed",
        "3",
    )
    reference, damaged = tmp_path / "reference", tmp_path / "damaged"
    assert train_cli(tiny_shards, reference, *options).exit_code == 0
    assert train_cli(tiny_shards, damaged, *options).exit_code == 0
    checkpoints = sorted((damaged / CHECKPOINTS).iterdir())
    assert [p.name for p in checkpoints] == ["step-00000010", "step-00000015", "step-00000020"]
    damage(checkpoints[-1])

    again = train_cli(tiny_shards, damaged, *options)
    assert again.exit_code == 0, again.output
    assert "warning:" in again.output and "step-00000020" in again.output
    assert "resuming from step-00000015" in again.output
    _assert_same_weights(reference, damaged)  # steps 16..20 re-trained to the same weights


def test_all_checkpoints_corrupt_is_a_clear_error(tiny_shards, tmp_path) -> None:
    options = ("--max-steps", "10", "--checkpoint-every", "5", "--val-every", "100")
    out = tmp_path / "s"
    assert train_cli(tiny_shards, out, *options).exit_code == 0
    for checkpoint in (out / CHECKPOINTS).iterdir():
        _corrupt_model(checkpoint)
    result = train_cli(tiny_shards, out, *options)
    assert result.exit_code == 1, result.output
    assert "none of the 2 checkpoint(s) loads" in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:")


# ------------------------------------------------------------------------- damaged shards


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_one_bit(path: Path) -> None:
    """Flip a bit inside the embedding data: HDF5 still opens the file, only the sum can tell."""
    import h5py

    with h5py.File(path, "r") as handle:
        offset = handle["embedding"].id.get_offset()
    data = bytearray(path.read_bytes())
    data[offset + 7] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _flip_one_bit])
def test_damaged_shard_is_caught_by_verify_and_by_train(tiny_shards, tmp_path, damage) -> None:
    broken = copy_shards(tiny_shards, tmp_path / "broken")
    victim = shards.list_shard_files(broken)[2]
    damage(victim)

    verify = run_cli("shards", "verify", broken)
    assert verify.exit_code == 1, verify.output
    assert f"corrupt: {victim.name}: checksum mismatch" in verify.output

    out = tmp_path / "student"
    train = train_cli(broken, out, "--max-steps", "5")
    assert train.exit_code == 1, train.output
    assert victim.name in train.output and "corrupt" in train.output
    assert not out.exists(), "train wrote output before refusing the shard"
