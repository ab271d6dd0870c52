"""bench/teachers.py: the comparison rows on tiny models (every field the table in docs needs),
and the two teachers' GLUE rows side by side."""

from __future__ import annotations

import numpy as np
import pytest

from data.sts import StsPairs
from tests.stage2_helpers import make_tiny_shards, train_cli


def test_teacher_and_student_rows(tmp_path, tiny_teacher_dir) -> None:
    pytest.importorskip("sentence_transformers")
    from bench.teachers import student_row, teacher_row

    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir)
    student_dir = tmp_path / "student"
    assert train_cli(shards, student_dir, "--max-steps", "3").exit_code == 0
    lines = (tmp_path / "shards-corpus.txt").read_text().splitlines()[:80]
    scores = np.array([float(i % 5) for i in range(20)])
    pairs = StsPairs(tmp_path / "sts.tsv", lines[:20], lines[20:40], scores)
    teacher = teacher_row("tiny", tiny_teacher_dir, lines, pairs)
    assert teacher["sentences_per_second"] > 0 and teacher["parameters"] > 0
    row = student_row("tiny", student_dir, shards, lines, pairs, teacher)
    assert row["speedup_vs_sentence_transformers_teacher"] == pytest.approx(
        row["sentences_per_second"] / teacher["sentences_per_second"]
    )
    assert row["knn_probe"]["rows"] > 0 and 0 <= row["knn_probe"]["recall@10"] <= 1
    assert row["sentences_seen"] > 0 and -1 <= row["sts_b_dev_spearman"] <= 1


def _glue_result(per_seed: dict[str, dict[str, list[float]]]) -> dict:
    """The fields of a bench/glue.py result file that the comparison reads."""
    means = {row: {t: float(np.mean(v)) for t, v in by.items()} for row, by in per_seed.items()}
    return {"scores_x100_per_seed": per_seed, "scores_x100": means, "mean_x100": {}, "seeds": {}}


def test_teacher_comparison_per_task_and_the_target() -> None:
    from scipy.stats import ttest_ind

    from bench.teachers import teacher_comparison

    minilm = {"student": {"cola": [10.0, 11.0, 9.0], "sst2": [87.0, 87.5]}, "scratch": {}}
    mpnet = {"student": {"cola": [14.0, 15.0, 16.0]}}
    results = {"MiniLM": _glue_result(minilm), "MPNet": _glue_result(mpnet)}
    compared = teacher_comparison(results)
    cola = compared["mpnet_minus_minilm"]["student"]["cola"]
    assert cola["difference"] == pytest.approx(5.0)
    p = ttest_ind([14.0, 15.0, 16.0], [10.0, 11.0, 9.0], equal_var=False).pvalue
    assert cola["welch_p"] == pytest.approx(p) and cola["MPNet_seeds"] == 3
    assert compared["mpnet_minus_minilm"]["scratch"] == {}
    assert compared["target_met"] is None  # no MPNet SST-2 yet
    mpnet["student"]["sst2"] = [86.0, 86.5]
    assert teacher_comparison(results)["target_met"] is False  # ahead on CoLA only
    mpnet["student"]["sst2"] = [88.0, 88.5]
    assert teacher_comparison(results)["target_met"] is True


def test_onnx_row_serves_the_same_student(tmp_path, tiny_teacher_dir) -> None:
    pytest.importorskip("onnxruntime")
    from bench.teachers import onnx_row, student_row
    from stage2_train.onnx_export import export_onnx

    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir)
    student_dir = tmp_path / "student"
    assert train_cli(shards, student_dir, "--max-steps", "3").exit_code == 0
    export_onnx(student_dir, tmp_path / "export")
    lines = (tmp_path / "shards-corpus.txt").read_text().splitlines()[:80]
    pairs = StsPairs(tmp_path / "sts.tsv", lines[:20], lines[20:40], np.arange(20.0) % 5)
    teacher = {"sentences_per_second": 10.0, "sts_b_dev_spearman": 0.5}
    torch_row = student_row("tiny", student_dir, shards, lines, pairs, teacher)
    row = onnx_row("tiny", tmp_path / "export", lines, pairs, teacher)
    assert row["sts_b_dev_spearman"] == pytest.approx(torch_row["sts_b_dev_spearman"], abs=1e-3)
    assert row["speedup_vs_sentence_transformers_teacher"] == pytest.approx(
        row["sentences_per_second"] / 10.0
    )
    assert torch_row["shards"] == "4 of 4"
