"""Click options that several commands share, defined once so their defaults never drift."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.runtime import DEVICES

device_option = click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    help="auto: CUDA when present, else the CPU.",
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
