"""Load "a student dir or a teacher" behind one ``encode(texts) -> float32 array`` face.

Every stage-3 evaluator accepts ``--model`` as ``embed`` does: a student directory (Contract 2),
its ONNX export, a Hub repository holding a student, ``teacher`` (the embedded default teacher)
or a Hugging Face encoder path pooled as in stage 1, so the student and its teacher come out of
the same command and the same code path. GLUE also accepts
``scratch``; :func:`model_kind` is the one place that tells these apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.errors import PipelineError
from stage2_train import is_onnx_export
from stage2_train.hub import is_hub_student
from stage2_train.layout import is_student_dir

STUDENT = "student"
TEACHER = "teacher"
SCRATCH = "scratch"


def model_kind(spec: str, *, scratch: bool = False) -> str:
    """``student``, ``teacher`` (the embedded one, an HF name or folder) or, where ``scratch``
    is accepted, ``scratch``: what a ``--model`` names, refused in one line before any loading
    when it is a folder that holds no model or a path that does not exist."""
    if scratch and spec == SCRATCH:
        return SCRATCH
    if spec == TEACHER:
        return TEACHER
    if is_student_dir(spec) or is_onnx_export(spec) or is_hub_student(spec):
        return STUDENT
    path = Path(spec)
    if path.is_dir() and not (path / "config.json").is_file():
        raise PipelineError(f"{spec}: neither a student dir nor a Hugging Face model folder")
    if not path.is_dir() and (path.is_absolute() or spec.startswith(".")):
        raise PipelineError(f"model {spec}: no such directory")
    return TEACHER


@dataclass
class Encoder:
    """A loaded sentence encoder and the label its results are filed under."""

    label: str
    kind: str  # "student" or "teacher"
    model: Any
    batch_size: int | None = None  # the device's default (config.INFERENCE)
    precision: str = "fp32"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.kind == "student":
            with student_precision(self.precision, self.model.device.type):
                vectors = self.model.encode(list(texts), batch_size=self.batch_size)
        else:
            vectors = self.model.encode(list(texts))
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @property
    def dim(self) -> int:
        return int(self.model.dim)

    @property
    def parameters(self) -> int | None:
        """The torch model's parameter count; None for an ONNX Runtime graph."""
        if not hasattr(self.model, "parameters"):
            return None
        return sum(p.numel() for p in self.model.parameters())

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dim": self.dim,
            "parameters": self.parameters,
            "precision": self.precision,
        }


def student_precision(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """The context a student encodes in: bf16 autocast (LSTM and linear layers) or float32."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16)


def load_encoder(
    spec: str,
    *,
    device: str = "cpu",
    batch_size: int | None = Encoder.batch_size,
    precision: str = "fp32",
    require_precision: bool = False,
) -> Encoder:
    """``spec`` is a student dir, ``teacher``, or an HF encoder name/folder (the teacher path).

    ``precision`` (fp32 or bf16) is the arithmetic it encodes in. A teacher whose bf16 CPU model
    fails its probe runs in fp32 instead, or is refused where ``require_precision``.
    """
    if model_kind(spec) == STUDENT and is_onnx_export(spec):
        if precision != "fp32" and require_precision:
            raise PipelineError(f"{spec}: an ONNX export runs in float32; drop --precision")
        from stage2_train import OnnxEncoder

        return Encoder(str(spec), STUDENT, OnnxEncoder.from_export(spec), batch_size, "fp32")
    if model_kind(spec) == STUDENT:
        try:
            from stage2_train import Student
        except ImportError as exc:
            raise PipelineError(f"{spec}: cannot load a student ({exc})") from None
        model = Student.from_pretrained(spec)
        model.to(device).eval()
        return Encoder(str(spec), STUDENT, model, batch_size, precision)
    from stage1_encode.teacher import Teacher

    model = Teacher(
        None if spec == TEACHER else spec,
        device=device,
        precision=precision,
        require_precision=require_precision,
    )
    model.pack_for_inference()  # the baseline runs as fast as stage 1 makes it
    return Encoder(spec, TEACHER, model, batch_size, model.precision)
