"""GLUE dev: distilled student vs the scratch baseline vs the fine-tuned teacher, same budget.

Runs ``pipeline eval glue`` in-process for each model into one results folder (resumable: re-run
the same command to continue), optionally task-specific KD on top of the student, and writes
bench/results/glue.json with one table (task score x100, mean over seeds; per-task seconds),
published reference numbers and the issue's targets checked. The default budget is the full
training sets with 3 seeds, which takes hours on a CPU; ``--max-train-examples`` and
``--epochs`` shrink it for a smoke run (then the targets say nothing).

    python -m bench.glue --student runs/student --seeds 3
    python -m bench.glue --student runs/student --max-train-examples 64 --seeds 1 --epochs 1
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from scipy.stats import ttest_ind

from bench.common import ROOT, SHARED_DATA, run_pipeline, write_result
from data.glue import TASKS
from stage2_train.layout import is_student_dir
from stage3_eval.glue import glue_entries, task_score
from stage3_eval.results import load_results

# The tasks of ../shared/data/glue with a train set (QNLI has dev and test only).
AVAILABLE = ("cola", "sst2", "mrpc", "stsb", "rte", "wnli")
REFERENCE = {  # published GLUE dev results, x100 (the table)
    "ELMo": {"cola": 44.1, "sst2": 91.5, "mrpc": 76.6, "stsb": 70.4, "rte": 53.4, "wnli": 56.3},
    "BERT-base": {
        "cola": 56.3,
        "sst2": 92.7,
        "mrpc": 88.6,
        "stsb": 89.0,
        "rte": 69.3,
        "wnli": 53.5,
    },
}


def run_glue(
    model: str, name: str, args: argparse.Namespace, tasks: str, *extra: str, seeds: int
) -> None:
    """``pipeline eval glue`` for one model with ``seeds`` seeds."""
    argv = [
        "eval",
        "glue",
        "--model",
        model,
        "--name",
        name,
        "--tasks",
        tasks,
        "--data-dir",
        str(args.data_dir),
        "--out",
        str(args.out),
        "--seeds",
        str(seeds),
        "--device",
        args.device,
        "--no-predict-test",
        *extra,
    ]
    if args.max_train_examples:
        argv += ["--max-train-examples", str(args.max_train_examples)]
    if args.epochs:
        argv += ["--epochs", str(args.epochs)]
    run_pipeline(*argv)


def scores_by_model(out: Path) -> tuple[dict[str, dict[str, list[float]]], dict]:
    """{model: {task: [task score x100 per seed]}} and {model: {task: mean seconds}}."""
    entries = glue_entries(load_results(out))
    per_seed: dict[tuple[str, str, int], dict[str, dict[str, float]]] = {}
    seconds: dict[str, dict[str, list[float]]] = {}
    for r in entries:
        task = r.extra.get("glue_task")
        if task is None:
            continue
        per_seed.setdefault((r.model, task, r.seed), {}).setdefault(r.task, {})[r.metric] = r.value
        seconds.setdefault(r.model, {}).setdefault(task, [])
        if r.seconds is not None and r.metric == TASKS[task].metrics[0]:
            seconds[r.model][task].append(r.seconds)
    scores: dict[str, dict[str, list[float]]] = {}
    for (model, task, _), splits in sorted(per_seed.items()):
        scores.setdefault(model, {}).setdefault(task, []).append(100 * task_score(splits))
    timing = {
        m: {t: float(np.mean(v)) for t, v in tasks.items() if v} for m, tasks in seconds.items()
    }
    return scores, timing


def table(scores: dict, timing: dict, tasks: list[str]) -> str:
    rows = ["| model | " + " | ".join(tasks) + " | mean |", "|---|" + "---|" * (len(tasks) + 1)]
    for model, by_task in scores.items():
        means = [np.mean(by_task[t]) if t in by_task else np.nan for t in tasks]
        cells = [
            f"{m:.1f} ± {np.std(by_task[t], ddof=1):.1f}"
            if len(by_task.get(t, [])) > 1
            else ("–" if np.isnan(m) else f"{m:.1f}")
            for t, m in zip(tasks, means, strict=True)
        ]
        mean = "–" if np.isnan(means).any() else f"{np.mean(means):.1f}"  # only over all tasks
        rows.append(f"| {model} | " + " | ".join(cells) + f" | {mean} |")
    for name, ref in REFERENCE.items():
        values = [ref[t] for t in tasks]
        rows.append(
            f"| {name} (published) | "
            + " | ".join(f"{v:.1f}" for v in values)
            + f" | {np.mean(values):.1f} |"
        )
    rows += ["", "| seconds per run | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for model, by_task in timing.items():
        rows.append(
            f"| {model} | "
            + " | ".join(f"{by_task[t]:.0f}" if t in by_task else "–" for t in tasks)
            + " |"
        )
    return "\n".join(rows) + "\n"


def targets(scores: dict, tasks: list[str]) -> dict[str, bool | None]:
    """The issue's targets, None where a model needed for the check did not run."""

    def mean(model: str, task: str) -> float | None:
        values = scores.get(model, {}).get(task)
        return float(np.mean(values)) if values else None

    checks: dict[str, bool | None] = {}
    for task in tasks:
        if task == "wnli":
            continue
        s, b = mean("student", task), mean("scratch", task)
        checks[f"student > scratch on {task}"] = None if s is None or b is None else s > b
    student = [mean("student", t) for t in tasks]
    elmo = float(np.mean([REFERENCE["ELMo"][t] for t in tasks]))
    checks[f"student mean > ELMo mean {elmo:.1f}"] = (
        None if None in student else float(np.mean(student)) > elmo
    )  # type: ignore[arg-type]
    kd, plain = mean("student+kd", "sst2"), mean("student", "sst2")
    checks["KD adds on SST-2"] = None if kd is None or plain is None else kd > plain
    return checks


