"""Vectors of an earlier encoding by the same teacher, looked up by text (``encode --reuse``).

Growing a corpus, deduplicating it or appending new sources would otherwise send every old
line through the teacher again; the teacher's vector of a text depends only on the teacher,
its settings and the text, so an earlier shard directory made with all of them equal can
supply it. What must agree is checked once, up front, and named when it does not.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data.errors import PipelineError
from data.manifest import read_manifest
from data.shards import ShardStore

# Settings of the two encodings that must be equal for a stored vector to be the one the
# teacher would give now (the teacher's path may differ between machines; its weights may not).
SAME_TEACHER = ("weights_sha256", "hidden_size", "pooling", "max_length", "normalize", "precision")


class ReusedVectors:
    """Index of ``directory``'s texts → (shard, row), and the rows fetched on demand."""

    def __init__(self, directory: Path, manifest: dict[str, Any]):
        self.directory = Path(directory)
        check_compatible(self.directory, read_manifest(self.directory), manifest)
        store = ShardStore(self.directory)
        self.dim = store.dim
        self.index: dict[str, tuple[Path, int]] = {}
        for path in store.paths:
            with h5py.File(path, "r") as handle:
                for row, raw in enumerate(handle["text"][()]):
                    self.index.setdefault(raw.decode("utf-8"), (path, row))

    def __len__(self) -> int:
        return len(self.index)

    def lookup(self, texts: list[str]) -> tuple[list[int], np.ndarray]:
        """Positions in ``texts`` that have a stored vector, and those vectors (float32)."""
        hits = [i for i, text in enumerate(texts) if text in self.index]
        vectors = np.zeros((len(hits), self.dim), dtype=np.float32)
        by_shard: dict[Path, list[tuple[int, int]]] = defaultdict(list)
        for k, i in enumerate(hits):
            path, row = self.index[texts[i]]
            by_shard[path].append((k, row))
        for path, pairs in by_shard.items():
            slots, rows = (np.array(column) for column in zip(*pairs, strict=True))
            unique = np.unique(rows)  # h5py reads increasing row lists only
            with h5py.File(path, "r") as handle:
                found = handle["embedding"][unique]
            vectors[slots] = found[np.searchsorted(unique, rows)]
        return hits, vectors


def check_compatible(directory: Path, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """Refuse, naming the setting, when ``directory``'s vectors are not what this run computes."""
    for key in SAME_TEACHER:
        if theirs["teacher"].get(key) != ours["teacher"].get(key):
            raise PipelineError(
                f"--reuse {directory}: teacher {key} is {theirs['teacher'].get(key)!r} there, "
                f"{ours['teacher'].get(key)!r} here; its vectors cannot stand in for this run's"
            )
    for label, there, here in (
        ("tokenizer", theirs.get("tokenizer", {}).get("sha256"), ours["tokenizer"]["sha256"]),
        ("dtype", theirs["dtype"], ours["dtype"]),
    ):
        if there != here:
            raise PipelineError(
                f"--reuse {directory}: {label} is {there!r} there, {here!r} here; "
                "its vectors cannot stand in for this run's"
            )
