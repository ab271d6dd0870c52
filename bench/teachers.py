"""The all-mpnet-base-v2 teacher end to end: corpus subset, stage 1, and the comparison table.

Encoding the whole shared corpus (168k lines) with a 12-layer 768-d teacher takes about three
hours on this machine's two shared cores, so the MPNet run uses a fixed subset: every line of
the seven corpus files (sorted, blank lines skipped) whose running index ``i`` has
``i % 8 < 3``, which keeps 3 of every 8 lines of every file (62,988 lines) in corpus order.

    python -m bench.teachers subset                 # runs/teachers/corpus-subset.txt
    python -m bench.teachers encode                 # resumable: re-run to continue
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.common import SHARED_DATA
from bench.fetch_mpnet import DEFAULT_DEST as RUNS
from bench.fetch_mpnet import FOLDER as MPNET

SUBSET = RUNS / "corpus-subset.txt"
SHARDS = RUNS / "mpnet-shards"
KEEP, STRIDE = 3, 8


def write_subset(target: Path = SUBSET) -> int:
    """Write the documented subset (3 of every 8 non-blank corpus lines); return its size."""
    kept = index = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        for path in sorted((SHARED_DATA / "corpus").glob("*.txt.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    text = line.strip()
                    if not text:
                        continue
                    if index % STRIDE < KEEP:
                        out.write(text + "\n")
                        kept += 1
                    index += 1
    partial.replace(target)
    return kept


def encode(shard_size: int) -> None:
    """Stage 1 on the subset with MPNet; complete shards are skipped, so re-running resumes."""
    if not SUBSET.is_file():
        print(f"{SUBSET}: {write_subset()} lines")
    command = [sys.executable, "-m", "pipeline", "encode", str(SUBSET), "--out", str(SHARDS)]
    command += ["--teacher", str(MPNET), "--shard-size", str(shard_size), "--device", "cpu"]
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("subset", help="Write the corpus subset.")
    enc = commands.add_parser("encode", help="Stage 1 with MPNet on the subset (resumable).")
    enc.add_argument("--shard-size", type=int, default=5000)
    args = parser.parse_args()
    if args.command == "subset":
        print(f"{SUBSET}: {write_subset()} lines")
    elif args.command == "encode":
        encode(args.shard_size)


if __name__ == "__main__":
    main()
