"""bench/scaling.py end to end on tiny shards: points on shard prefixes, resumable, one JSON."""

from __future__ import annotations

import json
import sys

from bench import scaling
from tests.stage2_helpers import make_tiny_shards


def test_the_curve_trains_each_prefix_once_and_reports_it(tmp_path, monkeypatch, tiny_teacher_dir):
    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir, lines=400, shard_size=100)
    sts = tmp_path / "sts.tsv"
    rows = ["the cat runs\ta cat runs\t4.0", "the dog\ta red bird\t0.5", "sun\tthe moon\t2.0"]
    sts.write_text("sentence1\tsentence2\tscore\n" + "\n".join(rows) + "\n", encoding="utf-8")
    points = (scaling.Point("small", 2, 3), scaling.Point("all", None, 3))
    monkeypatch.setattr(scaling, "POINTS", points)
    monkeypatch.setattr(scaling, "COMMON_SHARDS", 2)
    monkeypatch.setattr(scaling, "RESULTS", tmp_path / "results")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "students"
    argv = ["scaling", "--targets", str(shards), "--out", str(out), "--sts-dev", str(sts),
            "--skip-probes", "--plot", str(tmp_path / "curve.png")]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    scaling.main()
    result = json.loads((tmp_path / "results" / "scaling.json").read_text())
    assert set(result["points"]) == {"small", "all"}
    small, whole = result["points"]["small"], result["points"]["all"]
    assert (small["shards_used"], whole["shards_used"]) == (2, 4)
    assert small["texts"] < whole["texts"] and small["steps"] == whole["steps"] == 3
    assert small["train_peak_rss_mib"] > 0
    assert small["sts_share_of_teacher"] == small["sts"] / result["teacher_sts_b_dev_spearman"]
    assert (tmp_path / "curve.png").stat().st_size > 0
    weights = (out / "small" / "model.safetensors").read_bytes()
    scaling.main()  # finished points are skipped, not retrained
    assert (out / "small" / "model.safetensors").read_bytes() == weights
    assert len(json.loads((out / "small.memory.json").read_text())) == 1
