"""Finished runs kept in the repository, so that a benchmark longer than one sitting goes on
from where the last sitting stopped, on a fresh machine too.

A results folder under ``runs/`` lives only as long as its machine. The ledger, a JSON file
under bench/results/, keeps every finished entry of a benchmark's rows together with the
fingerprint of the inputs that produced it (a model's weights, the word pieces a scratch
model starts from, the KD source, the options that change a result). A later run restores into
its results folder only the entries whose fingerprint equals the one it computes for that row
now, so a student retrained into other weights starts its rows afresh instead of mixing in
numbers of a model that is gone. Training on one thread is deterministic here, so the same
command on the same code gives the same weights and keeps its ledger entries.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from data import files
from data.shards import INPUT_EMBEDDINGS
from stage2_train.layout import CONFIG_FILE
from stage3_eval.results import Result, load_results, write_results

# Bumped when a change to the fine-tuning code changes what a (row, task, seed) gives, so
# that entries measured by the old code are no longer restored.
LEDGER_VERSION = 1
FINGERPRINT = "fingerprint"


def fingerprint(*parts: Any) -> str:
    """sha256 of the JSON of ``parts`` and the ledger version."""
    text = json.dumps([LEDGER_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def weights_sha256(folder: Path) -> str:
    """sha256 over a model folder's weight files (safetensors, else PyTorch bin), in name order."""
    folder = Path(folder)
    found = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not found:
        raise FileNotFoundError(f"{folder}: no weight file to fingerprint")
    return fingerprint([(path.name, files.sha256_file(path)) for path in found])


def student_fingerprint(student: Path, *options: Any) -> str:
    """A row that fine-tunes ``student``: its weights."""
    return fingerprint("student", weights_sha256(student), *options)


def scratch_fingerprint(targets: Path, student: Path, *options: Any) -> str:
    """A row that trains ``student``'s architecture from the word pieces of ``targets`` (a shard
    directory, or a teacher folder)."""
    config = json.loads((Path(student) / CONFIG_FILE).read_text(encoding="utf-8"))
    shape = {k: v for k, v in config.items() if k not in ("teacher", "training")}
    pieces = Path(targets) / INPUT_EMBEDDINGS
    word_pieces = files.sha256_file(pieces) if pieces.is_file() else weights_sha256(targets)
    return fingerprint("scratch", word_pieces, shape, *options)


def read(ledger: Path) -> list[Result]:
    return load_results(ledger) if Path(ledger).is_file() else []


def restore(ledger: Path, out: Path, fingerprints: dict[str, str]) -> dict[str, int]:
    """Copy into ``out``'s results the ledger entries of each row that carry the row's current
    fingerprint and are not there yet; returns how many per row."""
    present = {r.key() for r in load_results(out)}
    chosen = [
        r
        for r in read(ledger)
        if r.key() not in present and r.extra.get(FINGERPRINT) == fingerprints.get(r.model)
    ]
    if chosen:
        write_results(out, chosen)
    counts: dict[str, int] = {}
    for r in chosen:
        counts[r.model] = counts.get(r.model, 0) + 1
    return counts


def sync(ledger: Path, out: Path, fingerprints: dict[str, str]) -> int:
    """Add to the ledger every entry of ``out``'s results that it lacks, for the rows that have a
    fingerprint, each under its row's; returns how many. Called after every finished batch of
    runs and by the report, so a sitting killed at its end loses at most the batch it was in."""
    known = {(r.key(), r.time) for r in read(ledger)}
    fresh = [
        r for r in load_results(out) if r.model in fingerprints and (r.key(), r.time) not in known
    ]
    if fresh:
        _record(Path(ledger), fresh, fingerprints)
    return len(fresh)


def _record(ledger: Path, entries: list[Result], fingerprints: dict[str, str]) -> None:
    tagged = [
        Result(**{**asdict(r), "extra": {**r.extra, FINGERPRINT: fingerprints[r.model]}})
        for r in entries
    ]
    with files.exclusive_lock(ledger.parent, f".{ledger.name}.lock"):  # two benches, one ledger
        merged = {r.key(): r for r in read(ledger)}
        merged.update({r.key(): r for r in tagged})  # a rerun of the same key replaces it
        ordered = sorted(merged.values(), key=lambda r: (r.model, r.task, r.metric, r.seed or 0))
        files.write_text(ledger, json.dumps([asdict(r) for r in ordered], indent=1) + "\n")
