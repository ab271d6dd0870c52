"""Cold start: whole-process wall time of ``pipeline --help`` and of ``pipeline embed`` on 10
lines, as a user's shell runs them (a fresh interpreter each time), median of ``--repeats``.

Targets (issue 31): ``--help`` ≤ 0.5 s, ``embed`` of 10 lines ≤ 2.5 s on this machine. Also
records the load average, since a busy neighbour slows imports as much as it slows compute.
Writes bench/results/cold_start.json.

    python -m bench.cold_start --student runs/student
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import corpus_lines, write_result

TARGETS = {"help": 0.5, "embed_10_lines": 2.5}


def wall(argv: list[str]) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pipeline = [sys.executable, "-m", "pipeline"]
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "ten.txt"
        text.write_text("\n".join(corpus_lines(count=10)) + "\n", encoding="utf-8")
        embed = [*pipeline, "embed", str(text), "--model", str(args.student), "--out",
                 str(Path(tmp) / "v.npy")]  # fmt: skip
        commands = {"help": [*pipeline, "--help"], "embed_10_lines": embed}
        runs = {name: [] for name in commands}
        load_before = os.getloadavg()[0]
        for _ in range(args.repeats):
            for name, argv in commands.items():
                runs[name].append(wall(argv))
    medians = {name: statistics.median(times) for name, times in runs.items()}
    write_result(
        "cold_start",
        {
            "student": str(args.student),
            "repeats": args.repeats,
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "median_seconds": {k: round(v, 3) for k, v in medians.items()},
            "all_seconds": {k: [round(x, 3) for x in v] for k, v in runs.items()},
            "targets_seconds": TARGETS,
            "meets_targets": {k: medians[k] <= t for k, t in TARGETS.items()},
        },
    )


if __name__ == "__main__":
    main()
