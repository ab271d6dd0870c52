"""bench/student_batch.py on a tiny student: every batch size timed, the vectors unchanged."""

from __future__ import annotations

import numpy as np

from bench.student_batch import sweep
from tests.test_glue_cli import tiny_student_dir  # noqa: F401  (fixture)


def test_sweep_times_every_size_and_batching_leaves_the_vectors_alone(
    tiny_student_dir,  # noqa: F811
) -> None:
    from stage2_train import Student

    student = Student.from_pretrained(tiny_student_dir).eval()
    lines = [" ".join(["word"] * (1 + i % 9)) + f" line {i}" for i in range(40)]
    rates = sweep(student, lines, [2, 16], repeats=1)
    assert set(rates) == {2, 16} and all(rate > 0 for rate in rates.values())
    small, large = student.encode(lines, batch_size=2), student.encode(lines, batch_size=16)
    np.testing.assert_allclose(small, large, atol=1e-5)
