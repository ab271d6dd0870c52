"""Stage 1 at corpus scale, run as a cluster runs it: an array of tasks, one killed and resumed.

``array``: ``K`` array tasks (``--num-shards K --shard-index i``), each a child process with
``--threads`` CPU threads, run side by side over the whole corpus (``../shared/data/corpus`` then
``corpus-large``: 1.7M texts); ``--kill-task`` is killed with SIGKILL after ``--kill-after``
seconds, as a preempted node would be, and started again with the same command. Per task and
per attempt it records wall time, rows encoded and peak RSS (``wait4``), then runs
``pipeline shards verify``. Rerunning the same command resumes: complete shards are skipped and
earlier attempts stay in the result file, so partial results can be committed with what they
cover.

``threads``: the first ``--lines`` texts encoded as two one-thread tasks side by side and as one
two-thread process, interleaved, for the docs' advice on how to run stage 1 on a small machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import RESULTS, SHARED_DATA, write_result
from bench.encode_memory import current_rss_mib

DEFAULT_CORPUS = (SHARED_DATA / "corpus", SHARED_DATA / "corpus-large")
LAYOUTS = (("2 tasks x 1 thread", 2, 1), ("1 task x 2 threads", 1, 2))
SUMMARY = re.compile(r"encoded (\d+) rows in ([\d.]+)s")


def task_env(threads: int) -> dict[str, str]:
    count = str(threads)
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": count,
        "MKL_NUM_THREADS": count,
        "PIPELINE_PROGRESS_INTERVAL": "60",
    }


def start_task(argv: list[str], threads: int, log: Path) -> subprocess.Popen:
    handle = log.open("a", encoding="utf-8")
    handle.write(f"\n$ pipeline {' '.join(argv)}  (threads {threads})\n")
    handle.flush()
    return subprocess.Popen(
        [sys.executable, "-m", "bench.common", *argv],
        env=task_env(threads),
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def wait_task(process: subprocess.Popen, started: float, kill_at: float | None) -> dict:
    """Wait for one child, killing it at ``kill_at`` (perf_counter time); its wall, RSS, exit."""
    peak = [0.0]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(1.0):
            peak[0] = max(peak[0], current_rss_mib(process.pid) or 0.0)
            if kill_at is not None and time.perf_counter() >= kill_at:
                process.send_signal(signal.SIGKILL)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, status, usage = os.wait4(process.pid, 0)
    done.set()
    watcher.join()
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mib": round(max(usage.ru_maxrss / 1024, peak[0]), 1),
        "exit": os.waitstatus_to_exitcode(status),
    }


def last_summary(log: Path) -> tuple[int, float] | None:
    """(rows, seconds) of the last finished ``encode`` in a task's log."""
    found = SUMMARY.findall(log.read_text(encoding="utf-8", errors="replace"))
    return (int(found[-1][0]), float(found[-1][1])) if found else None


def run_tasks(argvs: list[list[str]], threads: int, logs: list[Path], kill: dict) -> list[dict]:
    """Run the tasks side by side; the one named in ``kill`` is killed once, then restarted."""
    attempts: list[dict] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        kill_at = None
        if kill.get("task") == index:
            kill_at = time.perf_counter() + kill["after"]
        while True:
            started = time.perf_counter()
            result = wait_task(start_task(argvs[index], threads, logs[index]), started, kill_at)
            killed = kill_at is not None and result["exit"] == -signal.SIGKILL
            summary = None if killed else last_summary(logs[index])
            record = {"task": index, "threads": threads, "killed": killed, **result}
            if summary:
                record.update(rows=summary[0], encode_seconds=summary[1])
            with lock:
                attempts.append(record)
            print(json.dumps(record), flush=True)
            if not killed:
                return
            kill_at = None

    workers = [threading.Thread(target=one, args=(i,)) for i in range(len(argvs))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sorted(attempts, key=lambda a: a["task"])


def verify(out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "shards", "verify", str(out)],
        env=task_env(1),
        capture_output=True,
        text=True,
    )
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {
        "verify_exit": result.returncode,
        "verify_output": (result.stdout + result.stderr).strip().splitlines()[-1:],
        "shards": len(manifest.get("shards", {})),
        "rows": sum(s["rows"] for s in manifest.get("shards", {}).values()),
    }


def encode_argv(corpus: list[Path], out: Path, tasks: int, index: int, extra: list[str]):
    argv = ["encode", *map(str, corpus), "--out", str(out), *extra]
    return argv + (["--num-shards", str(tasks), "--shard-index", str(index)] if tasks > 1 else [])


