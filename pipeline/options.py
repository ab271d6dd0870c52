"""Click options that several commands share, defined once so their defaults never drift."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import click

from data.precision import PRECISIONS
from pipeline.runtime import DEVICES
from stage2_train.config import INFERENCE
from stage3_eval.encoders import Encoder

# The longest --max-length a command accepts: tokens per text, a bound on typing errors, not a
# batch budget (that it equals data.batching.TEACHER_MAX_TOKENS is chance).
MAX_LENGTH_LIMIT = 8192


class FiniteRange(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and ``inf``: nan passes every bound
    check, and an infinite learning rate or time budget is never what was meant."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def config_defaults(config: type) -> dict[str, Any]:
    """``{field: default}`` of a config dataclass (fields without one left out): the CLI's
    defaults are read from the dataclass the command fills, never typed a second time."""
    values = {}
    for item in dataclasses.fields(config):
        if item.default is not dataclasses.MISSING:
            values[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            values[item.name] = item.default_factory()
    return values


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
    "--batch-size",
    default=config_defaults(Encoder)["batch_size"],
    type=click.IntRange(1),
    help=f"Texts per encoding batch [default: {INFERENCE['cpu_batch_size']} on the CPU, "
    f"{INFERENCE['gpu_batch_size']} on a GPU]",
)

first_shards_option = click.option(
    "--first-shards",
    default=None,
    type=click.IntRange(1),
    help="Use only shards 0..N-1 of --targets (the corpus's first N x shard_size lines), e.g. "
    "while stage 1 is still encoding the rest [default: all, each one finished]",
)

results_out_option = click.option(
    "--out",
    "-o",
    default=Path("results"),
    type=click.Path(path_type=Path),
    help="Directory for results.json and results.md.",
)
