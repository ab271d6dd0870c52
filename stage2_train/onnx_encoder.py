"""Serving an ONNX export of the student with ONNX Runtime, without torch in the loop.

An export folder (written by ``onnx_export``) holds ``model.onnx`` (float32), optionally
``model_int8.onnx`` (ONNX Runtime dynamic int8), the teacher's ``tokenizer/`` and
``onnx_export.json``, which says how to feed the graph. Pooling and normalisation are inside the
graph, so a row of the output is the sentence vector the torch student computes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.errors import PipelineError
from stage2_train.layout import TOKENIZER_DIR
from stage2_train.vectors import SentenceEncoding

EXPORT_CONFIG = "onnx_export.json"
FLOAT_MODEL = "model.onnx"
INT8_MODEL = "model_int8.onnx"
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "sentence_embedding"
EXTRA_HINT = "pip install 'sra-distill[onnx]'"


def require_onnx() -> tuple[Any, Any]:
    """The ``onnx`` and ``onnxruntime`` modules, or one line naming the extra that brings them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise PipelineError(
            f"ONNX export and serving need the optional extra 'onnx' ({exc.name} is missing): "
            f"{EXTRA_HINT}"
        ) from None
    return onnx, onnxruntime


def is_onnx_export(path: str | Path) -> bool:
    return (Path(path) / EXPORT_CONFIG).is_file()


def read_export_config(folder: Path) -> dict[str, Any]:
    path = folder / EXPORT_CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        _ = (config["pad_id"], config["max_length"], config["dim"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PipelineError(f"{path}: not an ONNX export description ({exc})") from None
    return config


class OnnxEncoder(SentenceEncoding):
    """A student export run by ONNX Runtime; ``encode`` is called as ``Student.encode`` is."""

    def __init__(self, session: Any, tokenizer: Any, config: dict[str, Any]):
        self.session = session
        self.tokenizer = tokenizer
        self.config = config

    @classmethod
    def from_export(
        cls, folder: str | Path, int8: bool = False, threads: int | None = None
    ) -> OnnxEncoder:
        """Open an export folder's float32 graph, or its int8 one."""
        from stage2_train.model import load_tokenizer

        folder = Path(folder)
        if not is_onnx_export(folder):
            raise PipelineError(f"{folder}: not an ONNX export (no {EXPORT_CONFIG})")
        config = read_export_config(folder)
        model = folder / (INT8_MODEL if int8 else FLOAT_MODEL)
        if not model.is_file():
            hint = " (export again with --int8)" if int8 else ""
            raise PipelineError(f"{model}: missing from the export{hint}")
        return cls(open_session(model, threads), load_tokenizer(folder / TOKENIZER_DIR), config)

    @property
    def dim(self) -> int:
        return int(self.config["dim"])

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(
            list(texts), truncation=True, max_length=self.config["max_length"], verbose=False
        )["input_ids"]

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to(self, device: str | torch.device) -> OnnxEncoder:
        """The ONNX Runtime session runs on the CPU; a device request is accepted and ignored."""
        return self

    @property
    def pad_id(self) -> int:
        return self.config["pad_id"]

    def run_batch(self, input_ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        """Vectors of one padded batch, from the ONNX Runtime session."""
        feed = {INPUTS[0]: input_ids.numpy(), INPUTS[1]: mask.numpy()}
        return self.session.run([OUTPUT], feed)[0]


def open_session(model: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session of ``model``; a file ORT cannot read is one line."""
    _, ort = require_onnx()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT's warnings about unused initialisers are not actionable
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    refusals = (state.Fail, state.InvalidGraph, state.InvalidProtobuf, state.NoSuchFile,
                state.InvalidArgument, state.RuntimeException)  # fmt: skip
    try:
        return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except refusals as exc:  # ORT's own exception classes, none of them an OSError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PipelineError(f"{model}: ONNX Runtime cannot load it ({first})") from None
