"""Device, seed and array-task helpers shared by the commands."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import random

import numpy as np
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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def adamw(groups: list[dict], **kwargs) -> torch.optim.AdamW:
    """AdamW as one fused kernel whenever every parameter is a float tensor on the CPU or a GPU.

    The default multi-pass update reads and writes each parameter and both moments several times;
    for the student's 11.7M-value word-piece matrix that was 39 ms of a 257 ms training step on
    the CPU, against 3 ms fused (same update rule, rounding aside).
    """
    params = [p for group in groups for p in group["params"]]
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(groups, fused=fused, **kwargs)


def array_task(num_shards: int | None, shard_index: int | None) -> tuple[int, int]:
    """(task count, task index) from the options, else from a SLURM job array, else (1, 0)."""
    if num_shards is None and "SLURM_ARRAY_TASK_COUNT" in os.environ:
        num_shards = int(os.environ["SLURM_ARRAY_TASK_COUNT"])
    if shard_index is None and "SLURM_ARRAY_TASK_ID" in os.environ:
        first = int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        shard_index = int(os.environ["SLURM_ARRAY_TASK_ID"]) - first
    return num_shards or 1, shard_index or 0


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_freed_memory() -> None:
    """Hand memory freed since the last call back to the OS (glibc's ``malloc_trim``).

    Each encoded shard frees a shard's worth of small Python and tensor allocations, scattered
    over the heaps of two threads; without trimming, glibc keeps them and peak RSS creeps up with
    the number of shards (measured: 1,248 MiB after 40k lines against 1,008 after 10k).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
