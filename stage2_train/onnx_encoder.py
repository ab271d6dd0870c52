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
from stage2_train.config import SIZES
from stage2_train.layout import TOKENIZER_DIR
from stage2_train.vectors import SentenceEncoding

EXPORT_CONFIG = "onnx_export.json"
FLOAT_MODEL = "model.onnx"
INT8_MODEL = "model_int8.onnx"
EXPORT_FILES = (EXPORT_CONFIG, FLOAT_MODEL, INT8_MODEL, TOKENIZER_DIR)  # all an export holds
FORMAT = "sra-distill-onnx"  # the description's "format": the mark of an export this tool wrote
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "sentence_embedding"
EXTRA_HINT = "pip install 'sra-distill[onnx]'"
# The description's numbers and the student config's bounds they must keep (config.SIZES).
_BOUNDED = {"dim": "output_dim", "pad_id": "pad_id", "max_length": "max_length"}


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
    """The checked description of an export: JSON, this tool's format, and ``dim``, ``pad_id``
    and ``max_length`` integers within the student config's bounds."""
    path = folder / EXPORT_CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PipelineError(f"{path}: not an ONNX export description ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise PipelineError(f"{path}: not an ONNX export description (no format {FORMAT!r})")
    for key, bound in _BOUNDED.items():
        low, high = SIZES[bound]
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise PipelineError(
                f"{path}: not an ONNX export description ({key} {value!r} is not an integer "
                f"in [{low}, {high}]); export again"
            )
    return config


def check_graph(model: Path, session: Any, tokenizer: Any, config: dict[str, Any]) -> None:
    """Refuse a description that does not fit its graph and tokenizer: other input or output
    names, another vector width (``dim``), or another padding id than the tokenizer's."""
    described = model.parent / EXPORT_CONFIG
    inputs = tuple(i.name for i in session.get_inputs())
    outputs = session.get_outputs()
    if inputs != INPUTS or [o.name for o in outputs] != [OUTPUT]:
        raise PipelineError(
            f"{model}: not a student graph (inputs {list(inputs)}, outputs "
            f"{[o.name for o in outputs]}; expected {list(INPUTS)} and {[OUTPUT]})"
        )
    width = outputs[0].shape[-1] if outputs[0].shape else None
    if isinstance(width, int) and width != config["dim"]:
        raise PipelineError(
            f"{described}: dim {config['dim']}, but {model.name} computes {width}-wide vectors"
        )
    pad = int(tokenizer.pad_token_id or 0)
    if config["pad_id"] != pad:
        raise PipelineError(
            f"{described}: pad_id {config['pad_id']}, but the tokenizer pads with id {pad}"
        )


def require_finite_graph(model: Path) -> None:
    """Refuse a graph whose weights hold NaN or infinity, as ``Student.from_pretrained`` does."""
    import onnx
    from onnx import numpy_helper

    from stage2_train.model import require_finite

    weights = {
        t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
        for t in onnx.load(str(model)).graph.initializer
    }
    require_finite(model, weights, "the export is damaged (export it again)")


class OnnxEncoder(SentenceEncoding):
    """A student export run by ONNX Runtime; ``encode`` is called as ``Student.encode`` is."""

    def __init__(
        self, session: Any, tokenizer: Any, config: dict[str, Any], threads: int | None = None
    ):
        self.session = session
        self.tokenizer = tokenizer
        self.config = config
        self.threads = threads

    @classmethod
    def from_export(
        cls, folder: str | Path, int8: bool = False, threads: int | None = None
    ) -> OnnxEncoder:
        """Open an export folder's float32 graph, or its int8 one; ``threads``: batches encoded
        side by side [default: as the torch student, ``inference_workers``]."""
        from stage2_train.tokenizer import load_tokenizer

        folder = Path(folder)
        if not is_onnx_export(folder):
            raise PipelineError(f"{folder}: not an ONNX export (no {EXPORT_CONFIG})")
        config = read_export_config(folder)
        model = folder / (INT8_MODEL if int8 else FLOAT_MODEL)
        if not model.is_file():
            hint = " (export again with --int8)" if int8 else ""
            raise PipelineError(f"{model}: missing from the export{hint}")
        session = open_session(model)
        tokenizer = load_tokenizer(folder / TOKENIZER_DIR)
        check_graph(model, session, tokenizer, config)
        require_finite_graph(model)
        return cls(session, tokenizer, config, threads)

    @property
    def dim(self) -> int:
        return int(self.config["dim"])

    def inference_workers(self) -> int:
        return self.threads or super().inference_workers()

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


def open_session(model: Path) -> Any:
    """An ONNX Runtime CPU session of ``model`` on one thread (``encode`` runs batches on
    one-thread workers side by side); a file ORT cannot read is one line."""
    _, ort = require_onnx()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT's warnings about unused initialisers are not actionable
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    refusals = (state.Fail, state.InvalidGraph, state.InvalidProtobuf, state.NoSuchFile,
                state.InvalidArgument, state.RuntimeException)  # fmt: skip
    try:
        return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except refusals as exc:  # ORT's own exception classes, none of them an OSError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PipelineError(f"{model}: ONNX Runtime cannot load it ({first})") from None
