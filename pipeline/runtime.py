"""Device, seed and array-task helpers shared by the commands."""

from __future__ import annotations

import os
from typing import Any

import torch

from data.errors import PipelineError
from data.precision import resolve_precision

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError("--device cuda requested but no CUDA device is available")
    return torch.device(name)


def load_encoder_as(spec: str, device: str, batch_size: int, precision: str) -> Any:
    """Stage 3's ``load_encoder`` with the CLI's ``--device`` and ``--precision`` resolved."""
    from stage1_encode.precision import teacher_precision
    from stage3_eval.encoders import STUDENT, load_encoder, model_kind

    where = resolve_device(device)
    if model_kind(spec) == STUDENT:
        chosen = resolve_precision(precision, where, "student")
    else:
        chosen = teacher_precision(precision, where)
    return load_encoder(
        spec,
        device=str(where),
        batch_size=batch_size,
        precision=chosen,
        require_precision=precision != "auto",
    )


def array_task(num_shards: int | None, shard_index: int | None) -> tuple[int, int]:
    """(task count, task index) from the options, else from a SLURM job array, else (1, 0).

    ``--array=0-8:2`` numbers its tasks 0, 2, .. 8: the index is counted in steps from the first.
    """
    if num_shards is None and "SLURM_ARRAY_TASK_COUNT" in os.environ:
        num_shards = _env_int("SLURM_ARRAY_TASK_COUNT")
    if shard_index is None and "SLURM_ARRAY_TASK_ID" in os.environ:
        first, step = _env_int("SLURM_ARRAY_TASK_MIN", 0), _env_int("SLURM_ARRAY_TASK_STEP", 1)
        shard_index = (_env_int("SLURM_ARRAY_TASK_ID") - first) // max(step, 1)
    return num_shards or 1, shard_index or 0


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None and default is not None:
        return default
    try:
        return int(str(raw))
    except ValueError:
        raise PipelineError(
            f"{name}={raw!r} is not a whole number; unset it, or give --num-shards and "
            "--shard-index"
        ) from None
