"""Semantic search: a faiss index of a text collection, built with any encoder, queried by text.

An index directory holds ``index.faiss`` (normalised vectors, inner product = cosine),
``texts.txt`` (the indexed texts, one per line) with ``offsets.npy`` (byte offset of each text,
so a hit's text is read with one seek, whatever the collection size), ``lines.npy`` (the
corpus line of each text) and ``meta.json`` (encoder, corpus fingerprint, index kind). It is
built in a temporary directory and renamed when complete, so an index directory that exists
is whole; building the same index again is a no-op.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from data.corpus import fingerprint, iter_lines, resolve_corpus
from data.errors import PipelineError
from data.progress import progress_bar
from stage3_eval.encoders import TEACHER, Encoder
from stage3_eval.knn import ivf_lists, new_index, normalize
from stage3_eval.results import Result, write_results

INDEX_FILE = "index.faiss"
TEXTS_FILE = "texts.txt"
OFFSETS_FILE = "offsets.npy"
LINES_FILE = "lines.npy"
META_FILE = "meta.json"
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
        self.offsets: list[int] = []
        self.lines: list[int] = []

    def add(self, lines: list[int], texts: list[str], vectors: np.ndarray) -> None:
        for text in texts:
            self.offsets.append(self.texts.tell())
            self.texts.write(text.encode("utf-8") + b"\n")
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
    kind: str = "exact",
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
    if (out / META_FILE).is_file() and not overwrite:
        existing = json.loads((out / META_FILE).read_text(encoding="utf-8"))
        if {k: existing.get(k) for k in meta} == meta:
            return BuildSummary(int(existing["rows"]), 0.0, built=False)
        raise PipelineError(
            f"{out} holds another index (other model, corpus or kind); use --overwrite"
        )
    if out.exists() and not (out / META_FILE).is_file() and any(out.iterdir()) and not overwrite:
        raise PipelineError(f"{out} exists and is not an index directory; use another --out")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
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
        meta.update(rows=rows, encode_seconds=round(seconds, 3))
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
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


class SearchIndex:
    """An index directory opened for queries: the index in memory, texts read per hit."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        meta_path = self.directory / META_FILE
        if not meta_path.is_file():
            raise PipelineError(f"{self.directory}: not an index directory (no {META_FILE})")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        try:
            self.index = faiss.read_index(str(self.directory / INDEX_FILE))
            self.offsets = np.load(self.directory / OFFSETS_FILE, mmap_mode="r")
            self.lines = np.load(self.directory / LINES_FILE, mmap_mode="r")
        except (OSError, RuntimeError, ValueError) as exc:
            raise PipelineError(f"{self.directory}: unreadable index ({exc}); rebuild it") from None

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
