"""Semantic search: a faiss index of a text collection, built with any encoder, queried by text.

An index directory holds ``index.faiss`` (normalised vectors, inner product = cosine),
``texts.txt`` (the indexed texts, one per line) with ``offsets.npy`` (byte offset of each text,
so a hit's text is read with one seek, whatever the collection size), ``lines.npy`` (the
corpus line of each text) and ``meta.json`` (encoder, corpus fingerprint, index kind, and the
row count, size and sha256 of ``texts.txt``). It is built in a temporary directory and renamed
when complete, so an index directory that exists is whole; building the same index again is a
no-op. Opening an index checks every file against ``meta.json``, so a damaged text store is
refused rather than answered from.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from data import report
from data.corpus import fingerprint, iter_lines, resolve_corpus
from data.errors import PipelineError
from data.files import atomic_path, earlier_output, sha256_file
from data.progress import progress_bar
from stage3_eval.encoders import TEACHER, Encoder
from stage3_eval.knn import DEFAULT_INDEX_KIND, ivf_lists, new_index, normalize
from stage3_eval.results import Result, write_results

INDEX_FILE = "index.faiss"
TEXTS_FILE = "texts.txt"
OFFSETS_FILE = "offsets.npy"
LINES_FILE = "lines.npy"
META_FILE = "meta.json"
REBUILD = "rebuild it with `pipeline index --overwrite`"
IVF_TRAIN_PER_LIST = 64  # faiss warns below ~39 training points per list


@dataclass
class Hit:
    rank: int
    score: float
    line: int
    text: str


@dataclass
class BuildSummary:
    rows: int
    seconds: float
    built: bool

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def model_reference(spec: str) -> str:
    """What meta.json records: ``teacher`` as is, a folder as an absolute path."""
    return spec if spec == TEACHER or not Path(spec).exists() else str(Path(spec).resolve())


def _chunks(files: list[Path], size: int) -> Iterator[tuple[list[int], list[str]]]:
    lines, texts = [], []
    for number, text in iter_lines(files):
        lines.append(number)
        texts.append(text)
        if len(texts) == size:
            yield lines, texts
            lines, texts = [], []
    if texts:
        yield lines, texts


class _Writer:
    """Streams texts to disk and vectors into the index, training an IVF index first."""

    def __init__(self, directory: Path, kind: str, dim: int, expected_rows: int):
        self.index = new_index(kind, dim, expected_rows)
        self.train_rows = min(expected_rows, IVF_TRAIN_PER_LIST * ivf_lists(expected_rows))
        self.pending: list[np.ndarray] = []
        self.texts = (directory / TEXTS_FILE).open("wb")
        self.texts_digest = hashlib.sha256()
        self.texts_bytes = 0
        self.offsets: list[int] = []
        self.lines: list[int] = []

    def add(self, lines: list[int], texts: list[str], vectors: np.ndarray) -> None:
        for text in texts:
            self.offsets.append(self.texts.tell())
            encoded = text.encode("utf-8") + b"\n"
            self.texts.write(encoded)
            self.texts_digest.update(encoded)
            self.texts_bytes += len(encoded)
        self.lines.extend(lines)
        if self.index.is_trained:
            self.index.add(vectors)
            return
        self.pending.append(vectors)
        if sum(len(p) for p in self.pending) >= self.train_rows:
            self._train_and_flush()

    def _train_and_flush(self) -> None:
        buffered = np.concatenate(self.pending)
        self.index.train(buffered)
        self.index.add(buffered)
        self.pending = []

    def text_store(self) -> dict[str, Any]:
        """What ``meta.json`` records of ``texts.txt``, checked whenever the index is opened."""
        return {
            "rows": len(self.offsets),
            "bytes": self.texts_bytes,
            "sha256": self.texts_digest.hexdigest(),
        }

    def close(self, directory: Path) -> int:
        if self.pending:
            self._train_and_flush()
        self.texts.close()
        faiss.write_index(self.index, str(directory / INDEX_FILE))
        np.save(directory / OFFSETS_FILE, np.asarray(self.offsets, dtype=np.int64))
        np.save(directory / LINES_FILE, np.asarray(self.lines, dtype=np.int64))
        return int(self.index.ntotal)


def build_index_dir(
    encoder: Encoder,
    corpus: list[str | Path],
    out: Path,
    kind: str = DEFAULT_INDEX_KIND,
    chunk: int = 2048,
    overwrite: bool = False,
) -> BuildSummary:
    """Encode every non-blank corpus line and write the index directory atomically."""
    files = resolve_corpus(corpus)
    corpus_id = fingerprint(files)
    meta = {
        "model": model_reference(encoder.label),
        "model_kind": encoder.kind,
        "dim": encoder.dim,
        "kind": kind,
        "corpus": {"paths": corpus_id.paths, "sha256": corpus_id.sha256},
    }
    out = Path(out)
    existing = _existing_index(out)
    if existing is not None and not overwrite:
        if {k: existing.get(k) for k in meta} == meta:
            return BuildSummary(len(SearchIndex(out)), 0.0, built=False)  # checked, not assumed
        raise PipelineError(
            f"{out} holds another index (other model, corpus or kind); use --overwrite"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        writer = _Writer(tmp, kind, encoder.dim, corpus_id.lines)
        seconds = 0.0
        with progress_bar(total=corpus_id.lines, desc="index", unit="line") as bar:
            for lines, texts in _chunks(files, chunk):
                begin = time.perf_counter()
                vectors = normalize(encoder.encode(texts))
                seconds += time.perf_counter() - begin
                writer.add(lines, texts, vectors)
                bar.update(lines[-1] + 1 - bar.n)
        rows = writer.close(tmp)
        if rows == 0:
            raise PipelineError(f"{', '.join(corpus_id.paths)}: no non-blank line to index")
        meta.update(rows=rows, texts=writer.text_store(), encode_seconds=round(seconds, 3))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        summary = BuildSummary(rows, seconds, built=True)
        speed = Result(
            "index",
            "sentences_per_second",
            summary.rate,
            encoder.label,
            ",".join(corpus_id.paths),
            seconds=seconds,
            extra={**encoder.describe(), "sentences": rows, "index": kind},
        )
        write_results(tmp, [speed])
        if existing is not None:
            report.warning(f"--overwrite: replacing the index in {out}")
    return summary


def _existing_index(out: Path) -> dict[str, Any] | None:
    """The meta of the index already in ``out``; None if ``out`` is absent or empty.

    Any other content (a file, a folder without an index's ``meta.json``) is refused whatever
    ``--overwrite`` says: it only ever replaces an index this command wrote.
    """
    if not earlier_output(out, META_FILE, "an index directory"):
        return None
    meta = _read_json(out / META_FILE)
    if not (isinstance(meta, dict) and {"model", "kind", "dim"} <= set(meta)):
        raise PipelineError(
            f"{out}: not empty and not an index directory; use another --out "
            "(--overwrite only replaces an index)"
        )
    return meta


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PipelineError(f"{path}: unreadable ({exc}); {REBUILD}") from None


# What meta.json must hold, with its type (an index built before the text store's checksum
# was recorded lacks ``texts``: it is refused with the command that rebuilds it).
_META_KEYS = {
    "model": str,
    "dim": int,
    "kind": str,
    "rows": int,
    "texts.rows": int,
    "texts.bytes": int,
    "texts.sha256": str,
}


def read_meta(directory: Path) -> dict[str, Any]:
    """An index's ``meta.json``, refused in one line if it lacks a key or one has another type."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise PipelineError(f"{directory}: not an index directory (no {META_FILE})")
    meta = _read_json(path)
    for key, kind in _META_KEYS.items():
        value: Any = meta
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool):
            raise PipelineError(f"{path}: {key!r} missing or not a {kind.__name__}; {REBUILD}")
    return meta