def student_vs_scratch(scores: dict, tasks: list[str]) -> dict[str, dict[str, float]]:
    """Per task: mean difference (x100), seeds of each, and Welch's t-test p-value.

    A difference smaller than the seed-to-seed spread is a tie, whatever its sign; the p-value
    says how often seeds alone would produce it.
    """
    out: dict[str, dict[str, float]] = {}
    for task in tasks:
        student = scores.get("student", {}).get(task, [])
        scratch = scores.get("scratch", {}).get(task, [])
        if not student or not scratch:
            continue
        entry = {
            "difference": float(np.mean(student) - np.mean(scratch)),
            "student_seeds": len(student),
            "scratch_seeds": len(scratch),
        }
        if len(student) > 1 and len(scratch) > 1:
            entry["welch_p"] = float(ttest_ind(student, scratch, equal_var=False).pvalue)
        out[task] = entry
    return out


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", type=Path, default=ROOT / "runs" / "student")
    parser.add_argument("--teacher", default=None, help="HF encoder [default: embedded]")
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA / "glue")
    parser.add_argument("--tasks", default=",".join(AVAILABLE))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--teacher-seeds",
        type=int,
        default=None,
        help="Seeds for the teacher and KD rows, the slow ones [default: --seeds]",
    )
    parser.add_argument("--epochs", type=int, default=None, help="[default: per task]")
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--kd-tasks", default="sst2", help="Student + KD on these ('' skips).")
    parser.add_argument("--models", default="student,scratch,teacher")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-glue")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    args.teacher_seeds = args.teacher_seeds or args.seeds
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    models = [m.strip() for m in args.models.split(",")]
    have_student = is_student_dir(args.student)
    teacher_opt = ["--teacher", args.teacher] if args.teacher else []
    finetuned = args.out / "teacher-finetuned"
    if "student" in models and have_student:
        run_glue(str(args.student), "student", args, ",".join(tasks), seeds=args.seeds)
    elif "student" in models:
        print(f"no student at {args.student}: student rows skipped")
    if "scratch" in models:
        config = ["--student-config", str(args.student)] if have_student else []
        run_glue(
            "scratch", "scratch", args, ",".join(tasks), *config, *teacher_opt, seeds=args.seeds
        )
    if "teacher" in models:
        run_glue(
            args.teacher or "teacher",
            "teacher",
            args,
            ",".join(tasks),
            "--save-finetuned",
            str(finetuned),
            seeds=args.teacher_seeds,
        )
    if args.kd_tasks and have_student and finetuned.is_dir():
        run_glue(
            str(args.student),
            "student+kd",
            args,
            args.kd_tasks,
            "--kd-teacher",
            str(finetuned),
            seeds=args.teacher_seeds,
        )
    scores, timing = scores_by_model(args.out)
    markdown = table(scores, timing, tasks)
    print(markdown)
    write_result(
        "glue",
        {
            "budget": {
                "seeds": args.seeds,  # per run of this command; the cells pool every seed in out
                "teacher_seeds": args.teacher_seeds,
                "epochs": args.epochs or "per task",
                "max_train_examples": args.max_train_examples,
                "tasks": tasks,
            },
            "comparable_to_published": args.max_train_examples is None and args.epochs is None,
            "scores_x100": {
                m: {t: float(np.mean(v)) for t, v in s.items()} for m, s in scores.items()
            },
            "seconds_per_run": timing,
            "reference": REFERENCE,
            "targets": targets(scores, tasks),
            "student_vs_scratch": student_vs_scratch(scores, tasks),
            "table": markdown,
            "results_dir": str(args.out),
        },
    )


if __name__ == "__main__":
    main_bench()
