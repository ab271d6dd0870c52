"""Stage-1 memory: peak RSS of `pipeline encode` on 10k vs 100k corpus lines.

Streaming means the peak grows with the shard size, not the corpus size; this runs the real CLI
(``bench.common.run_pipeline``) in a child process for each corpus size with the same shard size
and reports the child's peak RSS.
``--max-length 32`` by default keeps the 100k run to minutes on a 2-core CPU without changing
what is measured (the data path). Writes bench/results/encode_memory.json.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import SHARED_DATA, write_result


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


def peak_rss_mib(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one child process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.common", *args], env=env, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"pipeline {' '.join(args)} failed with status {status}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--shard-size", type=int, default=5000)
    parser.add_argument("--max-length", type=int, default=32)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            corpus = Path(tmp) / f"corpus-{size}.txt"
            write_corpus(corpus, size)
            rss, seconds = peak_rss_mib(
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
                ]
            )
            runs.append(
                {"lines": size, "peak_rss_mib": round(rss, 1), "seconds": round(seconds, 1)}
            )
    write_result(
        "encode_memory",
        {
            "shard_size": args.shard_size,
            "max_length": args.max_length,
            "runs": runs,
            "rss_ratio_largest_vs_smallest": runs[-1]["peak_rss_mib"] / runs[0]["peak_rss_mib"],
        },
    )


if __name__ == "__main__":
    main()
