"""Load "a student dir or a teacher" behind one ``encode(texts) -> float32 array`` face.

Every stage-3 evaluator accepts ``--model`` as a student directory (Contract 2), ``teacher``
(the embedded default teacher) or a Hugging Face encoder path pooled as in stage 1, so the
student and its teacher come out of the same command and the same code path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.errors import PipelineError
from data.progress import progress_bar

TEACHER = "teacher"
STUDENT_FILES = ("config.json", "model.safetensors")


def is_student_dir(path: str | Path) -> bool:
    """A Contract-2 directory: config + safetensors weights + its own ``tokenizer/`` folder."""
    path = Path(path)
    return all((path / name).is_file() for name in STUDENT_FILES) and (path / "tokenizer").is_dir()


@dataclass
class Encoder:
    """A loaded sentence encoder and the label its results are filed under."""

    label: str
    kind: str  # "student" or "teacher"
    model: Any
    batch_size: int = 256
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
    def parameters(self) -> int:
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
    spec: str, *, device: str = "cpu", batch_size: int = 256, precision: str = "fp32"
) -> Encoder:
    """``spec`` is a student dir, ``teacher``, or an HF encoder name/folder (the teacher path).

    ``precision`` (fp32 or bf16) is the arithmetic it encodes in.
    """
    if spec != TEACHER and is_student_dir(spec):
        try:
            from stage2_train import Student
        except ImportError as exc:
            raise PipelineError(f"{spec}: cannot load a student ({exc})") from None
        model = Student.from_pretrained(spec)
        model.to(device).eval()
        return Encoder(str(spec), "student", model, batch_size, precision)
    path = Path(spec)
    if spec != TEACHER and path.is_dir() and not (path / "config.json").is_file():
        raise PipelineError(f"{spec}: neither a student dir nor a Hugging Face model folder")
    from stage1_encode.teacher import Teacher

    model = Teacher(None if spec == TEACHER else spec, device=device, precision=precision)
    model.pack_for_inference()  # the baseline runs as fast as stage 1 makes it
    return Encoder(spec, "teacher", model, batch_size, precision)


def encode_timed(
    encoder: Encoder, texts: Sequence[str], *, chunk: int = 4096, desc: str = "encode"
) -> tuple[np.ndarray, float]:
    """Vectors for ``texts`` with a progress bar, and the seconds spent in the encoder."""
    parts, seconds = [], 0.0
    with progress_bar(total=len(texts), desc=desc, unit="sent", enabled=len(texts) > chunk) as bar:
        for start in range(0, len(texts), chunk):
            batch = texts[start : start + chunk]
            begin = time.perf_counter()
            parts.append(encoder.encode(batch))
            seconds += time.perf_counter() - begin
            bar.update(len(batch))
    if not parts:
        return encoder.encode([]), 0.0
    return np.concatenate(parts), seconds
