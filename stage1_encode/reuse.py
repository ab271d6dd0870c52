"""Vectors of an earlier encoding by the same teacher, looked up by text (``encode --reuse``).

Growing a corpus, deduplicating it or appending new sources would otherwise send every old
line through the teacher again; the teacher's vector of a text depends only on the teacher,
its settings and the text, so an earlier shard directory made with all of them equal can
supply it. What must agree is checked once, up front, and named when it does not.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data.errors import PipelineError
from data.manifest import TEACHER_VECTOR_KEYS, TeacherDescription, read_manifest
from data.shards import ShardStore


class ReusedVectors:
    """Index of ``directory``'s texts → (shard, row), and the rows fetched on demand.

    The index holds a 64-bit hash per text, sorted, with its shard and row: 16 bytes a text
    where a dict of the texts took about 300, so a corpus of tens of millions of lines can be
    reused within memory. Every hit is checked against the stored text before its vector is
    used, so a hash collision costs one teacher pass, never a wrong vector.
    """

    def __init__(self, directory: Path, manifest: dict[str, Any]):
        self.directory = Path(directory)
        check_compatible(self.directory, read_manifest(self.directory), manifest)
        try:  # verified as training would read it: NaN vectors, foreign shards, bad ids
            store = ShardStore(self.directory)
        except PipelineError as exc:
            raise PipelineError(f"--reuse {exc}") from None
        self.dim = store.dim
        self.paths = list(store.paths)
        keys, shards, rows = [], [], []
        for shard, path in enumerate(self.paths):
            with h5py.File(path, "r") as handle:
                texts = handle["text"][()]
            keys.append(np.fromiter((text_key(raw) for raw in texts), np.uint64, len(texts)))
            shards.append(np.full(len(texts), shard, dtype=np.uint32))
            rows.append(np.arange(len(texts), dtype=np.uint32))
        keys_all = np.concatenate(keys) if keys else np.empty(0, np.uint64)
        order = np.argsort(keys_all, kind="stable")  # equal texts: the earliest row comes first
        self.keys = keys_all[order]
        self.shards = np.concatenate(shards)[order] if shards else np.empty(0, np.uint32)
        self.rows = np.concatenate(rows)[order] if rows else np.empty(0, np.uint32)

    def __len__(self) -> int:
        return int(np.count_nonzero(np.diff(self.keys))) + 1 if len(self.keys) else 0

    def lookup(self, texts: list[str]) -> tuple[list[int], np.ndarray]:
        """Positions in ``texts`` that have a stored vector, and those vectors (float32)."""
        found: dict[int, np.ndarray] = {}
        positions, slots = self._candidates(texts)
        for shard in np.unique(self.shards[slots]):
            mine = self.shards[slots] == shard
            rows = self.rows[slots[mine]]
            unique = np.unique(rows)  # h5py reads increasing row lists only
            with h5py.File(self.paths[shard], "r") as handle:  # only the hit rows: scales with hits
                stored_texts, stored = handle["text"][unique], handle["embedding"][unique]
            for i, k in zip(positions[mine], np.searchsorted(unique, rows), strict=True):
                if stored_texts[k].decode("utf-8") == texts[i]:  # else a hash collision
                    found[int(i)] = stored[k]
        hits = sorted(found)
        vectors = np.zeros((len(hits), self.dim), dtype=np.float32)
        for k, i in enumerate(hits):
            vectors[k] = found[i]
        return hits, vectors

    def _candidates(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``texts`` whose key is in the index, and the index slot of each."""
        if not len(self.keys) or not texts:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        wanted = np.fromiter((text_key(t.encode("utf-8")) for t in texts), np.uint64, len(texts))
        slots = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        positions = np.flatnonzero(self.keys[slots] == wanted)
        return positions, slots[positions]


def text_key(raw: bytes) -> int:
    """A text's 64-bit index key: the first 8 bytes of its BLAKE2b digest."""
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


def check_compatible(directory: Path, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """Refuse, naming the setting, when ``directory``'s vectors are not what this run computes.

    Every teacher setting that changes a vector must be equal (``TEACHER_VECTOR_KEYS``: all but
    the teacher's path, which may differ between machines; its weights may not).
    """
    there, here = (TeacherDescription.from_dict(m["teacher"]) for m in (theirs, ours))
    for key in TEACHER_VECTOR_KEYS:
        if getattr(there, key) != getattr(here, key):
            raise PipelineError(
                f"--reuse {directory}: teacher {key} is {getattr(there, key)!r} there, "
                f"{getattr(here, key)!r} here; its vectors cannot stand in for this run's"
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
