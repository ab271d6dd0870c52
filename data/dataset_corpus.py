"""Corpora read through the ``datasets`` library: one text column of one split, streamed.

Local parquet, JSON lines, CSV and Arrow files (or a folder of them), a folder written by
``Dataset.save_to_disk``, or a Hub dataset where a hub is reachable. Rows are streamed, so a
corpus larger than memory works. A row's number is its position in the split, blank rows
included, exactly as a text file's line number is, so the shard of a row stays
``row // shard_size`` and array jobs, resume and byte-identical re-runs hold as for text files.

The corpus fingerprint is a sha256 over the column's texts in order (each length-prefixed), so
it names the content whatever the file format, and re-encoding the same dataset resumes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.corpus import CorpusFingerprint, LineStats
from data.errors import PipelineError

BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv",
            ".arrow": "arrow"}  # fmt: skip
_TEXT_TYPES = ("string", "large_string")
_BATCH = 1000


def dataset_builder(name: str, config: str | None = None) -> tuple[str, dict[str, Any]]:
    """``load_dataset``'s first argument and keywords for a local file, a ``save_to_disk``
    folder (``"save_to_disk"``) or a Hub name."""
    path = Path(name)
    if path.is_file():
        builder = BUILDERS.get(path.suffix.lower())
        if builder is None:
            known = ", ".join(sorted(BUILDERS))
            raise PipelineError(f"{path}: not a dataset file (expected one of {known})")
        return builder, {"data_files": str(path)}
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        return "save_to_disk", {}
    return name, {"name": config}


def stream_split(name: str, split: str, config: str | None = None) -> Any:
    """One split of a dataset as an ``IterableDataset``; what cannot be read is one line."""
    import datasets

    builder, options = dataset_builder(name, config)
    try:
        if builder == "save_to_disk":
            loaded = datasets.load_from_disk(name)
            # a saved DatasetDict has named splits; a saved Dataset is one unnamed split
            part = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
            return part.to_iterable_dataset()
        return datasets.load_dataset(builder, split=split, streaming=True, **options)
    except KeyError:
        raise PipelineError(f"{name}: no split {split!r}") from None
    except (
        ValueError,
        FileNotFoundError,
        OSError,
        datasets.exceptions.DatasetNotFoundError,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PipelineError(f"{name}: cannot read split {split!r} ({first})") from None


@dataclass(frozen=True)
class DatasetCorpus:
    """One string column of one split of a dataset (a local path or a Hub name)."""

    name: str
    split: str
    column: str = "text"
    config: str | None = None

    def describe(self) -> dict[str, Any]:
        """The dataset's identity, as recorded in the shard manifest."""
        source = "local" if Path(self.name).exists() else "hub"
        return {"name": self.name, "config": self.config, "split": self.split,
                "column": self.column, "builder": self._builder()[0], "source": source}  # fmt: skip

    def _builder(self) -> tuple[str, dict[str, Any]]:
        return dataset_builder(self.name, self.config)

    def _stream(self) -> Any:
        """The split as an ``IterableDataset`` of the one column, with its type checked."""

        stream = stream_split(self.name, self.split, self.config)
        self._check_column(stream.features)
        return stream.select_columns([self.column])

    def _check_column(self, features: Any) -> None:
        if features is None:
            return  # not known before reading: each value is checked as it is read
        if self.column not in features:
            found = ", ".join(sorted(features)) or "none"
            raise PipelineError(
                f"{self.name} ({self.split}): no column {self.column!r} (columns: {found})"
            )
        dtype = getattr(features[self.column], "dtype", type(features[self.column]).__name__)
        if dtype not in _TEXT_TYPES:
            raise PipelineError(
                f"{self.name} ({self.split}): column {self.column!r} holds {dtype}, not text"
            )

    def _values(self) -> Iterator[str | None]:
        import pyarrow

        stream = self._stream()
        if self._builder()[0] == "parquet" and _parquet_rows(Path(self.name)) == 0:
            return  # datasets' parquet streamer fails on a file with no rows instead of ending
        row = 0
        try:
            for batch in stream.iter(batch_size=_BATCH):
                for value in batch[self.column]:
                    self._check_value(value, row)
                    yield value
                    row += 1
        except (pyarrow.ArrowException, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PipelineError(f"{self.name} ({self.split}): cannot read rows ({first})") from None

    def _check_value(self, value: Any, row: int) -> None:
        """A row is text or empty; a NUL in it is refused as in a text corpus (HDF5 cannot
        store it), named by row, before the fingerprint pass lets anything be written."""
        if value is not None and not isinstance(value, str):
            raise PipelineError(
                f"{self.name} ({self.split}): column {self.column!r} holds "
                f"{type(value).__name__}, not text"
            )
        if value and "\x00" in value:
            raise PipelineError(
                f"{self.name} ({self.split}): NUL character in row {row + 1} of column "
                f"{self.column!r}; remove it"
            )

    def check(self) -> None:
        """Refuse a missing split or column, a column that is not text, or an empty split,
        reading no further than the first row with text."""
        if next(self.iter_lines(), None) is None:
            raise PipelineError(
                f"{self.name} ({self.split}): empty split (no row with text in column "
                f"{self.column!r})"
            )

    def iter_lines(self, stats: LineStats | None = None) -> Iterator[tuple[int, str]]:
        """``(row_number, text)`` for every non-blank row, as ``corpus.iter_lines`` does."""
        stats = stats if stats is not None else LineStats()
        for number, value in enumerate(self._values()):
            text = (value or "").strip()
            if text:
                yield number, text
            else:
                stats.blank += 1

    def fingerprint(self) -> CorpusFingerprint:
        """Count the rows and hash the texts in one streaming pass; refuse an empty split."""
        digest = hashlib.sha256()
        rows = texts = 0
        for value in self._values():
            data = (value or "").encode("utf-8")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
            rows += 1
            texts += bool(data.strip())
        if texts == 0:
            self.check()  # raises: the same message as before any work
        return CorpusFingerprint([self.name], digest.hexdigest(), rows)


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows
