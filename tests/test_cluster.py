"""Scale-out on one machine: concurrent array tasks equal one process; the SLURM scripts parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tiny_corpus_lines
from tests.stage1_helpers import encode_command, shard_contents

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT / "examples" / "slurm"


@pytest.mark.slow
def test_three_concurrent_array_tasks_equal_one_process(tmp_path, tiny_teacher_dir) -> None:
    corpus = tmp_path / "corpus.txt"
    lines = tiny_corpus_lines(60) * 10  # 600 lines, 12 shards, duplicates across shards
    corpus.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    single, split = tmp_path / "single", tmp_path / "split"
    subprocess.run(
        encode_command(corpus, single, tiny_teacher_dir, 50),
        env=env,
        check=True,
        capture_output=True,
    )

    # Tasks 0 and 1 by flag, task 2 as SLURM would start it (array 10-12, so ID 12 is index 2).
    base = encode_command(corpus, split, tiny_teacher_dir, 50)
    tasks = [
        ([*base, "--num-shards", "3", "--shard-index", "0"], env),
        ([*base, "--num-shards", "3", "--shard-index", "1"], env),
        (
            base,
            {
                **env,
                "SLURM_ARRAY_TASK_ID": "12",
                "SLURM_ARRAY_TASK_MIN": "10",
                "SLURM_ARRAY_TASK_COUNT": "3",
            },
        ),
    ]
    running = [
        subprocess.Popen(
            cmd, env=task_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for cmd, task_env in tasks
    ]
    outputs = [proc.communicate(timeout=300) for proc in running]
    for proc, (stdout, stderr) in zip(running, outputs, strict=True):
        assert proc.returncode == 0, stderr[-2000:]
        assert "4 shard(s) written" in stdout, stdout  # round-robin: 12 shards / 3 tasks

    assert shard_contents(split) == shard_contents(single)
    one, three = (json.loads((d / "manifest.json").read_text()) for d in (single, split))
    assert three["shards"] == one["shards"]  # every record merged, none lost to a race
    verify = subprocess.run(
        [sys.executable, "-m", "pipeline", "shards", "verify", str(split)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"12 shard(s) checked, {len(set(lines))} rows verified" in verify.stdout
    assert not [p.name for p in split.iterdir() if ".tmp" in p.name]


def _pipeline_options(text: str, command: str) -> set[str]:
    """The --options of the `pipeline COMMAND` call in a script (with its continuation lines)."""
    lines = text.splitlines()
    first = next(
        i
        for i, line in enumerate(lines)
        if f"pipeline {command}" in line and not line.lstrip().startswith("#")
    )
    block = []
    for line in lines[first:]:
        block.append(line.split(f"pipeline {command}")[-1])
        if not line.rstrip().endswith("\\"):
            break
    return {word for line in block for word in line.split() if word.startswith("--")}


@pytest.mark.parametrize(
    ("script", "command"), [("encode_array.sbatch", "encode"), ("train_ddp.sbatch", "train")]
)
def test_slurm_scripts_parse_and_use_real_options(script, command) -> None:
    from click.testing import CliRunner

    from pipeline.cli import main

    path = SLURM / script
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    assert text.startswith("#!/bin/bash") and "HDF5_USE_FILE_LOCKING=FALSE" in text
    options = _pipeline_options(text, command)
    assert "--out" in options
    help_text = CliRunner().invoke(main, [command, "--help"]).output
    unknown = sorted(option for option in options if option not in help_text)
    assert not unknown, f"{script} passes options `pipeline {command}` lacks: {unknown}"
    if command == "train":
        assert "--rdzv-backend=c10d" in text and "torchrun" in text
