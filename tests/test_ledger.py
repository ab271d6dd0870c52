"""The benchmark ledger: finished runs restored on a fresh machine only for the same inputs."""

from __future__ import annotations

import json

from bench import ledger
from stage3_eval.results import Result, load_results, write_results


def result(model: str, seed: int, value: float) -> Result:
    return Result(
        task="rte", metric="accuracy", value=value, model=model, data="dev.tsv", seed=seed
    )


def test_sync_tags_each_row_and_restore_brings_back_only_matching_rows(tmp_path) -> None:
    book, first = tmp_path / "ledger.json", tmp_path / "first"
    write_results(first, [result("student", 0, 0.6), result("scratch", 0, 0.5)])
    assert ledger.sync(book, first, {"student": "s1", "scratch": "c1"}) == 2
    assert ledger.sync(book, first, {"student": "s1", "scratch": "c1"}) == 0  # nothing new
    tags = {e["model"]: e["extra"]["fingerprint"] for e in json.loads(book.read_text())}
    assert tags == {"student": "s1", "scratch": "c1"}

    fresh = tmp_path / "fresh"  # a new machine: the student was retrained into other weights
    assert ledger.restore(book, fresh, {"student": "s2", "scratch": "c1"}) == {"scratch": 1}
    (restored,) = load_results(fresh)
    assert (restored.model, restored.value) == ("scratch", 0.5)
    assert ledger.restore(book, fresh, {"student": "s2", "scratch": "c1"}) == {}  # already there
    assert ledger.sync(book, fresh, {"student": "s2", "scratch": "c1"}) == 0  # not re-recorded


def test_a_rerun_replaces_the_entry_under_the_new_fingerprint(tmp_path) -> None:
    book = tmp_path / "ledger.json"
    write_results(tmp_path / "a", [result("student", 0, 0.6)])
    ledger.sync(book, tmp_path / "a", {"student": "old"})
    rerun = result("student", 0, 0.7)
    rerun.time = "later"
    write_results(tmp_path / "b", [rerun])
    ledger.sync(book, tmp_path / "b", {"student": "new"})
    (entry,) = json.loads(book.read_text())
    assert (entry["value"], entry["extra"]["fingerprint"]) == (0.7, "new")
    assert ledger.restore(book, tmp_path / "c", {"student": "old"}) == {}


def test_weights_fingerprint_follows_the_bytes(tmp_path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"one")
    before = ledger.weights_sha256(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"two")
    assert ledger.weights_sha256(tmp_path) != before
