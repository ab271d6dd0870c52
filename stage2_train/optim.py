"""The training recipe shared by stage 2 and stage 3 fine-tuning: seeding, the optimiser and the
learning-rate schedule (one warm-up/decay rule, counted by progress or by steps), so both stages
train the same way."""

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


def warmup_decay(done: float, total: float, warm: float, *, ahead: float = 0.0) -> float:
    """The learning-rate factor after ``done`` of ``total``: a linear warm-up over the first
    ``warm``, then a linear decay to zero at ``total``.

    ``ahead`` is added to ``done`` during the warm-up only: a step-counted schedule passes 1 so
    that its first step already trains (at ``1 / warm``) instead of running at a zero rate.
    """
    if done < warm:
        return (done + ahead) / warm
    return max(0.0, (total - done) / max(1e-12, total - warm))


def lr_factor(progress: float, warmup: float) -> float:
    """Stage 2's schedule: by the share of training done (steps or time), warm-up a share too."""
    return warmup_decay(min(max(progress, 0.0), 1.0), 1.0, warmup)


def step_schedule(
    optimizer: torch.optim.Optimizer, steps: int, warmup: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Fine-tuning's schedule over ``steps`` optimizer steps, the first ``warmup`` share (at
    least one step) warming up."""
    warm = max(1, int(steps * warmup))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_decay(step, steps, warm, ahead=1)
    )
