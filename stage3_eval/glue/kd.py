"""Task-specific distillation targets: a fine-tuned teacher's outputs on the (augmented) train set.

The teacher is one written by ``pipeline eval glue --model teacher --save-finetuned DIR``:
``DIR/<task>/`` holds its encoder, head and ``glue.json``. Its outputs (logits, or the score for
STS-B) are computed once per task and shared by every seed of the student.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from data.errors import PipelineError
from data.glue import GlueSplit
from stage1_encode.onednn import pack_linears
from stage3_eval.glue.augment import AugmentConfig, augment, concatenate
from stage3_eval.glue.model import load_finetuned
from stage3_eval.glue.train import predict, tokenize


def distillation_set(
    train: GlueSplit,
    kd_dir: Path,
    augment_config: AugmentConfig,
    device: torch.device,
    seed: int = 0,
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
    teacher, meta = load_finetuned(folder, device)
    if meta.get("task") != task.name or teacher.head.config["num_outputs"] != task.num_outputs:
        raise PipelineError(f"{folder}: fine-tuned for {meta.get('task')!r}, not {task.name}")
    pack_linears(teacher)  # inference only from here
    data = concatenate(train, augment(train, augment_config, seed))
    outputs = predict(
        teacher,
        tokenize(teacher.encoder, data.text_a, data.text_b),
        desc=f"{task.name} teacher targets",
    )
    del teacher
    return data, outputs
