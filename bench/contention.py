"""Speed on a shared machine: every CPU path quiet, then beside 1 and 2 CPU-bound competitors.

Cluster nodes, CI runners and laptops are shared; a path whose threads wait for each other at
every step (the recurrent loop, a teacher layer) loses far more than its fair share when
another process takes a core. Each path runs a fixed amount of work at the default settings
(what a user gets without ``--threads``) and reports items/s; the competitors are plain
busy-loop processes (``while True: pass``), started before and stopped after each condition.
Conditions are interleaved over ``--rounds`` (quiet, beside 1, beside 2, quiet, ...) and the
median per (path, condition) is kept, so a drift of the machine's load hits all alike.
Targets (issue 31): beside 1 competitor every path keeps at least 50 % of its quiet throughput,
beside 2 at least 30 %. Writes bench/results/contention.json.

    python -m bench.contention --student runs/student --targets runs/corpus-shards
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import SHARED_DATA, corpus_lines, run_pipeline, write_result
from data.sts import read_sts

TARGETS = {1: 0.50, 2: 0.30}  # share of quiet throughput beside N competitors
Path_ = Callable[[], float]  # runs a fixed workload, returns items per second


def competitors(count: int) -> list[subprocess.Popen]:
    spin = [sys.executable, "-c", "while True: pass"]
    return [subprocess.Popen(spin) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
        process.wait()


def timed(work: Callable[[], object], items: int) -> float:
    start = time.perf_counter()
    work()
    return items / (time.perf_counter() - start)


def build_paths(args: argparse.Namespace, tmp: Path) -> dict[str, Path_]:
    """The paths of issue 31, each a warm closure over loaded models and prepared inputs."""
    from stage1_encode.teacher import Teacher
    from stage2_train import Student

    pairs = read_sts(args.sts)
    sentences = [*pairs.sentence1, *pairs.sentence2]
    student = Student.from_pretrained(args.student)
    student.encode(sentences[:64])  # warm-up: first-call allocations
    lines = corpus_lines(args.corpus, args.lines)
    text = tmp / "lines.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    teacher = Teacher(None)
    teacher_lines = lines[: args.teacher_lines]
    teacher.encode(teacher_lines[:16])
    out = tmp / "out"
    out.mkdir()

    def train() -> float:
        run = out / f"train-{time.monotonic_ns()}"
        steps = ["--max-steps", str(args.train_steps), "--val-every", "100000"]
        shards = ["--targets", str(args.targets), "--first-shards", "2"]
        run_pipeline("train", *shards, "--out", str(run), *steps, "--no-progress")
        return args.train_steps * 128 / float(_summary(run)["train_seconds"])

    def command(*argv: str, items: int) -> Path_:
        """A whole ``pipeline`` command, model load included, as a user runs it."""
        return lambda: timed(lambda: run_pipeline(*argv), items)

    student_dir = str(args.student)
    return {
        "student encode (sentences/s)": lambda: timed(
            lambda: student.encode(sentences), len(sentences)
        ),
        "embed (lines/s, whole command)": command(
            "embed",
            str(text),
            "--model",
            student_dir,
            "--out",
            str(out / "v.npy"),
            items=len(lines),
        ),
        "eval sts (sentences/s, whole command)": command(
            "eval",
            "sts",
            "--model",
            student_dir,
            "--data",
            str(args.sts),
            "--out",
            str(out / "sts"),
            items=len(sentences),
        ),
        "index (lines/s, whole command)": command(
            "index",
            "--model",
            student_dir,
            "--corpus",
            str(text),
            "--out",
            str(out / "index"),
            "--overwrite",
            items=len(lines),
        ),
        "train (sentences/s)": train,
        "teacher encode (sentences/s)": lambda: timed(
            lambda: teacher.encode(teacher_lines), len(teacher_lines)
        ),
    }


def _summary(run: Path) -> dict:
    import json

    from stage2_train.layout import CONFIG_FILE

    return json.loads((run / CONFIG_FILE).read_text(encoding="utf-8"))["training"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--targets", type=Path, required=True, help="Shards for the train path.")
    parser.add_argument("--sts", type=Path, default=SHARED_DATA / "glue" / "STS-B" / "dev.tsv")
    parser.add_argument("--corpus", type=Path, default=SHARED_DATA / "corpus" / "nltk_brown.txt.gz")
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--teacher-lines", type=int, default=400)
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paths", default=None, help="Substrings of path names (comma list).")
    parser.add_argument("--name", default="contention", help="bench/results/NAME.json")
    args = parser.parse_args()
    measured: dict[str, dict[int, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_paths(args, Path(tmp))
        if args.paths:
            wanted = [w.strip() for w in args.paths.split(",")]
            paths = {n: p for n, p in paths.items() if any(w in n for w in wanted)}
        for _ in range(args.rounds):
            for count in (0, 1, 2):
                busy = competitors(count)
                try:
                    time.sleep(1.0)  # let the competitors reach full speed
                    for name, path in paths.items():
                        rate = path()
                        measured.setdefault(name, {}).setdefault(count, []).append(rate)
                        print(f"{name} beside {count}: {rate:,.0f}", flush=True)
                finally:
                    stop(busy)
    rows = {}
    for name, by_count in measured.items():
        quiet = statistics.median(by_count[0])
        row = {f"beside_{c}": round(statistics.median(v), 1) for c, v in by_count.items()}
        shares = {c: statistics.median(v) / quiet for c, v in by_count.items() if c}
        row.update({f"share_beside_{c}": round(s, 3) for c, s in shares.items()})
        row["meets_targets"] = all(shares[c] >= t for c, t in TARGETS.items())
        row["all_runs"] = {str(c): [round(x, 1) for x in v] for c, v in by_count.items()}
        rows[name] = row
    write_result(
        args.name,
        {
            "cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)),
            "competitor": "python -c 'while True: pass' per competitor",
            "rounds": args.rounds,
            "targets_share_of_quiet": {str(k): v for k, v in TARGETS.items()},
            "threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
            "paths": rows,
        },
    )


if __name__ == "__main__":
    main()
