"""Device, seed and array-task helpers shared by the commands."""

from __future__ import annotations

import functools
import os
from typing import Any

import torch

from data.errors import PipelineError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
# Whether bf16 measured faster than float32 on a native-bf16 CPU, per model kind
# (docs/encode.md and docs/student.md have the measurements); it decides ``--precision auto``.
BF16_PAYS_ON_CPU = {"teacher": True, "student": False}


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError("--device cuda requested but no CUDA device is available")
    return torch.device(name)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bfloat16 in hardware (x86 ``avx512_bf16`` or ``amx_bf16``).

    oneDNN also runs bf16 on plain AVX-512 CPUs by converting to float32, which is slower than
    float32 itself, so only the CPU's own flags count. Read from /proc/cpuinfo: where there is
    none (not Linux), the answer is no.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return bool(_NATIVE_BF16_FLAGS & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return False


def resolve_precision(choice: str, device: torch.device, kind: str) -> str:
    """``fp32`` or ``bf16`` for a ``--precision`` choice, running a ``kind`` model on ``device``.

    ``auto`` is bf16 on a GPU with bf16, and on a CPU with native bf16 where that kind of model
    measured faster in bf16 (``BF16_PAYS_ON_CPU``); else fp32. ``bf16`` on hardware without it
    is refused rather than emulated slowly.
    """
    on_gpu = device.type == "cuda"
    native = torch.cuda.is_bf16_supported() if on_gpu else cpu_has_native_bf16()
    if choice == "auto":
        pays = on_gpu or BF16_PAYS_ON_CPU[kind]
        return "bf16" if native and pays else "fp32"
    if choice == "bf16" and not native:
        where = "GPU" if on_gpu else "CPU (no avx512_bf16 or amx_bf16 flag)"
        raise PipelineError(f"--precision bf16: this {where} has no native bfloat16; use fp32")
    return choice


def load_encoder_as(spec: str, device: str, batch_size: int, precision: str) -> Any:
    """Stage 3's ``load_encoder`` with the CLI's ``--device`` and ``--precision`` resolved."""
    from stage3_eval.encoders import STUDENT, load_encoder, model_kind

    where = resolve_device(device)
    kind = "student" if model_kind(spec) == STUDENT else "teacher"
    chosen = resolve_precision(precision, where, kind)
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