def array(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    logs = [args.out.parent / f"{args.out.name}.task-{i}.log" for i in range(args.tasks)]
    indices = range(args.tasks)
    argvs = [encode_argv(args.corpus, args.out, args.tasks, i, args.extra) for i in indices]
    previous = RESULTS / f"{args.name}.json"
    earlier = json.loads(previous.read_text())["attempts"] if previous.is_file() else []
    kill = {"task": args.kill_task, "after": args.kill_after} if args.kill_task is not None else {}
    if any(a.get("killed") for a in earlier):
        kill = {}  # a kill and resume is already on record: resume without another
    start = time.perf_counter()
    attempts = earlier + run_tasks(argvs, args.threads, logs, kill)
    checked = verify(args.out)
    per_task = {}
    for index in range(args.tasks):
        mine = [a for a in attempts if a["task"] == index]
        seconds = sum(a["seconds"] for a in mine)
        rows = sum(a.get("rows", 0) for a in mine)
        per_task[str(index)] = {
            "attempts": len(mine),
            "wall_seconds": round(seconds, 1),
            "rows_reported_by_finished_attempts": rows,
            "peak_rss_mib": max(a["peak_rss_mib"] for a in mine),
        }
    write_result(
        args.name,
        {
            "corpus": [str(p) for p in args.corpus],
            "out": str(args.out),
            "tasks": args.tasks,
            "threads_per_task": args.threads,
            "extra_options": args.extra,
            "last_invocation_wall_seconds": round(time.perf_counter() - start, 1),
            "attempts": attempts,
            "per_task": per_task,
            **checked,
            "sentences_per_second_all_tasks": round(
                checked["rows"] / max(sum(a["seconds"] for a in attempts) / args.tasks, 1e-9), 1
            ),
        },
    )


def first_lines(corpus: list[Path], count: int, path: Path) -> None:
    from data.corpus import iter_lines, resolve_corpus

    with path.open("w", encoding="utf-8") as out:
        for written, (_, text) in enumerate(iter_lines(resolve_corpus(corpus)), 1):
            out.write(text + "\n")
            if written == count:
                return


def threads(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        first_lines(args.corpus, args.lines, corpus)
        for repeat in range(args.repeats):
            for layout, tasks, per_task in LAYOUTS:
                out = Path(tmp) / f"{repeat}-{tasks}"
                logs = [Path(tmp) / f"{repeat}-{tasks}-{i}.log" for i in range(tasks)]
                argvs = [encode_argv([corpus], out, tasks, i, args.extra) for i in range(tasks)]
                started = time.perf_counter()
                attempts = run_tasks(argvs, per_task, logs, {})
                wall = time.perf_counter() - started
                rows.append(
                    {
                        "layout": layout,
                        "repeat": repeat,
                        "wall_seconds": round(wall, 1),
                        "sentences_per_second": round(args.lines / wall, 1),
                        "peak_rss_mib_per_task": [a["peak_rss_mib"] for a in attempts],
                    }
                )
    best = {
        layout: max(r["sentences_per_second"] for r in rows if r["layout"] == layout)
        for layout in {r["layout"] for r in rows}
    }
    write_result(
        args.name,
        {
            "lines": args.lines,
            "note": "whole-command wall time, teacher load included, best of repeats",
            "runs": rows,
            "best_sentences_per_second": best,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("array", help="the whole corpus as an array of tasks")
    run.add_argument("--out", type=Path, default=Path("runs/scale/large-shards"))
    run.add_argument("--tasks", type=int, default=2)
    run.add_argument("--threads", type=int, default=1, help="CPU threads per task")
    run.add_argument("--kill-task", type=int, default=None)
    run.add_argument("--kill-after", type=float, default=600.0, help="seconds")
    run.add_argument("--name", default="scale_encode", help="bench/results/NAME.json")
    compare = sub.add_parser("threads", help="two one-thread tasks vs one two-thread process")
    compare.add_argument("--lines", type=int, default=20_000)
    compare.add_argument("--repeats", type=int, default=2)
    compare.add_argument("--name", default="scale_encode_threads")
    for each in (run, compare):
        each.add_argument("--corpus", type=Path, nargs="+", default=list(DEFAULT_CORPUS))
        each.add_argument("extra", nargs="*", help="after --: more `pipeline encode` options")
    args = parser.parse_args()
    array(args) if args.mode == "array" else threads(args)


if __name__ == "__main__":
    main()
