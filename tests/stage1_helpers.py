"""Helpers for tests that run stage 1 in a subprocess and compare shard directories."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py

from data import shards


def encode_command(corpus: Path, out: Path, teacher: Path, shard_size: int) -> list[str]:
    """`pipeline encode` with --dedup as a subprocess command line (so it can be killed)."""
    return [sys.executable, "-m", "pipeline", "encode", str(corpus), "--out", str(out),
            "--teacher", str(teacher), "--shard-size", str(shard_size), "--device", "cpu",
            "--dedup"]  # fmt: skip


def shard_contents(directory: Path) -> dict[str, tuple]:
    """Every shard's four datasets as bytes, in `shards.DATASETS` order, for exact comparison."""
    found = {}
    for path in shards.list_shard_files(directory):
        with h5py.File(path, "r") as handle:
            found[path.name] = tuple(
                handle[key][()].tobytes()
                if key in ("embedding", "line")
                else tuple(map(bytes, handle[key][()]))
                for key in shards.DATASETS
            )
    return found
