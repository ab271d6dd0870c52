"""Readers for semantic-textual-similarity files: sentence pairs with a gold similarity score.

Two layouts are accepted, told apart by the header line:

* GLUE STS-B (``train.tsv`` / ``dev.tsv``): a header naming ``sentence1``, ``sentence2`` and
  ``score`` among other columns; the columns are found by name, so the layout of other
  STS-style TSVs with the same header names works too;
* plain ``sentence1<TAB>sentence2<TAB>score`` lines, with no header (or a header whose third
  field is not a number, which is skipped).

Files may be gzip-compressed (``.gz``). Fields are split on tabs only, never unquoted: STS
sentences contain quote characters that a CSV reader would swallow.

``zero_shot`` is the one zero-shot STS computation: ``pipeline eval sts``, the validation during
``pipeline train --sts-dev`` and the benchmarks all call it, so they report the same number.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr

from data.errors import PipelineError

GLUE_COLUMNS = ("sentence1", "sentence2", "score")


@dataclass
class StsPairs:
    """Sentence pairs of one STS file with their gold scores, in file order."""

    path: Path
    sentence1: list[str]
    sentence2: list[str]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def name(self) -> str:
        """A short label: ``STS-B-dev`` for ``.../STS-B/dev.tsv``, else the file's stem."""
        stem = self.path.name.removesuffix(".gz").rsplit(".", 1)[0]
        if stem in {"train", "dev", "test"} and self.path.parent.name:
            return f"{self.path.parent.name}-{stem}"
        return stem


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise PipelineError(f"{path}: no such STS file")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: cannot read as UTF-8 text ({exc})") from None
    return text.splitlines()


def _is_number(field: str) -> bool:
    try:
        return math.isfinite(float(field))
    except ValueError:
        return False


def _columns(path: Path, header: list[str]) -> tuple[tuple[int, int, int], bool]:
    """Indices of (sentence1, sentence2, score) and whether the first line is a header."""
    if all(name in header for name in GLUE_COLUMNS):
        return tuple(header.index(name) for name in GLUE_COLUMNS), True  # type: ignore[return-value]
    if "sentence1" in header:
        raise PipelineError(
            f"{path}: header has no {[n for n in GLUE_COLUMNS if n not in header]} column "
            "(an unlabeled test file cannot be scored)"
        )
    if len(header) != 3:
        raise PipelineError(
            f"{path}:1: expected sentence1<TAB>sentence2<TAB>score or a GLUE STS-B header, "
            f"got {len(header)} tab-separated fields"
        )
    return (0, 1, 2), not _is_number(header[2])


def read_sts(path: str | Path) -> StsPairs:
    """Read an STS file; a malformed line raises a PipelineError naming the file and line."""
    path = Path(path)
    lines = _read_lines(path)
    if not lines or not lines[0].strip():
        raise PipelineError(f"{path}: empty STS file")
    (i1, i2, iscore), has_header = _columns(path, lines[0].split("\t"))
    needed = max(i1, i2, iscore) + 1
    first, second, scores = [], [], []
    for number, line in enumerate(lines[1:] if has_header else lines, start=1 + has_header):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < needed:
            raise PipelineError(
                f"{path}:{number}: {len(fields)} tab-separated fields, expected at least {needed}"
            )
        if not _is_number(fields[iscore]):
            raise PipelineError(f"{path}:{number}: score {fields[iscore]!r} is not a number")
        first.append(fields[i1].strip())
        second.append(fields[i2].strip())
        scores.append(float(fields[iscore]))
    if not scores:
        header = " (its first line was read as a header)" if has_header else ""
        raise PipelineError(f"{path}: no sentence pairs{header}")
    _require_correlatable(path, scores)
    return StsPairs(path, first, second, np.asarray(scores, dtype=np.float64))


TSV_SUFFIXES = (".tsv", ".tsv.gz", ".txt", ".txt.gz")
SCORE_COLUMNS = ("score", "label", "similarity_score")  # how STS datasets name the gold score


def read_sts_source(spec: str | Path, split: str = "validation") -> StsPairs:
    """STS pairs from a TSV file (``read_sts``) or any ``datasets`` source: a parquet, JSON
    lines, CSV or Arrow file, a ``save_to_disk`` folder or a Hub name, with the columns
    ``sentence1``, ``sentence2`` and a score (``score``, ``label`` or ``similarity_score``)."""
    if str(spec).lower().endswith(TSV_SUFFIXES):
        return read_sts(spec)
    from data.dataset_corpus import stream_split

    name = str(spec)
    stream = stream_split(name, split)
    rows = list(stream)
    columns = set(rows[0]) if rows else set(stream.features or {})
    score = next((c for c in SCORE_COLUMNS if c in columns), None)
    missing = [c for c in ("sentence1", "sentence2") if c not in columns]
    if missing or score is None:
        raise PipelineError(
            f"{name} ({split}): needs the columns sentence1, sentence2 and one of "
            f"{'/'.join(SCORE_COLUMNS)}; found {sorted(columns)}"
        )
    first, second, scores = [], [], []
    for number, row in enumerate(rows):
        _check_row(f"{name} ({split}) row {number}", row, score)
        first.append(row["sentence1"].strip())
        second.append(row["sentence2"].strip())
        scores.append(float(row[score]))
    _require_correlatable(Path(name), scores)
    return StsPairs(Path(name), first, second, np.asarray(scores, dtype=np.float64))


def _check_row(where: str, row: dict, score: str) -> None:
    if not isinstance(row["sentence1"], str) or not isinstance(row["sentence2"], str):
        raise PipelineError(f"{where}: a sentence is not text")
    value = row[score]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PipelineError(f"{where}: score {value!r} is not a number")


def _require_correlatable(path: Path, scores: list[float]) -> None:
    """Refuse gold scores that no correlation can be computed on: fewer than two pairs, or one
    score for every pair (Pearson and Spearman are then undefined, not a low score)."""
    if len(scores) < 2:
        raise PipelineError(f"{path}: only one sentence pair; a correlation needs at least two")
    if min(scores) == max(scores):
        raise PipelineError(
            f"{path}: every gold score is {scores[0]:g}; a correlation needs scores that differ"
        )


@dataclass
class ZeroShot:
    """How well cosine(vector(s1), vector(s2)) ranks and tracks the gold scores."""

    cosines: np.ndarray  # one per pair, in file order
    sentences: int  # distinct sentences encoded
    pearson: float
    spearman: float


def zero_shot(pairs: StsPairs, encode: Callable[[Sequence[str]], np.ndarray]) -> ZeroShot:
    """Encode each distinct sentence once and correlate the pairs' cosines with the gold scores.

    The cosines are taken in float64: near-equal cosines must rank the same every time. Cosines
    that do not vary (a collapsed model) or are not finite give NaN correlations.
    """
    unique = list(dict.fromkeys(pairs.sentence1 + pairs.sentence2))
    vectors = np.array(encode(unique), dtype=np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {text: i for i, text in enumerate(unique)}
    first = vectors[[row[t] for t in pairs.sentence1]]
    second = vectors[[row[t] for t in pairs.sentence2]]
    cosines = np.einsum("ij,ij->i", first, second)
    varies = bool(np.ptp(cosines) > 0)  # False with a NaN too; scipy would only warn
    return ZeroShot(
        cosines=cosines,
        sentences=len(unique),
        pearson=float(pearsonr(cosines, pairs.scores)[0]) if varies else math.nan,
        spearman=float(spearmanr(cosines, pairs.scores)[0]) if varies else math.nan,
    )
