"""Export a trained student to ONNX, with pooling and normalisation inside the graph.

The graph takes ``input_ids`` and ``attention_mask`` (int64, right-padded, any batch size and
length) and returns ``sentence_embedding``; it is traced from ``Student.forward``, so the
per-row reversal that makes the padded BiLSTM exact is in the graph too. The export checks
itself before anything is renamed into place: ``onnx.checker`` on every graph, then ONNX Runtime
against torch on a fixed set of sentences (float32 max abs difference ≤ ``FLOAT_TOLERANCE``,
int8 cosine ≥ ``INT8_MIN_COSINE``); the measured values are kept in ``onnx_export.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.batching import pad_batch
from data.errors import PipelineError
from data.files import atomic_path
from stage2_train.model import Student
from stage2_train.onnx_encoder import (
    EXPORT_CONFIG,
    EXPORT_FILES,
    FLOAT_MODEL,
    FORMAT,
    INPUTS,
    INT8_MODEL,
    OUTPUT,
    TOKENIZER_DIR,
    OnnxEncoder,
    is_onnx_export,
    open_session,
    read_export_config,
    require_onnx,
)

OPSET = 17
FLOAT_TOLERANCE = 1e-4
INT8_MIN_COSINE = 0.99
PARITY_TEXTS = (
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog.",
    "Stocks fell sharply on Monday after the central bank raised interest rates again.",
    "ok",
    "She said that she would rather walk home than wait another hour for the last bus.",
    "Two dogs run through a snowy field.",
    "The committee postponed its decision, citing the need for further consultation "
    "with the regional offices and an independent review of the budget figures.",
    " ".join(["long"] * 400),  # longer than any max_length: checks the truncation too
)


def export_onnx(
    model: str | Path, out: str | Path, int8: bool = False, revision: str | None = None
) -> dict[str, Any]:
    """Write an export folder for the student at ``model`` (folder or Hub id); return its
    description. The folder appears whole or not at all."""
    onnx, _ = require_onnx()
    out = Path(out)
    check_replaceable(out)
    student = Student.from_pretrained(model, revision=revision).eval()
    description = _description(student)
    reference = student.encode(list(PARITY_TEXTS))
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        _trace(student, tmp / FLOAT_MODEL)
        student.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        parity = {
            "float32_max_abs": _check(onnx, tmp / FLOAT_MODEL, student, description, reference)
        }
        if int8:
            _quantize(tmp / FLOAT_MODEL, tmp / INT8_MODEL)
            parity["int8_min_cosine"] = _check(
                onnx, tmp / INT8_MODEL, student, description, reference
            )
        description.update(int8=INT8_MODEL if int8 else None, parity=parity)
        (tmp / EXPORT_CONFIG).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return description


def check_replaceable(out: Path) -> None:
    """Refuse an ``--out`` that holds anything but an earlier export's own files.

    The new export is renamed over the old folder whole, so any other file in it (a note, a
    Dockerfile, a folder that is not an export at all) would go with it.
    """
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not out.is_dir() or not is_onnx_export(out):
        raise PipelineError(f"{out}: exists and is not an ONNX export; choose another --out")
    try:
        read_export_config(out)
    except PipelineError as exc:
        raise PipelineError(
            f"{out}: exists and is not an ONNX export this tool wrote ({exc}); choose another --out"
        ) from None
    foreign = sorted(p.name for p in out.iterdir() if p.name not in EXPORT_FILES)
    if foreign:
        raise PipelineError(
            f"{out}: an ONNX export that also holds {', '.join(foreign[:3])}, which "
            "`pipeline export onnx` did not write; not replaced (move it or use another --out)"
        )


def _description(student: Student) -> dict[str, Any]:
    config = student.config
    return {
        "format": FORMAT,
        "float32": FLOAT_MODEL,
        "inputs": list(INPUTS),
        "output": OUTPUT,
        "opset": OPSET,
        "dim": config.output_dim,
        "normalize": config.normalize,
        "max_length": config.max_length,
        "pad_id": config.pad_id,
        "teacher": config.teacher.get("name_or_path"),
    }


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's and quantizer's advice (tracer notes, legacy-exporter notice,
    'consider pre-processing'): the graph is checked against torch right after."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _trace(student: Student, path: Path) -> None:
    """Trace ``Student.forward`` on two rows of different lengths, batch and length dynamic."""
    input_ids, mask = pad_batch(student.tokenize(list(PARITY_TEXTS[:2])), student.pad_id)
    axes = {INPUTS[0]: {0: "batch", 1: "length"}, INPUTS[1]: {0: "batch", 1: "length"}}
    # The TorchScript exporter (dynamo=False) traces the padded BiLSTM into ONNX LSTM nodes
    # exactly; the torch.export-based one needs the onnxscript package besides.
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            student,
            (input_ids, mask),
            str(path),
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={**axes, OUTPUT: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _quantize(source: Path, target: Path) -> None:
    """ONNX Runtime dynamic quantisation: int8 weights (LSTM, MatMul, embedding Gather)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def _check(
    onnx: Any, path: Path, student: Student, description: dict[str, Any], reference: np.ndarray
) -> float:
    """Validate the graph and compare ONNX Runtime with torch; the float32 graph must match to
    ``FLOAT_TOLERANCE`` (max abs), the int8 one to ``INT8_MIN_COSINE`` (min cosine)."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise PipelineError(
            f"{path.name}: invalid ONNX graph ({str(exc).splitlines()[0]})"
        ) from None
    encoder = OnnxEncoder(open_session(path), student.tokenizer, description)
    vectors = encoder.encode(list(PARITY_TEXTS))
    if path.name == FLOAT_MODEL:
        worst = float(np.abs(vectors - reference).max())
        if worst > FLOAT_TOLERANCE:
            raise PipelineError(f"ONNX float32 graph differs from torch by {worst:.2e}")
        return worst
    cosine = np.sum(vectors * reference, 1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1) + 1e-12
    )
    worst = float(cosine.min())
    if worst < INT8_MIN_COSINE:
        raise PipelineError(f"ONNX int8 graph reaches only cosine {worst:.4f} to torch float32")
    return worst
