"""Task-specific distillation targets: a fine-tuned teacher's outputs on the (augmented) train set.

The teacher is one written by ``pipeline eval glue --model teacher --save-finetuned DIR``:
``DIR/<task>/`` holds its encoder, head and ``glue.json``. Its outputs (logits, or the score for
STS-B) are computed once per task and shared by every seed of the student. They are also kept
on disk (``OUT/kd-targets/``), keyed by the teacher's files and the exact input texts, so the
other KD row of a comparison and a later sitting reuse them without loading the teacher: on
SST-2's augmented set that is most of an hour of teacher inference on one CPU thread.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch

from data import files
from data.errors import PipelineError
from data.glue import GlueSplit
from stage1_encode.onednn import pack_linears
from stage3_eval.glue.augment import AugmentConfig, augment, concatenate
from stage3_eval.glue.model import load_finetuned, read_finetuned_meta
from stage3_eval.glue.train import predict, tokenize

KD_TARGETS = "kd-targets"  # the folder of cached teacher outputs, inside eval glue's --out


def distillation_set(
    train: GlueSplit,
    kd_dir: Path,
    augment_config: AugmentConfig,
    device: torch.device,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> tuple[GlueSplit, np.ndarray]:
    """The train split plus its augmented copies, and the fine-tuned teacher's outputs on them."""
    task = train.task
    folder = Path(kd_dir) / task.name
    if not folder.is_dir():
        raise PipelineError(
            f"{folder}: no fine-tuned teacher for {task.name} (make it with "
            f"pipeline eval glue --model teacher --tasks {task.name} "
            f"--save-finetuned {kd_dir})"
        )
    meta = read_finetuned_meta(folder)
    if meta.get("task") != task.name or meta["head"]["num_outputs"] != task.num_outputs:
        raise PipelineError(f"{folder}: fine-tuned for {meta.get('task')!r}, not {task.name}")
    data = concatenate(train, augment(train, augment_config, seed))
    cache = None if cache_dir is None else Path(cache_dir) / cache_name(folder, data)
    outputs = load_cached(cache, len(data))
    if outputs is None:
        teacher, _ = load_finetuned(folder, device)
        pack_linears(teacher)  # inference only from here
        outputs = predict(
            teacher,
            tokenize(teacher.encoder, data.text_a, data.text_b),
            desc=f"{task.name} teacher targets",
        )
        if cache is not None:
            with files.os_errors(cache.parent, "cannot create"):
                cache.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            np.save(buffer, outputs, allow_pickle=False)
            files.write_bytes(cache, buffer.getvalue())
    return data, outputs


def cache_name(teacher_dir: Path, data: GlueSplit) -> str:
    """``<task>-<sha256>.npy`` of the fine-tuned teacher's files and every input text."""
    digest = hashlib.sha256()
    for path in sorted(p for p in teacher_dir.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(teacher_dir)}\0{files.sha256_file(path)}\0".encode())
    for text in data.text_a + (data.text_b or []):
        digest.update(text.encode() + b"\0")
    return f"{data.task.name}-{digest.hexdigest()[:32]}.npy"


def load_cached(path: Path | None, rows: int) -> np.ndarray | None:
    """The stored outputs, or None when absent or not one row per text (then recomputed)."""
    if path is None or not path.is_file():
        return None
    try:
        outputs = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return outputs if len(outputs) == rows else None
