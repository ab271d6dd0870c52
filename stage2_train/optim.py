"""The training recipe shared by stage 2 and stage 3 fine-tuning: seeding, the optimiser and the
learning-rate schedule, so both stages train the same way."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run with the same seed repeats."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def adamw(groups: list[dict], **kwargs) -> torch.optim.AdamW:
    """AdamW as one fused kernel whenever every parameter is a float tensor on the CPU or a GPU.

    The default multi-pass update reads and writes each parameter and both moments several times;
    for the student's 11.7M-value word-piece matrix that was 39 ms of a 257 ms training step on
    the CPU, against 3 ms fused (same update rule, rounding aside).
    """
    params = [p for group in groups for p in group["params"]]
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(groups, fused=fused, **kwargs)


def lr_factor(progress: float, warmup: float) -> float:
    """Linear warmup over the first ``warmup`` of training, then linear decay to zero."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return progress / warmup
    return max(0.0, (1.0 - progress) / max(1e-12, 1.0 - warmup))
