"""GLUE results as a comparison: one column per model, mean ± std over seeds, x100 as papers print.

It reads back ``results.json`` (Contract 3), so runs of different models into the same folder —
student, scratch, teacher, student + KD — come out as one table.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from data.glue import TASKS, GlueTask
from stage3_eval.results import Result

BENCHMARK = "glue"
SUMMARY_MD = "glue.md"
# The timings table's first cell; every glue.md this module ever wrote has it, so it is its mark.
SUMMARY_MARK = "| seconds per run |"


def glue_entries(results: list[Result]) -> list[Result]:
    return [r for r in results if r.extra.get("benchmark") == BENCHMARK]


def stored_scores(
    results: list[Result], task: GlueTask, model: str, seed: int
) -> dict[str, dict[str, float]] | None:
    """``{split: {metric: value}}`` already recorded for (task, model, seed), else None."""
    found: dict[str, dict[str, float]] = defaultdict(dict)
    for r in glue_entries(results):
        if r.model == model and r.seed == seed and r.extra.get("glue_task") == task.name:
            found[r.task][r.metric] = r.value
    return dict(found) or None


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    scaled = 100 * np.asarray(values)
    if len(values) == 1:
        return f"{scaled[0]:.1f}"
    return f"{scaled.mean():.1f} ± {scaled.std(ddof=1):.1f} ({len(values)})"


def summary_table(results: list[Result]) -> str:
    """Markdown: a row per (split, metric) and the GLUE score, a column per model; then timings."""
    entries = glue_entries(results)
    models = list(dict.fromkeys(r.model for r in entries))
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    timed: set[tuple[str, str, int | None]] = set()
    for r in entries:
        values[(r.task, r.metric, r.model)].append(r.value)
        task = r.extra.get("glue_task")
        if task and r.seconds is not None and (task, r.model, r.seed) not in timed:
            timed.add((task, r.model, r.seed))
            seconds[(task, r.model)].append(r.seconds)
    rows = [
        (e.name, m)
        for t in TASKS.values()
        for e in t.evals
        for m in t.metrics
        if any(values.get((e.name, m, model)) for model in models)
    ]
    rows.append(("glue", "score"))
    head = "| task | metric | " + " | ".join(models) + " |"
    rule = "|---|---|" + "---|" * len(models)
    lines = [head, rule]
    for task, metric in rows:
        cells = " | ".join(_cell(values.get((task, metric, m), [])) for m in models)
        lines.append(f"| {task} | {metric} | {cells} |")
    lines += [
        "",
        f"{SUMMARY_MARK} " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for name in TASKS:
        if any((name, m) in seconds for m in models):
            cells = " | ".join(
                f"{np.mean(seconds[(name, m)]):.0f}" if (name, m) in seconds else "–"
                for m in models
            )
            lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n"
