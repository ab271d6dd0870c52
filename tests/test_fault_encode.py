"""Fault injection for stage 1: SIGKILL at random points, re-run, compare with a clean run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from data import shards
from pipeline.cli import main
from tests.conftest import tiny_corpus_lines
from tests.stage1_helpers import encode_command, shard_contents

pytestmark = pytest.mark.slow


def _shard_count(directory: Path) -> int:
    return len(shards.list_shard_files(directory)) if directory.is_dir() else 0


def test_random_sigkills_lose_and_double_nothing(tmp_path, tiny_teacher_dir) -> None:
    corpus = tmp_path / "corpus.txt"
    lines = tiny_corpus_lines(60) * 40  # 2,400 lines with duplicates: dedup state is tested too
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        encode_command(corpus, clean, tiny_teacher_dir, 60),
        env=env,
        check=True,
        capture_output=True,
    )
    total = _shard_count(clean)

    rng = random.Random(1234)
    kills = 0
    for _ in range(6):
        before = _shard_count(killed)
        if before == total:
            break
        process = subprocess.Popen(
            encode_command(corpus, killed, tiny_teacher_dir, 60),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Let this run write a random 1-3 more shards, then kill it a random few milliseconds
        # later: the kill lands inside a batch, inside a shard write, or between shards.
        target = min(before + rng.randint(1, 3), total - 1)
        deadline = time.time() + 60
        while _shard_count(killed) < target and process.poll() is None and time.time() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.02))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 5, f"only {kills} kills landed mid-run"

    result = CliRunner().invoke(main, encode_command(corpus, killed, tiny_teacher_dir, 60)[3:])
    assert result.exit_code == 0, result.output
    assert shard_contents(killed) == shard_contents(clean)
    assert not [p.name for p in killed.iterdir() if ".tmp" in p.name]
    verify = CliRunner().invoke(main, ["shards", "verify", str(killed)])
    assert verify.exit_code == 0, verify.output
    rows = sum(len(c[3]) // 8 for c in shard_contents(killed).values())
    assert rows == len(set(lines))  # 0 lost, 0 doubled
