"""The GLUE benchmark's table and statistics, computed from ``results.json`` alone (no training).

Rows are the models of the paper's comparison, filed in one results folder under these names by
``pipeline eval glue --name``: the BiLSTM from scratch, with and without Tang et al.'s task KD,
the distilled student (SRA), with and without task KD, and the fine-tuned teacher (the KD source).
Cells are task scores x100 (two-metric tasks: the mean of both, as the GLUE score counts them),
mean ± sample std over seeds. The mean column averages CoLA, SST-2, MRPC, STS-B and RTE; WNLI
stands apart, beside the majority-class dev score, since every model here lands near or below it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.glue import TASKS
from stage3_eval.glue import glue_entries, task_score
from stage3_eval.results import Result, load_results

ROWS = ("scratch", "scratch+kd", "student", "student+kd", "teacher")
LABELS = {
    "scratch": "scratch (same BiLSTM, no distillation)",
    "scratch+kd": "scratch + task KD (Tang et al. 2019)",
    "student": "student (SRA)",
    "student+kd": "student + task KD (SRA + KD)",
    "teacher": "teacher, fine-tuned (the KD source)",
}
AVERAGED = ("cola", "sst2", "mrpc", "stsb", "rte")
WNLI = "wnli"
TASK_ORDER = (*AVERAGED, WNLI)
HEADERS = {t: TASKS[t].folder for t in TASK_ORDER}
BILSTM_SEEDS, SST2_SEEDS, TEACHER_SEEDS = 5, 3, 1  # SST-2's 67k rows make a run 10x longer
COMPARISONS = (  # (first, second): first minus second, per task
    ("student", "scratch"),
    ("student", "scratch+kd"),
    ("student+kd", "scratch+kd"),
    ("scratch+kd", "scratch"),  # what task KD adds to each BiLSTM
    ("student+kd", "student"),
)
SIGNIFICANT = 0.05
TEACHER_GAP = 2.0  # points on SST-2 that student + KD may trail the fine-tuned teacher by

Scores = dict[str, dict[str, list[float]]]  # {row: {task: [score x100 per seed, seed order]}}


def planned_seeds(row: str, task: str, cap: int | None = None) -> int:
    """Seeds planned for (row, task): 5 per BiLSTM row (3 on SST-2), 1 for the teacher."""
    seeds = TEACHER_SEEDS if row == "teacher" else SST2_SEEDS if task == "sst2" else BILSTM_SEEDS
    return min(seeds, cap) if cap else seeds


@dataclass(frozen=True)
class Reference:
    """A published row: the figures as printed (both, for a two-metric task) and where from."""

    name: str
    split: str  # "dev" or "test": test numbers come from the GLUE server, not comparable 1:1
    source: str
    reported: dict[str, tuple[float, ...]]
    note: str = ""

    def scores(self) -> dict[str, float]:
        return {task: float(np.mean(values)) for task, values in self.reported.items()}


# REFERENCE (published, x100; quoted only where a source was found and read):
# - ELMo: Wang et al. 2018, "GLUE: A Multi-Task Benchmark and Analysis Platform for Natural
#   Language Understanding" (arXiv 1804.07461), Appendix C, Table 6 (dev set), single-task
#   BiLSTM + ELMo: CoLA 44.1, SST-2 91.5, MRPC 70.8/82.3 (acc/F1), STS-B 70.3/70.5
#   (Pearson/Spearman), RTE 53.4, WNLI 56.3.
# - BERT-base: Devlin et al. 2019, "BERT" (arXiv 1810.04805), Table 1, GLUE test server:
#   CoLA 52.1, SST-2 93.5, MRPC 88.9 (F1 only), STS-B 85.8 (Spearman only), RTE 66.4; no WNLI.
# - BiLSTM_SOFT: Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple
#   Neural Networks" (arXiv 1903.12136), Table 1, test: SST-2 90.7 (its other columns are QQP
#   and MNLI, which are not in ../shared/data/glue).
# Wu et al. 2020 (arXiv 2004.03097) is left out: its results table could not be retrieved.
REFERENCES = (
    Reference(
        "ELMo",
        "dev",
        "Wang et al. 2018, GLUE (arXiv 1804.07461), Appendix C Table 6, dev, single-task "
        "BiLSTM + ELMo",
        {
            "cola": (44.1,),
            "sst2": (91.5,),
            "mrpc": (70.8, 82.3),
            "stsb": (70.3, 70.5),
            "rte": (53.4,),
            "wnli": (56.3,),
        },
        "MRPC acc/F1 and STS-B Pearson/Spearman averaged, as our cells are",
    ),
    Reference(
        "BERT-base",
        "test",
        "Devlin et al. 2019, BERT (arXiv 1810.04805), Table 1, GLUE test server",
        {"cola": (52.1,), "sst2": (93.5,), "mrpc": (88.9,), "stsb": (85.8,), "rte": (66.4,)},
        "MRPC is F1 only and STS-B Spearman only; WNLI not reported",
    ),
    Reference(
        "BiLSTM_SOFT (Tang et al.)",
        "test",
        "Tang et al. 2019 (arXiv 1903.12136), Table 1, test",
        {"sst2": (90.7,)},
        "SST-2 only: the paper's other tasks are QQP and MNLI",
    ),
)


def per_seed(results: list[Result]) -> tuple[Scores, dict[str, dict[str, float]]]:
    """Task scores x100 per (row, task) in seed order, and the mean seconds per run."""
    splits: dict[tuple[str, str, int], dict[str, dict[str, float]]] = {}
    seconds: dict[tuple[str, str, int], float] = {}
    for r in glue_entries(results):
        task = r.extra.get("glue_task")
        if task is None:
            continue
        key = (r.model, task, r.seed or 0)
        splits.setdefault(key, {}).setdefault(r.task, {})[r.metric] = r.value
        if r.seconds is not None:
            seconds[key] = r.seconds
    scores: Scores = {}
    timed: dict[str, dict[str, list[float]]] = {}
    for model, task, seed in sorted(splits):
        scores.setdefault(model, {}).setdefault(task, []).append(
            100 * task_score(splits[(model, task, seed)])
        )
        if (model, task, seed) in seconds:
            timed.setdefault(model, {}).setdefault(task, []).append(seconds[(model, task, seed)])
    timing = {m: {t: float(np.mean(v)) for t, v in by.items()} for m, by in timed.items()}
    return scores, timing


def scores_by_model(out: Path) -> tuple[Scores, dict[str, dict[str, float]]]:
    """:func:`per_seed` of the results folder ``out``."""
    return per_seed(load_results(out))


def seed_counts(scores: Scores, tasks: list[str], cap: int | None = None) -> dict:
    """{row: {task: {"done": n, "planned": n}}} for every benchmark row."""
    return {
        row: {
            t: {"done": len(scores.get(row, {}).get(t, [])), "planned": planned_seeds(row, t, cap)}
            for t in tasks
        }
        for row in ROWS
    }


def is_complete(counts: dict) -> bool:
    return all(c["done"] >= c["planned"] for by in counts.values() for c in by.values())


def cell(values: list[float], planned: int) -> str:
    """``mean ± std``, and ``(done/planned)`` while seeds are missing; ``–`` for none."""
    if not values:
        return "–"
    text = f"{np.mean(values):.1f}"
    if len(values) > 1:
        text += f" ± {np.std(values, ddof=1):.1f}"
    if len(values) < planned:
        text += f" ({len(values)}/{planned})"
    return text


def averaged_mean(by_task: dict[str, float]) -> float | None:
    """Mean over CoLA, SST-2, MRPC, STS-B and RTE, only when every one of them has a score."""
    if any(t not in by_task for t in AVERAGED):
        return None
    return float(np.mean([by_task[t] for t in AVERAGED]))


def means(scores: Scores) -> dict[str, dict[str, float]]:
    return {m: {t: float(np.mean(v)) for t, v in by.items() if v} for m, by in scores.items()}


def welch(first: list[float], second: list[float]) -> float | None:
    """Welch's t-test p-value (scipy, unequal variances); None below two seeds a side or when
    both sides have no spread (the test is undefined)."""
    from scipy.stats import ttest_ind

    if len(first) < 2 or len(second) < 2:
        return None
    p = float(ttest_ind(first, second, equal_var=False).pvalue)
    return None if np.isnan(p) else p


def compare(scores: Scores, first: str, second: str, tasks: list[str]) -> dict[str, dict]:
    """Per task with both rows: mean difference (x100), seeds of each, Welch p-value.

    A difference smaller than the seed-to-seed spread is a tie, whatever its sign; the p-value
    says how often seeds alone would produce it.
    """
    out: dict[str, dict] = {}
    for task in tasks:
        a, b = scores.get(first, {}).get(task, []), scores.get(second, {}).get(task, [])
        if not a or not b:
            continue
        out[task] = {
            "difference": float(np.mean(a) - np.mean(b)),
            f"{first}_seeds": len(a),
            f"{second}_seeds": len(b),
            "welch_p": welch(a, b),
        }
    return out


def student_vs_scratch(scores: Scores, tasks: list[str]) -> dict[str, dict]:
    return compare(scores, "student", "scratch", tasks)


def comparisons(scores: Scores, tasks: list[str]) -> dict[str, dict[str, dict]]:
    return {f"{a} vs {b}": compare(scores, a, b, tasks) for a, b in COMPARISONS}


def _wins(compared: dict[str, dict]) -> list[bool] | None:
    """Whether the first row is ahead on each averaged task; None if a task lacks either row."""
    if any(t not in compared for t in AVERAGED):
        return None
    return [compared[t]["difference"] > 0 for t in AVERAGED]


def _significantly_ahead(compared: dict[str, dict]) -> bool | None:
    """Ahead on every averaged task and with p < SIGNIFICANT on at least four of them."""
    ahead = _wins(compared)
    if ahead is None or not all(ahead):
        return None if ahead is None else False
    p_values = [compared[t]["welch_p"] for t in AVERAGED]
    if None in p_values:
        return None
    return sum(p < SIGNIFICANT for p in p_values) >= 4


def targets(scores: Scores) -> dict[str, bool | None]:
    """The issue's targets on the averaged tasks; None where a row or a p-value is missing."""
    kd = _wins(compare(scores, "student+kd", "scratch+kd", list(AVERAGED)))
    teacher = scores.get("teacher", {}).get("sst2")
    student_kd = scores.get("student+kd", {}).get("sst2")
    close = None
    if teacher and student_kd:
        close = bool(np.mean(teacher) - np.mean(student_kd) <= TEACHER_GAP)
    return {
        "student+kd > scratch+kd on >= 4 of 5 averaged tasks": None if kd is None else sum(kd) >= 4,
        f"student > scratch on every averaged task, p < {SIGNIFICANT} on >= 4": (
            _significantly_ahead(compare(scores, "student", "scratch", list(AVERAGED)))
        ),
        f"student+kd within {TEACHER_GAP:.0f} points of the fine-tuned teacher on SST-2": close,
    }


