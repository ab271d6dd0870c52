"""Where documents come from: text files, JSON lines, or a ``datasets`` source, each a named
source of a corpus built by ``pipeline corpus``.

* ``.txt`` / ``.txt.gz``: a blank line separates documents, or (``txt_documents="file"``) each
  file is one document whose blank lines separate paragraphs. Read through
  ``data.corpus.iter_lines`` (BOM, CR line ends and invalid UTF-8 handled as for ``encode``).
* ``.jsonl`` / ``.jsonl.gz`` / ``.json.gz`` (C4's shards): one JSON object per line, the document
  in its ``column`` field.
* ``.parquet`` / ``.csv`` / ``.arrow`` / ``.json``, a ``save_to_disk`` folder or a Hub name: one
  document per row of ``column``, streamed by ``data.dataset_corpus.DatasetCorpus``.

A folder is read as its document files in name order. A source is named after its file or
folder (``wiki.txt.gz`` -> ``wiki``) unless given as ``NAME=PATH``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.corpus import TEXT_SUFFIXES, iter_lines
from data.dataset_corpus import BUILDERS, DatasetCorpus
from data.errors import PipelineError
from data.sentences import MAX_PARAGRAPH_CHARS

TXT_DOCUMENTS = ("blank-line", "file")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz")
DOCUMENT_SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES
DATASET_SUFFIXES = tuple(sorted(set(BUILDERS) - set(JSONL_SUFFIXES)))
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Source:
    """One named source: document files read here, or a ``datasets`` split."""

    name: str
    files: tuple[Path, ...] = ()
    dataset: DatasetCorpus | None = None
    root: Path | None = None  # the file or folder given, when it is a path

    def describe(self) -> dict[str, Any]:
        """What the source reads, as recorded in ``stats.json`` (and compared on a re-run)."""
        if self.dataset is not None:
            return {"dataset": self.dataset.describe()}
        return {"files": [str(path) for path in self.files]}


def resolve_sources(
    docs: list[str], datasets: list[str], *, column: str, split: str, config: str | None
) -> list[Source]:
    """Sources for DOCS (files, folders) and ``--dataset`` names, refused before any work if a
    path is missing, holds no documents, or two sources share a name."""
    sources = [_path_source(*_named(raw), column, split, config) for raw in docs]
    for raw in datasets:
        name, value = _named(raw)
        sources.append(Source(name, dataset=DatasetCorpus(value, split, column, config)))
    if not sources:
        raise PipelineError("no documents given: name files or folders, or --dataset")
    names = [source.name for source in sources]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise PipelineError(f"two sources are named {twice[0]!r}; name them apart as NAME=PATH")
    for source in sources:
        if source.dataset is not None:
            source.dataset.check()
    return sources


def _named(raw: str) -> tuple[str, str]:
    """``NAME=VALUE`` as given, else the name taken from the value's last path component."""
    name, equals, value = raw.partition("=")
    if not equals or Path(raw).exists() or not _NAME.fullmatch(name):
        name, value = _stem(Path(raw).name or raw), raw
    if not _NAME.fullmatch(name):
        raise PipelineError(f"{raw}: cannot name a source {name!r}; give it as NAME=PATH")
    return name, value


def _stem(filename: str) -> str:
    for suffix in (*DOCUMENT_SUFFIXES, *DATASET_SUFFIXES):
        if filename.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return filename


def _path_source(name: str, value: str, column: str, split: str, config: str | None) -> Source:
    path = Path(value)
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            return Source(name, dataset=DatasetCorpus(value, split, column, config), root=path)
        found = sorted(p for p in path.rglob("*") if p.is_file() and _is_document_file(p))
        if not found:
            known = ", ".join(DOCUMENT_SUFFIXES)
            raise PipelineError(f"{path}: folder holds no document files ({known})")
        return Source(name, files=tuple(found), root=path)
    if path.exists() and not path.is_file():
        raise PipelineError(f"{path}: not a regular file (a device, pipe or socket)")
    if not path.is_file():
        raise PipelineError(f"{path}: no such file or directory (a Hub dataset goes in --dataset)")
    if path.name.endswith(DATASET_SUFFIXES):
        return Source(name, dataset=DatasetCorpus(value, split, column, config), root=path)
    if not _is_document_file(path):
        known = ", ".join((*DOCUMENT_SUFFIXES, *DATASET_SUFFIXES))
        raise PipelineError(f"{path}: not a document file (expected {known})")
    return Source(name, files=(path,), root=path)


def _is_document_file(path: Path) -> bool:
    return path.name.endswith(DOCUMENT_SUFFIXES) and not path.name.startswith(".")


def read_documents(
    source: Source, *, column: str, txt_documents: str = "blank-line"
) -> Iterator[tuple[bool, str]]:
    """``(starts_document, text)`` pieces of the source's documents in order: a document is one
    or more pieces, each at most about ``MAX_PARAGRAPH_CHARS`` unless one line is longer, so
    a file without blank lines is never held in memory whole."""
    if source.dataset is not None:
        for _, text in source.dataset.iter_lines():
            yield True, text
        return
    for path in source.files:
        if path.name.endswith(JSONL_SUFFIXES):
            yield from ((True, text) for text in _json_documents(path, column))
        else:
            yield from _text_pieces(path, txt_documents)


def _text_pieces(path: Path, txt_documents: str) -> Iterator[tuple[bool, str]]:
    """Blocks of consecutive non-blank lines; a blank line starts a new document, or, when
    each file is a document, a new paragraph of the same one."""
    block: list[str] = []
    size, previous, starts = 0, -2, True
    for number, line in iter_lines([path]):
        if block and (number != previous + 1 or size > MAX_PARAGRAPH_CHARS):
            yield starts, "\n".join(block)
            starts = txt_documents == "blank-line" and number != previous + 1
            block, size = [], 0
        block.append(line)
        size += len(line) + 1
        previous = number
    if block:
        yield starts, "\n".join(block)


def _json_documents(path: Path, column: str) -> Iterator[str]:
    """The ``column`` field of each JSON object line; null or empty fields are skipped."""
    for number, line in iter_lines([path]):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PipelineError(f"{path}:{number + 1}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise PipelineError(f"{path}:{number + 1}: not a JSON object")
        if column not in record:
            found = ", ".join(sorted(record)) or "none"
            raise PipelineError(
                f"{path}:{number + 1}: no field {column!r} (fields: {found}); "
                "name the text field with --column"
            )
        text = record[column]
        if text is not None and not isinstance(text, str):
            raise PipelineError(
                f"{path}:{number + 1}: field {column!r} holds {type(text).__name__}, not text"
            )
        if text and text.strip():
            yield text
