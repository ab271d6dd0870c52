"""The shard store (Contract 1): the HDF5 shards of teacher vectors and their manifest.

A shard directory holds ``manifest.json``, ``shard-NNNNN-of-MMMMM.h5`` files, the teacher's
``tokenizer/`` and ``teacher_input_embeddings.safetensors``. Stage 1 writes it, stage 2 and the
probes of stage 3 read it. Two rules make it safe to kill and to split across array jobs:

* a shard is written under a temporary name and renamed when complete, so a shard file that
  exists is whole;
* the shard of a corpus line is ``line // shard_size``, so processes that own disjoint shard
  indices never touch the same file. They share only the manifest, which is merged under a lock.

A shard proves what it holds: its ``line`` dataset lies in its own index's range and its
``shard_index`` attribute names that index, so a copy under another shard's name is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from safetensors import safe_open

from data import files
from data.errors import PipelineError
from data.manifest import (
    MANIFEST,
    MISSING,
    VECTOR_FIELDS,
    describe_mismatch,
    field_value,
    forget_shards_unlocked,
    init_manifest_unlocked,
    locked,
    read_manifest,
)

TOKENIZER_DIR = "tokenizer"
INPUT_EMBEDDINGS = "teacher_input_embeddings.safetensors"
DATASETS = ("embedding", "input_ids", "text", "line")
INDEX_ATTR = "shard_index"  # absent from shards written before it was recorded
_REDO = "delete this shard and re-run encode"
_SHARD_RE = re.compile(r"^shard-(\d{5})-of-(\d{5})\.h5$")


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}.h5"


def shard_index(name: str) -> int:
    """The index a shard's file name gives it (``shard_name``'s inverse)."""
    found = _SHARD_RE.match(name)
    if found is None:
        raise PipelineError(f"{name}: not a shard file name (shard-NNNNN-of-MMMMM.h5)")
    return int(found.group(1))


def tokenizer_sha256(folder: Path) -> str:
    """sha256 over the names and bytes of a saved tokenizer's files (deterministic per save)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        digest.update(files.sha256_file(path).encode("ascii"))
    return digest.hexdigest()


def check_output(directory: Path) -> None:
    """Refuse an output folder that is neither absent, empty nor a shard directory.

    A folder is a shard directory when its manifest reads as one. Any other non-empty folder
    is refused whatever ``--overwrite`` says (dot-files, this module's temporaries and lock,
    do not count), so a mistyped ``--out`` loses nothing.
    """
    directory = Path(directory)
    if files.earlier_output(directory, MANIFEST, "a shard directory", dot_files_count=False):
        read_manifest(directory)  # a foreign or broken manifest.json is refused, not deleted


def claim_output(
    directory: Path, manifest: dict[str, Any], *, overwrite: bool, owned: list[str]
) -> None:
    """Start or join the run ``manifest`` describes; with ``overwrite``, first remove what this
    task replaces, saying which.

    A SLURM array re-run passes ``--overwrite`` to every task, and its tasks start at different
    times, some while others already write. The first task to find another run's manifest (or,
    alone, any manifest) removes every file stage 1 writes; a task that finds the manifest of
    its own run, which a sibling started, removes only the shards it ``owned``, never a
    sibling's. Deciding and removing happen under the manifest lock, so two tasks cannot both
    take the first role.
    """
    directory = Path(directory)
    with locked(directory):
        if overwrite and (directory / MANIFEST).is_file():
            _remove_replaced(directory, manifest, owned)
        init_manifest_unlocked(directory, manifest)


def _remove_replaced(directory: Path, manifest: dict[str, Any], owned: list[str]) -> None:
    sibling_started = describe_mismatch(read_manifest(directory), manifest) is None
    if sibling_started and len(owned) < manifest["num_shards"]:
        mine = [directory / name for name in owned if (directory / name).is_file()]
        if mine:
            files.remove_outputs(directory, mine)
        forget_shards_unlocked(directory, owned)
        return
    every = [*list_shard_files(directory), directory / INPUT_EMBEDDINGS, directory / TOKENIZER_DIR]
    files.remove_outputs(directory, [*every, directory / MANIFEST])


@dataclass
class ShardData:
    """The four datasets of one shard, in corpus order."""

    embedding: np.ndarray
    input_ids: list[np.ndarray]
    text: list[str]
    line: np.ndarray

    def __len__(self) -> int:
        return len(self.line)


