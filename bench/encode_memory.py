"""Stage-1 memory: peak RSS of `pipeline encode` on 10k vs 100k corpus lines.

Streaming means the peak grows with the shard size, not the corpus size; this runs the real CLI
(``bench.common.run_pipeline``) in a child process for each corpus size with the same shard size
and reports the child's peak RSS.
``--max-length 32`` by default keeps the 100k run to minutes on a 2-core CPU without changing
what is measured (the data path). The child's current RSS is also sampled every
``--sample-every`` seconds and summarised per tenth of the run (the largest sample in each), so a
steady climb can be told from one late spike. Writes bench/results/encode_memory.json.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import SHARED_DATA, write_result
from data.precision import PRECISIONS


def write_corpus(path: Path, count: int) -> None:
    """The first ``count`` lines of the whole shared corpus, file after file."""
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for source in sorted((SHARED_DATA / "corpus").glob("*.txt.gz")):
            with gzip.open(source, "rt", encoding="utf-8") as handle:
                for line in handle:
                    out.write(line)
                    written += 1
                    if written == count:
                        return
    raise SystemExit(f"the shared corpus has only {written} lines, {count} requested")


def current_rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def by_tenth(samples: list[float]) -> list[float]:
    """The largest sample in each tenth of the run."""
    if not samples:
        return []
    size = max(1, len(samples) // 10)
    return [round(max(samples[i : i + size]), 1) for i in range(0, len(samples), size)][:10]


def run_child(args: list[str], every: float) -> dict:
    """Peak RSS (MiB), seconds and the RSS timeline by tenths of one child process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.common", *args], env=env, stdout=subprocess.DEVNULL
    )
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every):
            rss = current_rss_mib(process.pid)
            if rss is not None:
                samples.append(rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    done.set()
    sampler.join()
    if status != 0:
        raise SystemExit(f"pipeline {' '.join(args)} failed with status {status}")
    return {
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "rss_by_tenth_mib": by_tenth(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--shard-size", type=int, default=5000)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--sample-every", type=float, default=0.5)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            corpus = Path(tmp) / f"corpus-{size}.txt"
            write_corpus(corpus, size)
            measured = run_child(
                [
                    "encode",
                    str(corpus),
                    "--out",
                    f"{tmp}/shards-{size}",
                    "--shard-size",
                    str(args.shard_size),
                    "--max-length",
                    str(args.max_length),
                    "--device",
                    "cpu",
                    "--precision",
                    args.precision,
                ],
                args.sample_every,
            )
            runs.append({"lines": size, **measured})
    write_result(
        "encode_memory",
        {
            "shard_size": args.shard_size,
            "max_length": args.max_length,
            "precision": args.precision,
            "runs": runs,
            "rss_ratio_largest_vs_smallest": runs[-1]["peak_rss_mib"] / runs[0]["peak_rss_mib"],
        },
    )


if __name__ == "__main__":
    main()