def _check_text_store(directory: Path, meta: dict[str, Any], offsets: np.ndarray) -> None:
    """Refuse a texts.txt or offsets.npy that differs from what was recorded at build time."""
    path, texts = directory / TEXTS_FILE, meta["texts"]
    if not path.is_file():
        raise PipelineError(f"{path}: missing; {REBUILD}")
    size = path.stat().st_size
    if size != texts["bytes"]:
        raise PipelineError(
            f"{path}: {size} bytes, {texts['bytes']} when the index was built; {REBUILD}"
        )
    if sha256_file(path) != texts["sha256"]:
        raise PipelineError(f"{path}: changed since the index was built (checksum); {REBUILD}")
    rows = {meta["rows"], texts["rows"], len(offsets)}
    ordered = len(offsets) == 0 or (
        offsets[0] == 0 and bool(np.all(np.diff(offsets) > 0)) and offsets[-1] < size
    )
    if len(rows) != 1 or not ordered:
        raise PipelineError(f"{directory / OFFSETS_FILE}: does not match {TEXTS_FILE}; {REBUILD}")


class SearchIndex:
    """An index directory opened for queries: the index in memory, texts read per hit."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.meta = read_meta(self.directory)
        try:
            self.index = faiss.read_index(str(self.directory / INDEX_FILE))
            self.offsets = np.load(self.directory / OFFSETS_FILE, mmap_mode="r")
            self.lines = np.load(self.directory / LINES_FILE, mmap_mode="r")
        except (OSError, RuntimeError, ValueError) as exc:
            raise PipelineError(f"{self.directory}: unreadable index ({exc}); rebuild it") from None
        _check_text_store(self.directory, self.meta, self.offsets)
        if not int(self.index.ntotal) == len(self.lines) == self.meta["rows"]:
            raise PipelineError(
                f"{self.directory}: {self.index.ntotal} vectors, {len(self.lines)} line numbers "
                f"and {self.meta['rows']} rows recorded; {REBUILD}"
            )

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def text(self, row: int) -> str:
        with (self.directory / TEXTS_FILE).open("rb") as handle:
            handle.seek(int(self.offsets[row]))
            return handle.readline().decode("utf-8").rstrip("\n")

    def search(self, encoder: Encoder, queries: list[str], k: int = 10) -> list[list[Hit]]:
        """The top ``k`` texts for each query, best first, with cosine scores."""
        if encoder.dim != self.index.d:
            raise PipelineError(
                f"{encoder.label} makes {encoder.dim}-d vectors, the index holds {self.index.d}-d"
            )
        scores, ids = self.index.search(normalize(encoder.encode(queries)), min(k, len(self)))
        return [
            [
                Hit(rank, float(score), int(self.lines[row]), self.text(row))
                for rank, (score, row) in enumerate(zip(s, i, strict=True), start=1)
                if row >= 0
            ]
            for s, i in zip(scores, ids, strict=True)
        ]
