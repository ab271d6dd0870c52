"""GLUE dev as the paper measures it: scratch, scratch + KD, student, student + KD, teacher.

Runs ``pipeline eval glue`` in-process for every row of the table into one results folder
(``runs/bench-glue``), each under its own ``--name``, on the full training sets: 5 seeds per
BiLSTM row on CoLA, MRPC, STS-B, RTE and WNLI, 3 on SST-2, 1 for the teacher (fine-tuned and
saved as the KD source). A (row, task, seed) already in ``results.json`` is never redone, so the
same command continues over several sittings; ``--rows`` runs only some rows, ``--report-only``
writes the table from what is finished. ``--teacher``, ``--ledger`` and ``--result-name`` run
the same table for another teacher (bench/teachers.py). Writes bench/results/glue.json (the table of
bench/glue_table.py, seeds done/planned, Welch p-values, the targets, seconds per run, and the
fine-tuned student's inference speed beside the fine-tuned teacher's).

    python -m bench.glue --student runs/student --targets runs/corpus-shards
    python -m bench.glue --rows student+kd,scratch+kd --augment 4
    python -m bench.glue --report-only

Rows and the ``pipeline eval glue`` options they run with (each with ``--name ROW``):

    scratch     --model scratch --student-config STUDENT --teacher TARGETS
    student     --model STUDENT --save-finetuned OUT/student-finetuned
    teacher     --model teacher --save-finetuned OUT/teacher-finetuned
    student+kd  --model STUDENT --kd-teacher OUT/teacher-finetuned
    scratch+kd  --model scratch --student-config STUDENT --teacher TARGETS
                --kd-teacher OUT/teacher-finetuned

The two KD rows share the augmentation options given here. Another ``eval glue`` may file
into ``--out`` at the same time (results.json is merged under a lock).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench import ledger
from bench.common import RESULTS, ROOT, SHARED_DATA, run_pipeline, write_result
from bench.glue_table import TASK_ORDER, WNLI, majority_share, planned_seeds, summary
from bench.glue_table import scores_by_model as collect
from data.glue import TASKS, load_task
from stage1_encode.teacher import embedded_teacher_path
from stage2_train.layout import is_student_dir
from stage3_eval.glue.augment import AugmentConfig
from stage3_eval.glue.model import is_finetuned_dir
from stage3_eval.glue.report import stored_scores
from stage3_eval.results import load_results

STUDENT_FT, TEACHER_FT = "student-finetuned", "teacher-finetuned"
SPEED_TASK = "sst2"
RUN_ORDER = ("scratch", "student", "teacher", "student+kd", "scratch+kd")  # KD after its source


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", type=Path, default=ROOT / "runs" / "student")
    parser.add_argument(
        "--targets",
        type=Path,
        default=ROOT / "runs" / "corpus-shards",
        help="Stage-1 shard dir (or teacher folder): the scratch rows' word pieces",
    )
    parser.add_argument("--teacher", default=None, help="Teacher of the teacher row [embedded]")
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA / "glue")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-glue")
    parser.add_argument("--rows", default=",".join(RUN_ORDER), help="Comma list of rows to run.")
    parser.add_argument("--tasks", default=",".join(TASK_ORDER))
    parser.add_argument("--report-only", action="store_true", help="Only write the table.")
    parser.add_argument("--augment", type=int, default=None, help="KD rows: augmented copies")
    parser.add_argument("--p-mask", type=float, default=None, help="KD rows: masking prob.")
    parser.add_argument("--p-ngram", type=float, default=None, help="KD rows: n-gram prob.")
    parser.add_argument("--p-pos", type=float, default=None, help="KD rows: POS-guided prob.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="Where NAME.json goes.")
    parser.add_argument("--result-name", default="glue", help="NAME of the result file.")
    parser.add_argument(
        "--ledger",
        type=Path,
        default=RESULTS / "glue_runs.json",
        help="Finished runs kept in the repository (bench/ledger.py): restored into --out when "
        "their inputs are the same, so a fresh machine goes on where the last one stopped.",
    )
    smoke = parser.add_argument_group("smoke runs (the numbers then say nothing)")
    smoke.add_argument("--max-seeds", type=int, default=None, help="Cap every planned seed count")
    smoke.add_argument("--epochs", type=int, default=None)
    smoke.add_argument("--max-train-examples", type=int, default=None)
    args = parser.parse_args(argv)
    args.rows = _choices(args.rows, RUN_ORDER, parser, "--rows")
    args.tasks = _choices(args.tasks, TASK_ORDER, parser, "--tasks")
    return args


def _choices(spec: str, allowed: tuple[str, ...], parser, option: str) -> list[str]:
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [c for c in chosen if c not in allowed]
    if unknown or not chosen:
        parser.error(f"{option}: choose from {', '.join(allowed)} (got {spec!r})")
    return [a for a in allowed if a in chosen]  # in ``allowed``'s order


def row_options(row: str, args: argparse.Namespace) -> list[str] | str:
    """``eval glue`` options of a row, or why it cannot run yet."""
    student, targets = str(args.student), str(args.targets)
    if row in ("student", "student+kd") and not is_student_dir(args.student):
        return f"no student at {args.student}"
    if row.startswith("scratch") and not args.targets.exists():
        return f"no word pieces at --targets {args.targets}"
    if row.startswith("scratch") and not is_student_dir(args.student):
        return f"no student at {args.student} for --student-config"
    scratch = ["--model", "scratch", "--student-config", student, "--teacher", targets]
    teacher = ["--model", "teacher", *(["--teacher", args.teacher] if args.teacher else [])]
    options = {
        "scratch": scratch,
        "student": ["--model", student, "--save-finetuned", str(args.out / STUDENT_FT)],
        "teacher": [*teacher, "--save-finetuned", str(args.out / TEACHER_FT)],
        "student+kd": ["--model", student],
        "scratch+kd": scratch,
    }[row]
    if row.endswith("+kd"):
        options = [*options, "--kd-teacher", str(args.out / TEACHER_FT), *augment_options(args)]
    return options


def row_fingerprints(args: argparse.Namespace) -> dict[str, str]:
    """What each row's results depend on, hashed (bench/ledger.py); rows whose inputs are not
    there yet have none."""
    smoke = {"epochs": args.epochs, "max_train_examples": args.max_train_examples}
    teacher = args.teacher or embedded_teacher_path()
    teacher_id = ledger.weights_sha256(Path(teacher)) if Path(teacher).is_dir() else teacher
    found = {"teacher": ledger.fingerprint("teacher", teacher_id, smoke)}
    if is_student_dir(args.student):
        found["student"] = ledger.student_fingerprint(args.student, smoke)
        if args.targets.exists():
            found["scratch"] = ledger.scratch_fingerprint(args.targets, args.student, smoke)
    for row in ("student", "scratch"):
        if row in found:
            kd = (found[row], found["teacher"], kd_augmentation(args))
            found[f"{row}+kd"] = ledger.fingerprint("kd", *kd)
    return found


# The KD rows' augmentation options: the eval glue flag each is passed on as (bench.glue takes
# the same flags) and the AugmentConfig field it sets.
KD_AUGMENT_FLAGS = {
    "--augment": "copies",
    "--p-mask": "p_mask",
    "--p-pos": "p_pos",
    "--p-ngram": "p_ngram",
}


def given_augmentation(args: argparse.Namespace) -> dict[str, float | None]:
    """Each KD augmentation flag and its value here, None where it was not given."""
    return {flag: getattr(args, flag[2:].replace("-", "_")) for flag in KD_AUGMENT_FLAGS}


def kd_augmentation(args: argparse.Namespace) -> dict[str, float]:
    """The augmentation the KD rows run with: the options given, ``AugmentConfig``'s defaults
    (eval glue's) for the rest. Their fingerprint hashes this, so naming a default is no change."""
    defaults, given = AugmentConfig(), given_augmentation(args)
    return {
        field: getattr(defaults, field) if given[flag] is None else given[flag]
        for flag, field in KD_AUGMENT_FLAGS.items()
    }


def augment_options(args: argparse.Namespace) -> list[str]:
    """The augmentation options both KD rows get (the CLI's defaults where not given)."""
    given = given_augmentation(args).items()
    return [str(part) for flag, value in given if value is not None for part in (flag, value)]


def runnable_tasks(row: str, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The row's tasks that can run, and a note for each that cannot (no KD source yet)."""
    if not row.endswith("+kd"):
        return list(args.tasks), []
    folder = args.out / TEACHER_FT
    ready = [t for t in args.tasks if is_finetuned_dir(folder / t)]
    missing = [t for t in args.tasks if t not in ready]
    return ready, [f"{row} {t}: no fine-tuned teacher in {folder}" for t in missing]


def pending(row: str, tasks: list[str], seeds: int, args: argparse.Namespace) -> list[str]:
    """The tasks among ``tasks`` with a seed below ``seeds`` not yet in ``--out``'s results;
    for the teacher also those whose KD source is gone (a row restored from the ledger) while
    a KD row still needs it."""
    done = load_results(args.out)

    def missing(name: str, task: str, count: int) -> bool:
        return any(stored_scores(done, TASKS[task], name, s) is None for s in range(count))

    def refit(task: str) -> bool:
        needed = any(
            missing(kd, task, planned_seeds(kd, task, args.max_seeds))
            for kd in args.rows
            if kd.endswith("+kd")
        )
        return row == "teacher" and needed and not is_finetuned_dir(args.out / TEACHER_FT / task)

    return [t for t in tasks if missing(row, t, seeds) or refit(t)]


def run_row(row: str, args: argparse.Namespace) -> list[str]:
    """Run every unfinished (task, seed) of ``row``, one ``eval glue`` per seed count; returns
    notes on what could not run."""
    options = row_options(row, args)
    if isinstance(options, str):
        return [f"{row}: {options}"]
    tasks, notes = runnable_tasks(row, args)
    for seeds in sorted({planned_seeds(row, t, args.max_seeds) for t in tasks}):
        group = [t for t in tasks if planned_seeds(row, t, args.max_seeds) == seeds]
        todo = pending(row, group, seeds, args)
        if not todo:
            print(f"{row} {','.join(group)}: {seeds} seeds already in {args.out}", flush=True)
            continue
        run_pipeline(*glue_argv(row, todo, seeds, options, args))
        ledger.sync(args.ledger, args.out, row_fingerprints(args))
    return notes


def glue_argv(
    row: str, tasks: list[str], seeds: int, options: list[str], args: argparse.Namespace
) -> list[str]:
    argv = ["eval", "glue", *options, "--name", row, "--tasks", ",".join(tasks)]
    argv += ["--seeds", str(seeds), "--data-dir", str(args.data_dir), "--out", str(args.out)]
    argv += ["--device", args.device, "--no-predict-test"]
    if args.epochs:
        argv += ["--epochs", str(args.epochs)]
    if args.max_train_examples:
        argv += ["--max-train-examples", str(args.max_train_examples)]
    return argv


def wnli_majority(data_dir: Path) -> float | None:
    """Majority-class accuracy (x100) on the WNLI dev file; None without one."""
    data = load_task(TASKS[WNLI], data_dir)
    return majority_share(data.evals[0].labels) if data.evals else None


def inference_speed(out: Path, data_dir: Path, task: str = SPEED_TASK, repeats: int = 3) -> dict:
    """Sentences/s of the fine-tuned student and teacher on one dev set, same process, same
    threads, tokenization included, oneDNN-packed linears for both; each keeps its best of
    ``repeats`` interleaved rounds so a burst of load elsewhere hits both alike."""
    import torch

    from stage1_encode.onednn import pack_linears
    from stage3_eval.glue.model import load_finetuned
    from stage3_eval.glue.train import predict, tokenize

    folders = {"student": out / STUDENT_FT / task, "teacher": out / TEACHER_FT / task}
    missing = [str(f) for f in folders.values() if not is_finetuned_dir(f)]
    data = load_task(TASKS[task], data_dir)
    if missing or not data.evals:
        return {"skipped": f"no fine-tuned model at {', '.join(missing) or '-'}"}
    split = data.evals[0]
    models = {name: load_finetuned(folder)[0] for name, folder in folders.items()}
    best = dict.fromkeys(models, float("inf"))
    for model in models.values():
        pack_linears(model)
        predict(model, tokenize(model.encoder, split.text_a[:32], None))  # warm-up
    with torch.inference_mode():
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                predict(model, tokenize(model.encoder, split.text_a, split.text_b))
                best[name] = min(best[name], time.perf_counter() - start)
    sentences = len(split) * (2 if split.text_b is not None else 1)
    rates = {name: sentences / seconds for name, seconds in best.items()}
    return {
        "task": task,
        "split": split.name,
        "sentences": sentences,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "sentences_per_second": rates,
        "speedup": rates["student"] / rates["teacher"],
        "models": {name: str(folder) for name, folder in folders.items()},
    }


def report(args: argparse.Namespace, notes: list[str]) -> None:
    """Write bench/results/glue.json and print the table from whatever is in ``--out``."""
    ledger.sync(args.ledger, args.out, row_fingerprints(args))
    scores, timing = collect(args.out)
    speed = inference_speed(args.out, args.data_dir)
    result = summary(
        scores, timing, args.tasks, wnli_majority(args.data_dir), speed, args.max_seeds
    )
    print(result["table"])
    smoke = bool(args.epochs or args.max_train_examples or args.max_seeds)
    write_result(
        args.result_name,
        {
            **result,
            "budget": {
                "seeds_planned": "5 per BiLSTM row (3 on SST-2), 1 for the teacher",
                "max_seeds": args.max_seeds,
                "epochs": args.epochs or "per task",
                "max_train_examples": args.max_train_examples,
                "tasks": args.tasks,
                "kd_augment_options": augment_options(args) or "eval glue's defaults",
            },
            "comparable_to_published": not smoke,
            "notes": notes,
            "results_dir": str(args.out),
        },
        args.results_dir,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    notes: list[str] = []
    restored = ledger.restore(args.ledger, args.out, row_fingerprints(args))
    for row, count in restored.items():
        print(f"{row}: {count} finished result(s) restored from {args.ledger}", flush=True)
    if not args.report_only:
        for row in args.rows:
            notes += run_row(row, args)
    for note in notes:
        print(f"not run: {note}", flush=True)
    report(args, notes)


if __name__ == "__main__":
    main()