def write_shard(
    directory: Path, name: str, data: ShardData, attrs: dict[str, Any], dtype: str
) -> dict[str, Any]:
    """Write a shard atomically and return its manifest record (file, rows, sha256).

    HDF5 builds the file in memory and Python writes the bytes: libhdf5 crashes the process
    (SIGSEGV) when it closes a file whose write hit a full disk, so it never writes to disk here.
    The vectors are checked as stored: a teacher output beyond float16's range becomes inf.
    """
    final = Path(directory) / name
    embedding = data.embedding.astype(dtype)
    fix = f"the teacher gave NaN or overflows {dtype}; try --dtype float32 or --precision fp32"
    check_finite(final, embedding, data.line, fix)
    image = _shard_image(data, embedding, {**attrs, INDEX_ATTR: shard_index(name)})
    files.require_free_space(final.parent, len(image), f"shard {name}")
    with files.atomic_path(final) as tmp, tmp.open("wb") as handle:
        handle.write(image)
        handle.flush()
        os.fsync(handle.fileno())
    return {"file": name, "rows": len(data), "sha256": hashlib.sha256(image).hexdigest()}


def _shard_image(data: ShardData, embedding: np.ndarray, attrs: dict[str, Any]) -> bytes:
    """The bytes of a shard's HDF5 file, built in memory."""
    with h5py.File(f"shard-{os.getpid()}.h5", "w", driver="core", backing_store=False) as handle:
        handle.create_dataset("embedding", data=embedding)
        ids = handle.create_dataset(
            "input_ids", (len(data),), dtype=h5py.vlen_dtype(np.dtype("int32"))
        )
        for row, seq in enumerate(data.input_ids):
            ids[row] = np.asarray(seq, dtype=np.int32)
        handle.create_dataset(
            "text", data=np.array(data.text, dtype=object), dtype=h5py.string_dtype("utf-8")
        )
        handle.create_dataset("line", data=np.asarray(data.line, dtype=np.int64))
        for key, value in attrs.items():
            handle.attrs[key] = json.dumps(value) if isinstance(value, dict) else value
        handle.flush()
        return handle.id.get_file_image()


def read_shard(path: Path) -> ShardData:
    """Read a whole shard; a truncated or foreign file raises a PipelineError naming it."""
    try:
        with h5py.File(path, "r") as handle:
            missing = [key for key in DATASETS if key not in handle]
            if missing:
                raise PipelineError(f"{path}: not a shard (missing datasets {missing})")
            data = ShardData(
                embedding=handle["embedding"][()],
                input_ids=list(handle["input_ids"][()]),
                text=[t.decode("utf-8") for t in handle["text"][()]],
                line=handle["line"][()],
            )
    except (OSError, KeyError, ValueError) as exc:
        raise PipelineError(f"{path}: unreadable shard ({exc}); re-run encode") from None
    check_finite(path, data.embedding, data.line)
    return data


def check_finite(
    path: Path, embedding: np.ndarray, lines: np.ndarray, fix: str = "re-encode this shard"
) -> None:
    """Refuse NaN or infinite teacher vectors: they would poison training and every metric."""
    problem = _nonfinite_problem(embedding, lines)
    if problem:
        raise PipelineError(f"{path}: {problem}; {fix}")


def _nonfinite_problem(embedding: np.ndarray, lines: np.ndarray) -> str | None:
    finite = np.isfinite(embedding).all(axis=1)
    if finite.all():
        return None
    bad = int(np.flatnonzero(~finite)[0])
    return f"NaN or infinite teacher vector at row {bad} (corpus line {int(lines[bad]) + 1})"


