"""Two processes filing results into one folder keep both (SLURM arrays, parallel benchmarks)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from stage3_eval.results import Result, load_results, write_results

WRITES = 40


def _file_results(out: str, model: str) -> None:
    for seed in range(WRITES):
        write_results(Path(out), [Result("sst2", "accuracy", 0.5, model, "dev", seed=seed)])


def test_concurrent_writers_lose_nothing(tmp_path) -> None:
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_file_results, args=(str(tmp_path), m)) for m in "ab"]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    stored = {(r.model, r.seed) for r in load_results(tmp_path)}
    assert stored == {(m, s) for m in "ab" for s in range(WRITES)}
