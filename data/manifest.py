"""The shard directory's ``manifest.json``: its schema, and the only code that reads or writes it.

The manifest records what made the shards (teacher, tokenizer, corpus, format) and, per shard,
its rows and sha256. Array tasks of one encoding share it, so it is only written under an
exclusive lock (``locked``: ``init_manifest``, ``record_shard``), atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data import files
from data.errors import PipelineError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DTYPES = ("float16", "float32")  # how the teacher vectors may be stored


@dataclasses.dataclass(frozen=True)
class TeacherDescription:
    """What identifies a teacher's vectors: the manifest's ``teacher`` record, typed.

    The one list of the teacher's keys: the manifest's schema, the fields shards must agree on,
    what ``--reuse`` compares and what rebuilds a saved GLUE teacher are all read from these
    fields, so a new setting that changes the vectors is added here once. ``vocab_size`` and
    ``precision`` are None for manifests written before they were recorded (and are then left
    out of ``to_dict``, so such a manifest is written back unchanged).
    """

    name_or_path: str
    weights_sha256: str
    pooling: str = dataclasses.field(metadata={"rebuild": True})
    normalize: bool = dataclasses.field(metadata={"rebuild": True})
    max_length: int = dataclasses.field(metadata={"rebuild": True, "positive": True})
    hidden_size: int = dataclasses.field(metadata={"positive": True})
    vocab_size: int | None = dataclasses.field(default=None, metadata={"positive": True})
    precision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``teacher`` record (fields not recorded are left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TeacherDescription:
        """The description a checked manifest's ``teacher`` record holds (other keys ignored)."""
        return cls(**{key: record[key] for key in TEACHER_KEYS if key in record})


def _teacher_kinds(optional: bool) -> dict[str, type]:
    """``teacher.KEY`` → its type, for the required (or the optional) fields."""
    hints = typing.get_type_hints(TeacherDescription)
    kinds = {}
    for spec in dataclasses.fields(TeacherDescription):
        if (spec.default is None) == optional:
            hint = hints[spec.name]
            kinds[f"teacher.{spec.name}"] = (typing.get_args(hint) or (hint,))[0]  # X | None: X
    return kinds


TEACHER_KEYS = tuple(spec.name for spec in dataclasses.fields(TeacherDescription))
# Every teacher key but its path, which may differ between machines: its weights may not.
TEACHER_VECTOR_KEYS = tuple(key for key in TEACHER_KEYS if key != "name_or_path")
# The settings a saved teacher folder is rebuilt with (``Teacher(folder, **settings)``: GLUE).
TEACHER_REBUILD_KEYS = tuple(
    spec.name for spec in dataclasses.fields(TeacherDescription) if spec.metadata.get("rebuild")
)

# Keys of the manifest that must agree for two runs to write into the same directory.
IDENTITY_KEYS = ("format_version", "teacher", "tokenizer", "corpus", "shard_size", "dtype", "dedup")
# Manifest keys copied into every shard's attributes when it is written.
SHARD_ATTRS = (
    "format_version",
    "teacher",
    "tokenizer",
    "corpus",
    "dtype",
    "shard_size",
    "num_shards",
    "dedup",
)
# Every recorded field that changes a stored vector, its token ids or which texts a shard holds.
# A shard's attributes must agree with the manifest on each one the manifest records
# (``teacher.vocab_size``, ``teacher.precision`` and ``tokenizer.sha256`` are absent from
# manifests written before they were recorded; such directories stay readable without them).
VECTOR_FIELDS = (
    "format_version",
    *(f"teacher.{key}" for key in TEACHER_VECTOR_KEYS),
    "tokenizer.sha256",
    "dtype",
    "corpus.sha256",
    "shard_size",
    "num_shards",
    "dedup",
)
# What a manifest must hold, with its type; anything missing is refused in one line.
REQUIRED = {
    "format_version": int,
    **_teacher_kinds(optional=False),
    "corpus.paths": list,
    "corpus.sha256": str,
    "corpus.lines": int,
    "dtype": str,
    "shard_size": int,
    "num_shards": int,
    "dedup": bool,
    "shards": dict,
}
# Recorded by later versions only: checked for their type where present.
OPTIONAL = {**_teacher_kinds(optional=True), "tokenizer.sha256": str}
# Sizes that index or allocate: a zero, negative or made-up one is refused before it is used.
POSITIVE = (
    *(
        f"teacher.{spec.name}"
        for spec in dataclasses.fields(TeacherDescription)
        if spec.metadata.get("positive")
    ),
    "shard_size",
)
MISSING = object()  # what field_value returns for an absent key


