"""Device, seed and array-task helpers shared by the commands."""

from __future__ import annotations

import os

import torch

from data.errors import PipelineError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError("--device cuda requested but no CUDA device is available")
    return torch.device(name)


def array_task(num_shards: int | None, shard_index: int | None) -> tuple[int, int]:
    """(task count, task index) from the options, else from a SLURM job array, else (1, 0)."""
    if num_shards is None and "SLURM_ARRAY_TASK_COUNT" in os.environ:
        num_shards = int(os.environ["SLURM_ARRAY_TASK_COUNT"])
    if shard_index is None and "SLURM_ARRAY_TASK_ID" in os.environ:
        first = int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        shard_index = int(os.environ["SLURM_ARRAY_TASK_ID"]) - first
    return num_shards or 1, shard_index or 0
