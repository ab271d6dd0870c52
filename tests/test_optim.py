"""The one warm-up/decay rule gives each stage exactly the learning rates it always had."""

from __future__ import annotations

import pytest
import torch

from stage2_train.optim import lr_factor, step_schedule

# lr_factor(p / 20, 0.1) for p in -1..21, as stage 2 computed it before the rule was shared.
STAGE2 = [
    0.0, 0.0, 0.5, 1.0, 0.9444444444444444, 0.888888888888889, 0.8333333333333333,
    0.7777777777777777, 0.7222222222222222, 0.6666666666666666, 0.6111111111111112,
    0.5555555555555556, 0.49999999999999994, 0.4444444444444445, 0.38888888888888884,
    0.33333333333333337, 0.2777777777777778, 0.22222222222222215, 0.16666666666666669,
    0.11111111111111108, 0.0555555555555556, 0.0, 0.0,
]  # fmt: skip
# The learning rate (base 1) at each step of GLUE fine-tuning, as its own schedule gave it.
FINE_TUNING = {
    (10, 0.25): [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0],
    (7, 0.0): [1.0, 1.0, 0.8333333333333334, 0.6666666666666666, 0.5, 0.3333333333333333,
               0.16666666666666666, 0.0],
    (3, 0.5): [1.0, 1.0, 0.5, 0.0],
}  # fmt: skip


def test_stage2_factors_are_unchanged() -> None:
    assert [lr_factor(p / 20, 0.1) for p in range(-1, 22)] == STAGE2
    assert [lr_factor(p / 8, 0.0) for p in range(9)] == [1 - p / 8 for p in range(9)]


@pytest.mark.parametrize(("steps", "warmup"), list(FINE_TUNING))
def test_fine_tuning_learning_rates_are_unchanged(steps: int, warmup: float) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = step_schedule(optimizer, steps, warmup)
    rates = []
    for _ in range(steps + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == FINE_TUNING[(steps, warmup)]