def score_table(scores: Scores, tasks: list[str], majority: float | None, cap: int | None) -> str:
    """Markdown: a row per model and per published reference; WNLI after the mean."""
    averaged = [t for t in tasks if t != WNLI]
    wnli = [WNLI] if WNLI in tasks else []
    majority_text = "?" if majority is None else f"{majority:.1f}"
    mean_label = "mean" if set(averaged) == set(AVERAGED) else "mean (all 5 tasks)"
    head = [HEADERS[t] for t in averaged] + [mean_label]
    head += [f"WNLI (majority class {majority_text})"] * len(wnli)
    lines = ["| model | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for row in ROWS:
        by_task = scores.get(row, {})
        mean = averaged_mean(means(scores).get(row, {}))
        cells = [cell(by_task.get(t, []), planned_seeds(row, t, cap)) for t in averaged]
        cells.append("–" if mean is None else f"{mean:.1f}")
        cells += [cell(by_task.get(t, []), planned_seeds(row, t, cap)) for t in wnli]
        lines.append(f"| {LABELS[row]} | " + " | ".join(cells) + " |")
    for ref in REFERENCES:
        values = ref.scores()
        mean = averaged_mean(values)
        cells = [f"{values[t]:.1f}" if t in values else "–" for t in averaged]
        cells.append("–" if mean is None else f"{mean:.1f}")
        cells += [f"{values[t]:.1f}" if t in values else "–" for t in wnli]
        lines.append(f"| {ref.name} (published, {ref.split}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def seconds_table(timing: dict[str, dict[str, float]], tasks: list[str]) -> str:
    head = [HEADERS[t] for t in tasks]
    lines = ["| seconds per run | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for row in ROWS:
        by_task = timing.get(row, {})
        cells = [f"{by_task[t]:.1f}" if t in by_task else "–" for t in tasks]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparison_table(compared: dict[str, dict[str, dict]], tasks: list[str]) -> str:
    """Markdown: each comparison's difference and Welch p-value per task."""
    head = [HEADERS[t] for t in tasks]
    lines = ["| difference (Welch p) | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for name, by_task in compared.items():
        cells = []
        for t in tasks:
            entry = by_task.get(t)
            if entry is None:
                cells.append("–")
                continue
            p = entry["welch_p"]
            cells.append(f"{entry['difference']:+.1f}" + ("" if p is None else f" ({p:.2g})"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def speed_line(speed: dict) -> str:
    if "skipped" in speed:
        return f"Inference speed: skipped ({speed['skipped']})."
    rates = speed["sentences_per_second"]
    return (
        f"Inference speed on {speed['split']} dev ({speed['sentences']} sentences, "
        f"{speed['threads']} threads, one process): student {rates['student']:.0f} sentences/s, "
        f"fine-tuned teacher {rates['teacher']:.0f} sentences/s ({speed['speedup']:.1f}x)."
    )


def summary(
    scores: Scores,
    timing: dict[str, dict[str, float]],
    tasks: list[str],
    majority: float | None,
    speed: dict,
    cap: int | None = None,
) -> dict:
    """Everything the JSON file holds about the results (the caller adds budget and paths)."""
    counts = seed_counts(scores, tasks, cap)
    return {
        "complete": is_complete(counts),
        "seeds": counts,
        "scores_x100": means(scores),
        "scores_x100_per_seed": scores,
        "std_x100": {
            m: {t: float(np.std(v, ddof=1)) for t, v in by.items() if len(v) > 1}
            for m, by in scores.items()
        },
        "mean_x100": {m: averaged_mean(by) for m, by in means(scores).items() if m in ROWS},
        "mean_tasks": list(AVERAGED),
        "wnli_majority_class_x100": majority,
        "seconds_per_run": timing,
        "comparisons": comparisons(scores, tasks),
        "targets": targets(scores),
        "inference_speed": speed,
        "reference": {
            ref.name: {
                "split": ref.split,
                "source": ref.source,
                "as_reported_x100": ref.reported,
                "scores_x100": ref.scores(),
                "note": ref.note,
            }
            for ref in REFERENCES
        },
        "table": "\n".join(  # scores, seconds, comparisons, targets, inference speed
            [
                score_table(scores, tasks, majority, cap),
                seconds_table(timing, tasks),
                comparison_table(comparisons(scores, tasks), tasks),
                "\n".join(f"- {name}: {value}" for name, value in targets(scores).items()) + "\n",
                speed_line(speed) + "\n",
            ]
        ),
    }


def majority_share(labels: np.ndarray) -> float:
    """The majority class's share of ``labels``, x100: what always answering it scores."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return float(100 * counts.max() / counts.sum())
