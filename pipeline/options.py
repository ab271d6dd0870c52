"""Click options that several commands share, defined once so their defaults never drift."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from pipeline.runtime import DEVICES, PRECISIONS


class FiniteRange(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and ``inf``: nan passes every bound
    check, and an infinite learning rate or time budget is never what was meant."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


device_option = click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    help="auto: CUDA when present, else the CPU.",
)

precision_option = click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="auto",
    help="Inference arithmetic. auto: bf16 on a GPU, and on a CPU with native bf16 where it "
    "measured faster for this command; else fp32.",
)

encode_batch_option = click.option(
    "--batch-size", default=256, type=click.IntRange(1), help="Texts per encoding batch."
)

results_out_option = click.option(
    "--out",
    "-o",
    default=Path("results"),
    type=click.Path(path_type=Path),
    help="Directory for results.json and results.md.",
)
