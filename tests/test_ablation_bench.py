"""bench/ablation.py: the selection rule on hand-made rows, and the whole bench on tiny data."""

from __future__ import annotations

import json
import sys

import pytest

from bench.ablation import timing_order
from bench.ablation_select import DEFAULT, select, summarise
from data.manifest import read_manifest
from tests.stage2_helpers import make_tiny_shards
from tests.test_glue_data import single_thread, write_glue_dir  # noqa: F401
from tests.test_wordnet import LICENCE, LINES


def _row(sts: float, probe: list[list[float]], speed: float) -> dict:
    row = {"sts": sts, "probe": dict(zip(["sst2", "cola"], probe, strict=False))}
    row["sentences_per_second"] = speed
    return {**row, **summarise(row)}


def test_speed_rounds_rotate_so_that_no_variant_always_leads() -> None:
    rounds = timing_order(["default", "attention", "dedup"], 4)
    assert [r[0] for r in rounds] == ["default", "attention", "dedup", "default"]
    assert all(sorted(r) == ["attention", "dedup", "default"] for r in rounds)


def test_score_is_the_mean_of_sts_and_the_probe_mean_per_seed() -> None:
    row = _row(0.80, [[90.0, 88.0], [30.0, 34.0]], 1000)
    assert row["seed_scores"] == pytest.approx([(80 + 60) / 2, (80 + 61) / 2])
    assert row["score"] == pytest.approx(70.25)
    assert row["seed_std"] == pytest.approx(0.5 / 2**0.5)
    assert row["probe_mean"] == {"sst2": 89.0, "cola": 32.0}


def test_a_clear_winner_is_adopted() -> None:
    rows = {
        DEFAULT: _row(0.80, [[90, 88], [30, 34]], 1000),
        "b": _row(0.84, [[91, 90], [35, 36]], 950),
    }
    assert select(rows)["chosen"] == "b"


def test_a_lead_within_one_seed_std_is_a_tie_that_goes_to_the_default() -> None:
    rows = {
        DEFAULT: _row(0.80, [[90, 86], [30, 30]], 1000),
        "b": _row(0.80, [[91, 87], [31, 31]], 1000),
    }
    result = select(rows)
    assert result["best_eligible"] == "b" and result["lead_over_default"] == pytest.approx(0.5)
    assert result["chosen"] == DEFAULT


def test_a_variant_slower_than_90_percent_of_the_default_is_not_eligible() -> None:
    rows = {
        DEFAULT: _row(0.80, [[90, 88], [30, 34]], 1000),
        "b": _row(0.90, [[95, 95], [50, 50]], 899),
    }
    result = select(rows)
    assert result["eligible"] == [DEFAULT] and result["chosen"] == DEFAULT


@pytest.mark.usefixtures("single_thread")
def test_bench_end_to_end_on_tiny_data(tmp_path, tiny_teacher_dir, monkeypatch, capsys):
    from bench import ablation

    wordnet_dir = tmp_path / "wordnet"
    wordnet_dir.mkdir()
    for pos, lines in LINES.items():  # a few synsets in WordNet's own format
        (wordnet_dir / f"data.{pos}").write_text(LICENCE + "".join(lines), encoding="utf-8")
    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir, repeats=20)
    corpus = tmp_path / "shards-corpus.txt"
    glue = write_glue_dir(tmp_path / "glue", rows=16)
    out, results = tmp_path / "ablation", tmp_path / "results"
    argv = ["--targets", shards, "--out", out, "--results", results, "--corpus", corpus]
    argv += ["--wordnet-dir", wordnet_dir, "--sts-dev", glue / "STS-B" / "dev.tsv"]
    argv += ["--glue-dir", glue, "--tasks", "sst2,mrpc", "--seeds", "2", "--threads", "1"]
    argv += ["--max-train-examples", "16", "--glue-epochs", "1", "--max-steps", "2"]
    argv += ["--time-budget", "1", "--val-every", "1", "--speed-corpus", corpus]
    argv += ["--speed-lines", "40", "--speed-rounds", "1"]
    monkeypatch.setattr(sys, "argv", ["ablation", *map(str, argv)])
    ablation.main()

    report = json.loads((results / "ablation.json").read_text())
    names = [v.name for v in ablation.VARIANTS]
    assert list(report["variants"]) == names and report["rule"] == ablation.RULE
    assert report["selection"]["chosen"] in names and DEFAULT in report["selection"]["eligible"]
    for name, row in report["variants"].items():
        assert row["steps"] == 2 and row["sentences_seen"] > 0 and row["parameters"] > 0, name
        assert set(row["probe"]) == {"sst2", "mrpc"} and len(row["seed_scores"]) == 2, name
        assert row["sentences_per_second"] > 0 and -1 <= row["sts"] <= 1, name
    spec = report["variants"]["contrastive"]["loss_spec"]
    assert "0.1 × InfoNCE" in spec and "relational" in report["variants"]["relational"]["loss_spec"]
    assert json.loads((out / "hidden-384" / "config.json").read_text())["hidden_size"] == 384
    dedup, base = read_manifest(out / "shards-dedup"), read_manifest(shards)
    rows = lambda m: sum(r["rows"] for r in m["shards"].values())  # noqa: E731
    assert dedup["dedup"] and rows(dedup) == rows(base) - 20
    wordnet_texts = len((out / "wordnet.txt").read_text().splitlines())
    assert rows(read_manifest(out / "shards-wordnet")) == rows(base) + wordnet_texts
    table = (results / "ablation.md").read_text()
    assert all(f"| {n} |" in table or f"| **{n}** |" in table for n in names)

    before = {n: (out / n / "model.safetensors").stat().st_mtime_ns for n in names}
    capsys.readouterr()
    ablation.main()  # resumable: nothing is trained again
    assert capsys.readouterr().out.count("(skipped)") >= len(names)
    assert before == {n: (out / n / "model.safetensors").stat().st_mtime_ns for n in names}


def test_with_another_baseline_a_tie_goes_to_it_and_its_speed_is_the_floor() -> None:
    rows = {
        DEFAULT: _row(0.80, [[91, 87], [31, 31]], 1000),
        "attention": _row(0.80, [[90, 86], [30, 30]], 1000),
    }
    assert select(rows, "attention")["chosen"] == "attention"
    rows[DEFAULT] = _row(0.90, [[95, 95], [50, 50]], 899)
    assert select(rows, "attention")["eligible"] == ["attention"]