def shard_count(lines: int, shard_size: int) -> int:
    """How many shards a corpus of ``lines`` lines is cut into (at least one)."""
    return max(1, -(-lines // shard_size))


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    files.write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, checked to hold every key (of the right type) that readers rely on."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise PipelineError(f"{directory}: not a shard directory (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise PipelineError(f"{path}: corrupt manifest (not a JSON object)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PipelineError(
            f"{path}: shard format {manifest.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    check_manifest(path, manifest)
    return manifest


def field_value(record: dict[str, Any], dotted: str) -> Any:
    """``record["a"]["b"]`` for ``"a.b"``, or ``MISSING``."""
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def check_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Refuse a manifest lacking a key or holding one of the wrong type or size, naming the key."""
    for key in REQUIRED:
        if field_value(manifest, key) is MISSING:
            raise PipelineError(f"{path}: no {key!r}; not a complete shard manifest (re-encode)")
    for key, kind in {**REQUIRED, **OPTIONAL}.items():
        value = field_value(manifest, key)
        if value is not MISSING and (
            not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        ):
            raise PipelineError(f"{path}: {key!r} is {value!r}, expected {kind.__name__}")
    for key in POSITIVE:
        value = field_value(manifest, key)
        if value is not MISSING and value < 1:
            raise PipelineError(f"{path}: {key!r} is {value!r}, expected a positive number")
    if manifest["dtype"] not in DTYPES:
        raise PipelineError(
            f"{path}: 'dtype' is {manifest['dtype']!r}, expected {'/'.join(DTYPES)}"
        )
    _check_shard_count(path, manifest)
    for name, record in manifest["shards"].items():
        if not (
            isinstance(record, dict)
            and isinstance(record.get("rows"), int)
            and isinstance(record.get("sha256"), str)
        ):
            raise PipelineError(f"{path}: the record of {name!r} lacks rows or sha256")


def _check_shard_count(path: Path, manifest: dict[str, Any]) -> None:
    """``num_shards`` follows from the corpus's lines and the shard size; readers list that many
    shard names, so an edited count would send them looking for files that never existed."""
    lines, size = manifest["corpus"]["lines"], manifest["shard_size"]
    if lines < 0:
        raise PipelineError(f"{path}: 'corpus.lines' is {lines!r}, expected 0 or more")
    if manifest["num_shards"] != shard_count(lines, size):
        raise PipelineError(
            f"{path}: 'num_shards' is {manifest['num_shards']!r}, but {lines} lines in shards "
            f"of {size} make {shard_count(lines, size)}; re-encode"
        )


def shard_attrs(manifest: dict[str, Any]) -> dict[str, Any]:
    """The attributes every shard of this manifest carries: its provenance, checked on read."""
    return {key: manifest[key] for key in SHARD_ATTRS if key in manifest}


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the directory's manifest, shared by concurrent array tasks.

    Not re-entrant: ``flock`` locks belong to an open file, so code holding it calls the
    ``*_unlocked`` functions below, never ``init_manifest`` or ``record_shard``.
    """
    with files.exclusive_lock(Path(directory), ".manifest.lock"):
        # The manifest is only ever written under this lock, so a temporary copy seen while
        # holding it was left by a killed writer.
        files.remove_stale_temporaries(Path(directory), MANIFEST)
        yield


def describe_mismatch(existing: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """Name the first identity field on which two manifests disagree, or None if they agree."""
    for key in IDENTITY_KEYS:
        old, new = existing.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            for sub in sorted(set(old) | set(new)):
                if sub != "paths" and old.get(sub) != new.get(sub):
                    return f"{key}.{sub}: {old.get(sub)!r} here, {new.get(sub)!r} requested"
        elif old != new:
            return f"{key}: {old!r} here, {new!r} requested"
    return None


def init_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Create the manifest, or check that an existing one describes the same run."""
    with locked(directory):
        init_manifest_unlocked(directory, manifest)


def init_manifest_unlocked(directory: Path, manifest: dict[str, Any]) -> None:
    """``init_manifest`` for a caller that already holds ``locked(directory)``."""
    path = Path(directory) / MANIFEST
    if path.is_file():
        existing = read_manifest(directory)
        mismatch = describe_mismatch(existing, manifest)
        if mismatch:
            raise PipelineError(
                f"{directory} holds shards of another run ({mismatch}); "
                "use --overwrite or another --out"
            )
        return
    write_json_atomic(path, {**manifest, "shards": {}})


def forget_shards_unlocked(directory: Path, names: list[str]) -> None:
    """Drop the records of ``names`` (their files were removed); the caller holds the lock."""
    manifest = read_manifest(directory)
    if any(name in manifest["shards"] for name in names):
        for name in names:
            manifest["shards"].pop(name, None)
        write_json_atomic(Path(directory) / MANIFEST, manifest)


def record_shard(directory: Path, record: dict[str, Any]) -> None:
    """Merge one finished shard's record into the manifest (under the lock)."""
    with locked(directory):
        manifest = read_manifest(directory)
        manifest["shards"][record["file"]] = record
        write_json_atomic(Path(directory) / MANIFEST, manifest)
