"""bench/teachers.py's comparison rows on tiny models: every field the table in docs needs."""

from __future__ import annotations

import numpy as np
import pytest

from data.sts import StsPairs
from tests.stage2_helpers import make_tiny_shards, train_cli

pytest.importorskip("sentence_transformers")


def test_teacher_and_student_rows(tmp_path, tiny_teacher_dir) -> None:
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
