"""What training measures on the side: the student's distance to the teacher on held-out rows,
and zero-shot STS computed exactly as ``pipeline eval sts`` computes it."""

from __future__ import annotations

import numpy as np

from data.progress import encode_timed
from data.stream import ValidationSet
from data.sts import StsPairs, zero_shot
from stage2_train.model import Student


def validate(student: Student, val: ValidationSet) -> dict[str, float]:
    """MSE and mean cosine of the student's vectors to the teacher's on held-out rows."""
    if len(val) == 0:
        return {}
    pred = student.embed_ids(val.input_ids)
    target = val.targets
    cos = (pred * target).sum(1) / (
        np.linalg.norm(pred, axis=1) * np.linalg.norm(target, axis=1) + 1e-12
    )
    return {"mse": float(((pred - target) ** 2).mean()), "cosine": float(cos.mean())}


def sts_spearman(student: Student, pairs: StsPairs) -> float:
    """Zero-shot STS Spearman, computed as ``pipeline eval sts`` computes it for this student."""
    return zero_shot(
        pairs, lambda texts: encode_timed(student.encode, texts, desc="sts")[0]
    ).spearman
