"""Stage 1's precision policy: which arithmetic the teacher encodes in, decided in one place.

Vectors of two precisions never share a shard directory (``teacher.precision`` is one of the
manifest's vector fields), so the choice depends on the directory being resumed as well as on
the hardware.
"""

from __future__ import annotations

from pathlib import Path

import torch

from data.errors import PipelineError
from data.manifest import MANIFEST, read_manifest
from data.precision import RUN_PRECISIONS, resolve_precision


def teacher_precision(choice: str, device: torch.device, resume: Path | None = None) -> str:
    """``fp32`` or ``bf16`` for the teacher, from a ``--precision`` choice on ``device``.

    ``auto`` continues in the precision ``resume``'s shards were encoded in (pass None when the
    directory is overwritten or not a resumption): resuming an fp32 encode on a CPU where
    ``auto`` means bf16 would otherwise be refused. Else ``auto`` follows the hardware
    (``data.precision.resolve_precision``); an explicit choice is kept, and refused where the
    hardware lacks it.
    """
    if choice == "auto" and resume is not None:
        choice = _recorded_precision(resume) or choice
    return resolve_precision(choice, device, "teacher")


def _recorded_precision(directory: Path) -> str | None:
    """The precision ``directory``'s manifest records, or None (no or an unreadable manifest)."""
    if not (Path(directory) / MANIFEST).is_file():
        return None
    try:
        recorded = read_manifest(Path(directory)).get("teacher", {}).get("precision")
    except PipelineError:
        return None  # run_encode reports the damaged manifest
    return recorded if recorded in RUN_PRECISIONS else None
