"""The ablation's selection rule (fixed before any numbers: docs/student.md, Ablation), its table.

Each variant's measurements come in as a dict with ``sts`` (zero-shot STS-B dev Spearman, 0–1),
``probe`` ({task: [frozen-probe task score ×100, one per seed]}) and ``sentences_per_second``
(inference on the fixed corpus lines). The rule turns them into a score per seed, a mean and a
seed std, and picks the variant to adopt.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT = "default"
SPEED_TOLERANCE = 0.10  # an eligible variant encodes at least 90 % as fast as the default
RULE = (
    "Per seed s: probe_s = mean over the probe tasks of the frozen-probe task score ×100 "
    "(SST-2 accuracy, CoLA Matthews, MRPC mean of F1 and accuracy, RTE accuracy); "
    "score_s = mean(STS-B dev Spearman ×100, probe_s). A variant's score is the mean of score_s "
    "over the seeds, its seed std their sample std. Eligible: inference sentences/s at least "
    f"{1 - SPEED_TOLERANCE:.0%} of the default's, measured in the same process and rounds. "
    "The eligible variant with the highest score is adopted, unless its lead over the default "
    "is at most one seed std (the larger of the two variants' stds): a tie goes to the default."
)


def seed_scores(sts: float, probe: dict[str, list[float]]) -> list[float]:
    """score_s for every seed that every probe task has."""
    seeds = min((len(values) for values in probe.values()), default=0)
    return [
        float(np.mean([100 * sts, np.mean([values[s] for values in probe.values()])]))
        for s in range(seeds)
    ]


def summarise(row: dict[str, Any]) -> dict[str, Any]:
    """The rule's numbers for one variant: per-seed scores, their mean and std, probe means."""
    per_seed = seed_scores(row["sts"], row["probe"])
    return {
        "probe_mean": {t: float(np.mean(v)) for t, v in row["probe"].items()},
        "seed_scores": per_seed,
        "score": float(np.mean(per_seed)) if per_seed else None,
        "seed_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
    }


def select(rows: dict[str, dict[str, Any]], baseline: str = DEFAULT) -> dict[str, Any]:
    """Apply ``RULE`` to ``{variant: row + summarise(row)}``; ``baseline`` (the incumbent the
    speed floor is measured against and a tie goes to) must be there."""
    default = rows[baseline]
    floor = (1 - SPEED_TOLERANCE) * default["sentences_per_second"]
    eligible = {
        name: row
        for name, row in rows.items()
        if row["score"] is not None and row["sentences_per_second"] >= floor
    }
    best = max(eligible, key=lambda name: eligible[name]["score"])
    lead = eligible[best]["score"] - default["score"]
    margin = max(eligible[best]["seed_std"], default["seed_std"])
    chosen = best if best == baseline or lead > margin else baseline
    return {
        "eligible": sorted(eligible),
        "best_eligible": best,
        "lead_over_default": lead,
        "tie_margin": margin,
        "chosen": chosen,
    }


def table(rows: dict[str, dict[str, Any]], tasks: list[str], chosen: str) -> str:
    """The markdown table of bench/results/ablation.md, one row per variant."""
    head = ["variant", "group", "STS-B ×100", "val cos", *tasks, "score ± seed std"]
    head += ["sentences seen", "params", "sent/s", "eligible"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for name, row in rows.items():
        probe = [f"{row['probe_mean'][t]:.1f}" if t in row["probe_mean"] else "–" for t in tasks]
        score = "–" if row["score"] is None else f"{row['score']:.2f} ± {row['seed_std']:.2f}"
        cells = [
            f"**{name}**" if name == chosen else name,
            row["group"],
            f"{100 * row['sts']:.2f}",
            "–" if row["val_cosine"] is None else f"{row['val_cosine']:.4f}",
            *probe,
            score,
            f"{row['sentences_seen']:,}",
            f"{row['parameters'] / 1e6:.2f}M",
            f"{row['sentences_per_second']:,.0f}",
            "yes" if row["eligible"] else "no",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
