"""Test-set predictions in the GLUE server's submission format.

One ``<Task>.tsv`` per test split (``CoLA.tsv``, ``MNLI-m.tsv``, …) with the header
``index<TAB>prediction``: label strings as the task's files spell them (``entailment``, ``1``),
STS-B scores clipped to the 0–5 scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data import files
from data.glue import GlueSplit
from stage3_eval.glue.metrics import predictions


def submission_name(split: GlueSplit) -> str:
    return next(t.submission for t in split.task.tests if t.name == split.name)


def write_submission(folder: Path, split: GlueSplit, outputs: np.ndarray) -> Path:
    """Write ``folder/<Task>.tsv`` for a test split's raw model outputs; returns its path."""
    with files.os_errors(folder, "cannot create"):
        folder.mkdir(parents=True, exist_ok=True)
    pred = predictions(split.task, outputs)
    if split.task.is_regression:
        values = [f"{v:.3f}" for v in np.clip(pred, 0.0, 5.0)]
    else:
        values = [split.task.labels[int(i)] for i in pred]
    lines = ["index\tprediction", *(f"{i}\t{v}" for i, v in zip(split.index, values, strict=True))]
    path = folder / submission_name(split)
    files.write_text(path, "\n".join(lines) + "\n")
    return path
