"""The GLUE benchmark's student-vs-scratch comparison: differences and Welch p-values."""

import pytest

from bench.glue import student_vs_scratch, targets


def test_clear_win_has_small_p_and_a_tie_a_large_one():
    scores = {
        "student": {"stsb": [85.8, 85.7, 85.4], "cola": [8.7, 11.1, 11.3]},
        "scratch": {"stsb": [77.0, 75.7, 76.5], "cola": [10.5, 8.0, 10.8]},
    }
    result = student_vs_scratch(scores, ["stsb", "cola", "rte"])
    assert result["stsb"]["difference"] == pytest.approx(9.2333, abs=1e-3)
    assert result["stsb"]["welch_p"] < 0.001
    assert result["cola"]["welch_p"] > 0.5
    assert result["cola"]["student_seeds"] == 3
    assert "rte" not in result  # no runs: no entry


def test_single_seed_gives_no_p_value_and_targets_skip_missing_models():
    scores = {"student": {"sst2": [81.0]}, "scratch": {"sst2": [80.0]}}
    assert "welch_p" not in student_vs_scratch(scores, ["sst2"])["sst2"]
    checks = targets(scores, ["sst2"])
    assert checks["student > scratch on sst2"] is True
    assert checks["KD adds on SST-2"] is None
