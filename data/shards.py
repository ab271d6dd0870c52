"""The shard store (Contract 1): the HDF5 shards of teacher vectors and their manifest.

A shard directory holds ``manifest.json``, ``shard-NNNNN-of-MMMMM.h5`` files, the teacher's
``tokenizer/`` and ``teacher_input_embeddings.safetensors``. Stage 1 writes it, stage 2 and the
probes of stage 3 read it. Two rules make it safe to kill and to split across array jobs:

* a shard is written under a temporary name and renamed when complete, so a shard file that
  exists is whole;
* the shard of a corpus line is ``line // shard_size``, so processes that own disjoint shard
  indices never touch the same file. They share only the manifest, which is merged under a lock.
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

from data import files
from data.errors import PipelineError
from data.manifest import (
    MANIFEST,
    MISSING,
    VECTOR_FIELDS,
    field_value,
    read_manifest,
)

TOKENIZER_DIR = "tokenizer"
INPUT_EMBEDDINGS = "teacher_input_embeddings.safetensors"
DATASETS = ("embedding", "input_ids", "text", "line")
_SHARD_RE = re.compile(r"^shard-(\d{5})-of-(\d{5})\.h5$")


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}.h5"


def shard_count(lines: int, shard_size: int) -> int:
    return max(1, -(-lines // shard_size))


def tokenizer_sha256(folder: Path) -> str:
    """sha256 over the names and bytes of a saved tokenizer's files (deterministic per save)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        digest.update(files.sha256_file(path).encode("ascii"))
    return digest.hexdigest()


def prepare_output(directory: Path, overwrite: bool) -> None:
    """Refuse an output folder that is not a shard directory; with ``overwrite``, empty ours.

    A folder is a shard directory when its manifest reads as one. Any other non-empty folder
    is refused whatever ``overwrite`` says (dot-files, this module's temporaries and lock,
    do not count), so a mistyped ``--out`` loses nothing; ``overwrite`` deletes only the files
    stage 1 writes, and says which.
    """
    directory = Path(directory)
    if not files.earlier_output(directory, MANIFEST, "a shard directory", dot_files_count=False):
        return
    read_manifest(directory)  # a foreign or broken manifest.json is refused, not deleted
    if not overwrite:
        return
    ours = [
        *list_shard_files(directory),
        *(directory / n for n in (INPUT_EMBEDDINGS, TOKENIZER_DIR)),
    ]
    files.remove_outputs(directory, [*ours, directory / MANIFEST])


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
    """
    final = Path(directory) / name
    image = _shard_image(data, attrs, dtype)
    files.require_free_space(final.parent, len(image), f"shard {name}")
    with files.atomic_path(final) as tmp, tmp.open("wb") as handle:
        handle.write(image)
        handle.flush()
        os.fsync(handle.fileno())
    return {"file": name, "rows": len(data), "sha256": hashlib.sha256(image).hexdigest()}


def _shard_image(data: ShardData, attrs: dict[str, Any], dtype: str) -> bytes:
    """The bytes of a shard's HDF5 file, built in memory."""
    with h5py.File(f"shard-{os.getpid()}.h5", "w", driver="core", backing_store=False) as handle:
        handle.create_dataset("embedding", data=data.embedding.astype(dtype))
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


def check_finite(path: Path, embedding: np.ndarray, lines: np.ndarray) -> None:
    """Refuse NaN or infinite teacher vectors: they would poison training and every metric."""
    finite = np.isfinite(embedding).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise PipelineError(
            f"{path}: NaN or infinite teacher vector at row {bad} (corpus line "
            f"{int(lines[bad]) + 1}); re-encode this shard"
        )


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
    """Check every expected shard's (or only ``names``') presence, checksum and row count
    against the manifest."""
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
    tokenizer = _tokenizer_problem(directory, manifest)
    if tokenizer:
        bad.append(tokenizer)
    return VerifyReport(checked, rows, missing, bad)


def shard_problem(path: Path, manifest: dict[str, Any], rows: int) -> str | None:
    """What makes a shard disagree with its manifest (rows, provenance, dtype, width), or None."""
    try:
        with h5py.File(path, "r") as handle:
            lengths = {key: len(handle[key]) for key in DATASETS}
            embedding = handle["embedding"]
            shape, dtype = embedding.shape, embedding.dtype
            attrs = {key: _attr(handle.attrs[key]) for key in handle.attrs}
    except (OSError, KeyError, ValueError) as exc:
        return f"unreadable ({exc})"
    if set(lengths.values()) != {rows}:
        return f"row counts {lengths} disagree with the manifest's {rows}"
    width = shape[1] if len(shape) == 2 else -1
    if width != manifest["teacher"]["hidden_size"]:
        return (
            f"vectors of width {width}, the manifest says {manifest['teacher']['hidden_size']}; "
            "re-run encode"
        )
    if dtype != np.dtype(manifest["dtype"]):
        return f"vectors stored as {dtype}, the manifest says {manifest['dtype']}; re-run encode"
    for key in VECTOR_FIELDS:
        want, got = field_value(manifest, key), field_value(attrs, key)
        if want is not MISSING and got != want:
            shown = "absent" if got is MISSING else repr(got)
            return (
                f"{key} is {shown} in the shard, {want!r} in the manifest: written by another "
                "encoding; delete this shard and re-run encode"
            )
    return None


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