def is_validation(lines: np.ndarray, fraction: float) -> np.ndarray:
    """Deterministic held-out rows: a hash of the corpus line number, not of its position.

    Stage 2 never trains on these rows and stage 3's probes evaluate on them; both call this.
    """
    if fraction <= 0:
        return np.zeros(len(lines), dtype=bool)
    mixed = np.asarray(lines, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    mixed ^= mixed >> np.uint64(31)
    return (mixed % np.uint64(1_000_000)) < np.uint64(round(fraction * 1_000_000))


@dataclass
class VerifyReport:
    checked: int
    rows: int
    missing: list[str]
    bad: list[str]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.bad


def expected_shards(manifest: dict[str, Any]) -> list[str]:
    count = manifest["num_shards"]
    return [shard_name(i, count) for i in range(count)]


def verify(directory: Path, names: list[str] | None = None) -> VerifyReport:
    """Check every expected shard's (or only ``names``') presence, checksum and contents
    (``shard_problem``) against the manifest, and the tokenizer and word-piece matrix."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    records = manifest["shards"]
    missing, bad, rows, checked = [], [], 0, 0
    for name in expected_shards(manifest) if names is None else names:
        path = directory / name
        if not path.is_file():
            missing.append(name)
            continue
        checked += 1
        record = records.get(name)
        if record is None:
            bad.append(f"{name}: not recorded in the manifest")
        elif files.sha256_file(path) != record["sha256"]:
            bad.append(f"{name}: checksum mismatch (corrupt or truncated)")
        else:
            problem = shard_problem(path, manifest, record["rows"])
            if problem:
                bad.append(f"{name}: {problem}")
            else:
                rows += record["rows"]
    for problem in (_tokenizer_problem(directory, manifest), _matrix_problem(directory, manifest)):
        if problem:
            bad.append(problem)
    return VerifyReport(checked, rows, missing, bad)


@dataclass
class _Contents:
    """What ``shard_problem`` checks of one shard file, read once."""

    lengths: dict[str, int]
    embedding: np.ndarray
    input_ids: np.ndarray
    line: np.ndarray
    attrs: dict[str, Any]

    @classmethod
    def read(cls, path: Path) -> _Contents:
        with h5py.File(path, "r") as handle:
            return cls(
                lengths={key: len(handle[key]) for key in DATASETS},
                embedding=handle["embedding"][()],
                input_ids=handle["input_ids"][()],
                line=handle["line"][()],
                attrs={key: _attr(handle.attrs[key]) for key in handle.attrs},
            )


def shard_problem(path: Path, manifest: dict[str, Any], rows: int) -> str | None:
    """What makes a shard disagree with its manifest and its name (rows, width, dtype,
    provenance, line range, token ids, finite vectors), or None."""
    try:
        found = _Contents.read(path)
        if set(found.lengths.values()) != {rows}:
            return f"row counts {found.lengths} disagree with the manifest's {rows}"
        return (
            _layout_problem(found, manifest)
            or _fields_problem(found.attrs, manifest)
            or _range_problem(found, manifest, shard_index(Path(path).name))
            or _ids_problem(found.input_ids, field_value(manifest, "teacher.vocab_size"))
            or _nonfinite_problem(found.embedding, found.line)
        )
    except (OSError, KeyError, ValueError, TypeError) as exc:
        return f"unreadable ({exc})"


def _layout_problem(found: _Contents, manifest: dict[str, Any]) -> str | None:
    shape, dtype = found.embedding.shape, found.embedding.dtype
    width = shape[1] if len(shape) == 2 else -1
    if width != manifest["teacher"]["hidden_size"]:
        return (
            f"vectors of width {width}, the manifest says {manifest['teacher']['hidden_size']}; "
            "re-run encode"
        )
    if dtype != np.dtype(manifest["dtype"]):
        return f"vectors stored as {dtype}, the manifest says {manifest['dtype']}; re-run encode"
    return None


def _fields_problem(attrs: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    for key in VECTOR_FIELDS:
        want, got = field_value(manifest, key), field_value(attrs, key)
        if want is not MISSING and got != want:
            shown = "absent" if got is MISSING else repr(got)
            return (
                f"{key} is {shown} in the shard, {want!r} in the manifest: written by another "
                "encoding; " + _REDO
            )
    return None


def _range_problem(found: _Contents, manifest: dict[str, Any], index: int) -> str | None:
    """A shard holds corpus lines of its own index only, in increasing order: a copy of
    another shard under its name would train on those lines twice and on its own never."""
    recorded = found.attrs.get(INDEX_ATTR, index)
    if recorded != index:
        return f"its {INDEX_ATTR} attribute says {recorded!r}: a copy of another shard; " + _REDO
    lines = found.line
    if not len(lines):
        return None
    size = manifest["shard_size"]
    low, high = index * size, min((index + 1) * size, manifest["corpus"]["lines"])
    inside = lines.ndim == 1 and np.issubdtype(lines.dtype, np.integer)
    if not inside or lines[0] < low or lines[-1] >= high or not (np.diff(lines) > 0).all():
        return (
            f"holds corpus lines {_span(lines)}, not shard {index}'s {low + 1}..{high} in "
            "order: a copy of another shard; " + _REDO
        )
    return None


def _span(lines: np.ndarray) -> str:
    return f"{int(lines.min()) + 1}..{int(lines.max()) + 1}" if lines.size else "none"


def _ids_problem(input_ids: np.ndarray, vocab_size: Any) -> str | None:
    """Token ids index the student's word-piece matrix (the teacher's, ``vocab_size`` rows):
    one outside it passes every other check, then crashes training."""
    if not len(input_ids):
        return None
    flat = np.concatenate([np.ravel(ids) for ids in input_ids])
    if not np.issubdtype(flat.dtype, np.integer):
        return f"token ids stored as {flat.dtype}, not integers; " + _REDO
    outside = flat < 0 if vocab_size is MISSING else (flat < 0) | (flat >= vocab_size)
    if not outside.any():
        return None
    at = int(np.flatnonzero(outside)[0])
    row = int(np.searchsorted(np.cumsum([len(ids) for ids in input_ids]), at, side="right"))
    limit = "" if vocab_size is MISSING else f" 0..{vocab_size - 1}"
    return f"token id {int(flat[at])} at row {row} is outside the vocabulary{limit}; " + _REDO


def _attr(value: Any) -> Any:
    """A shard attribute as written: dicts were stored as JSON text, numbers as numpy scalars."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str) and value.startswith("{"):
        return json.loads(value)
    return value.item() if isinstance(value, np.generic) else value


def _tokenizer_problem(directory: Path, manifest: dict[str, Any]) -> str | None:
    expected = field_value(manifest, "tokenizer.sha256")
    if expected is MISSING:
        return None
    folder = directory / TOKENIZER_DIR
    if not folder.is_dir():
        return f"{TOKENIZER_DIR}/: missing; re-run encode"
    if tokenizer_sha256(folder) != expected:
        return f"{TOKENIZER_DIR}/: its files differ from the tokenizer the manifest records"
    return None


def _matrix_problem(directory: Path, manifest: dict[str, Any]) -> str | None:
    """The word-piece matrix the student starts from needs a row for every token id the
    shards may hold (``teacher.vocab_size``; older manifests did not record it)."""
    vocab = field_value(manifest, "teacher.vocab_size")
    path = directory / INPUT_EMBEDDINGS
    if vocab is MISSING:
        return None
    if not path.is_file():
        return f"{INPUT_EMBEDDINGS}: missing; re-run encode"
    try:
        with safe_open(str(path), framework="numpy") as handle:
            shape = handle.get_slice("weight").get_shape()
    except Exception as exc:  # safetensors raises its own error types
        return f"{INPUT_EMBEDDINGS}: unreadable ({exc}); re-run encode"
    if len(shape) != 2 or shape[0] != vocab:
        return (
            f"{INPUT_EMBEDDINGS}: shape {tuple(shape)}, the manifest records {vocab} token ids; "
            "re-run encode"
        )
    return None


class ShardStore:
    """Read access to a complete shard directory, checked before any training starts.

    ``first_shards=N`` reads only shards 0..N-1, the corpus's first N x shard_size lines: a
    prefix that stays the same while stage 1 goes on encoding the rest, so a run on it can be
    resumed and repeated.
    """

    def __init__(
        self, directory: str | Path, *, check: bool = True, first_shards: int | None = None
    ):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise PipelineError(f"{self.directory}: no such shard directory")
        self.manifest = read_manifest(self.directory)
        self.names = _chosen_shards(self.directory, self.manifest, first_shards)
        if check:
            report = verify(self.directory, self.names)
            if report.missing:
                raise PipelineError(
                    f"{self.directory}: {len(report.missing)} shard(s) missing, e.g. "
                    f"{report.missing[0]}; finish `pipeline encode` first"
                    + ("" if first_shards is None else " or lower --first-shards")
                )
            if report.bad:
                raise PipelineError(f"{self.directory}: {report.bad[0]}")
        if self.rows == 0:
            raise PipelineError(f"{self.directory}: the shards hold no rows")

    @property
    def paths(self) -> list[Path]:
        return [self.directory / name for name in self.names]

    @property
    def total_shards(self) -> int:
        return int(self.manifest["num_shards"])

    @property
    def dim(self) -> int:
        return int(self.manifest["teacher"]["hidden_size"])

    @property
    def normalized(self) -> bool:
        return bool(self.manifest["teacher"]["normalize"])

    @property
    def rows(self) -> int:
        return sum(self.shard_rows().values())

    @property
    def tokenizer_dir(self) -> Path:
        return self.directory / TOKENIZER_DIR

    @property
    def input_embeddings_path(self) -> Path:
        return self.directory / INPUT_EMBEDDINGS

    def shard_rows(self) -> dict[Path, int]:
        records = self.manifest["shards"]
        return {self.directory / n: records[n]["rows"] for n in self.names if n in records}


def _chosen_shards(directory: Path, manifest: dict[str, Any], first: int | None) -> list[str]:
    names = expected_shards(manifest)
    if first is None:
        return names
    if not 1 <= first <= len(names):
        raise PipelineError(
            f"{directory}: --first-shards {first} is out of range 1..{len(names)} "
            "(the manifest's shard count)"
        )
    return names[:first]


def list_shard_files(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).iterdir() if _SHARD_RE.match(p.name))
