"""The arithmetic a model runs in: the ``--precision`` choices and what ``auto`` means here.

Defined in the lowest layer because every stage takes a precision (the teacher's encode, the
student's training and serving, the evaluated encoders), and the CLI offers the same choices
for each. Stage 1 adds its own rule for resuming a shard directory
(``stage1_encode.precision``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from data.errors import PipelineError

if TYPE_CHECKING:  # torch is imported where a device is resolved: this module is read cold too
    import torch

PRECISIONS = ("auto", "fp32", "bf16")  # what --precision accepts
RUN_PRECISIONS = PRECISIONS[1:]  # what a model actually runs in, and runs record
_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
# Whether bf16 measured faster than float32 on a native-bf16 CPU, per model kind
# (docs/encode.md and docs/student.md have the measurements); it decides ``--precision auto``.
BF16_PAYS_ON_CPU = {"teacher": True, "student": False}


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
    import torch

    on_gpu = device.type == "cuda"
    native = torch.cuda.is_bf16_supported() if on_gpu else cpu_has_native_bf16()
    if choice == "auto":
        pays = on_gpu or BF16_PAYS_ON_CPU[kind]
        return "bf16" if native and pays else "fp32"
    if choice == "bf16" and not native:
        where = "GPU" if on_gpu else "CPU (no avx512_bf16 or amx_bf16 flag)"
        raise PipelineError(f"--precision bf16: this {where} has no native bfloat16; use fp32")
    return choice
