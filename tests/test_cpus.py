"""data/cpus.py: the CPUs a process may use, and batches on one-thread workers."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from data import cpus
from data.cpus import AdaptiveThreads


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_cgroup_v2_quota_is_read_as_cpus(tmp_path):
    assert cpus.cgroup_cpu_limit(write(tmp_path / "cpu.max", "250000 100000\n")) == 2.5
    assert cpus.cgroup_cpu_limit(write(tmp_path / "cpu.max", "max 100000\n")) is None


def test_cgroup_v1_quota_is_read_when_there_is_no_v2_file(tmp_path):
    quota, period = write(tmp_path / "q", "150000\n"), write(tmp_path / "p", "100000\n")
    assert cpus.cgroup_cpu_limit(tmp_path / "absent", (quota, period)) == 1.5
    write(quota, "-1\n")
    assert cpus.cgroup_cpu_limit(tmp_path / "absent", (quota, period)) is None


def test_garbage_or_missing_cgroup_files_mean_no_limit(tmp_path):
    garbage = write(tmp_path / "cpu.max", "not numbers\n")
    assert cpus.cgroup_cpu_limit(garbage, (tmp_path / "x", tmp_path / "y")) is None
    assert cpus.cgroup_cpu_limit(tmp_path / "a", (tmp_path / "b", tmp_path / "c")) is None


def test_usable_cpus_is_capped_by_affinity_and_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: None)
    assert cpus.usable_cpus() == 4
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 1.2)
    assert cpus.usable_cpus() == 2
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 0.1)
    assert cpus.usable_cpus() == 1


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_map_batches_runs_every_batch_once_and_yields_them_in_order(workers):
    out = np.zeros(20)
    batches = [list(range(i, min(i + 3, 20))) for i in range(0, 20, 3)]
    names = set()

    def run(batch):
        names.add(threading.current_thread().name)
        out[batch] += 1

    assert list(cpus.map_batches(run, batches, workers)) == batches
    assert (out == 1).all()
    assert all(n.startswith("encode") for n in names) == (workers > 1)


def test_workers_run_torch_on_one_thread_and_the_count_is_restored():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        list(cpus.map_batches(lambda b: seen.append(torch.get_num_threads()), [1, 2], workers=2))
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_worker_error_is_raised_to_the_caller():
    def run(batch):
        if batch == 2:
            raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        list(cpus.map_batches(run, [1, 2, 3], workers=2))


def test_encode_workers_follow_torch_threads_capped_by_usable_cpus(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(cpus, "usable_cpus", lambda: 2)
    try:
        torch.set_num_threads(1)
        assert cpus.encode_workers("cpu") == 1  # --threads 1: one batch at a time
        torch.set_num_threads(4)
        assert cpus.encode_workers("cpu") == 2
        assert cpus.encode_workers("cuda") == 1
    finally:
        torch.set_num_threads(before)


def run_steps(policy: AdaptiveThreads, steps: int, rate: dict[int, float]) -> list[int]:
    """Steps of 1,000 units at ``rate[threads]`` units/s; the thread count of each step."""
    used = []
    for _ in range(steps):
        threads = policy.next_threads()
        used.append(threads)
        policy.record(1000, 1000 / rate[threads])
    return used


@pytest.fixture
def restore_torch_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("restore_torch_threads")
def test_adaptive_threads_keeps_the_faster_count_and_follows_the_load() -> None:
    import torch

    policy = AdaptiveThreads([1, 2], probe_steps=5, hold_steps=50)
    quiet = {1: 100.0, 2: 180.0}  # two threads faster alone
    used = run_steps(policy, 10, quiet)
    assert sorted(used) == [1] * 5 + [2] * 5  # the probe tries both, interleaved
    assert used[:4] == [1, 2, 1, 2]
    assert run_steps(policy, 30, quiet) == [2] * 30
    assert torch.get_num_threads() == 2
    busy = {1: 95.0, 2: 30.0}  # a neighbour takes a core: the barrier stalls two threads
    used = run_steps(policy, 30, busy)
    assert used[:3] == [2] * 3  # noticed once most of the last probe_steps are slow
    assert used[3:5] == [1, 2]  # and probed at once, not after hold_steps
    assert used[-10:] == [1] * 10
    assert torch.get_num_threads() == 1


@pytest.mark.usefixtures("restore_torch_threads")
def test_adaptive_threads_probes_again_after_hold_steps() -> None:
    policy = AdaptiveThreads([1, 2], probe_steps=3, hold_steps=20)
    rates = {1: 100.0, 2: 90.0}
    assert run_steps(policy, 6 + 20, rates)[6:] == [1] * 20
    assert sorted(run_steps(policy, 6, {1: 10.0, 2: 90.0})) == [1, 1, 1, 2, 2, 2]  # re-probed
    assert run_steps(policy, 5, {1: 10.0, 2: 90.0}) == [2] * 5


def test_adaptive_threads_has_nothing_to_choose_on_one_cpu(monkeypatch) -> None:
    monkeypatch.setattr(cpus, "usable_cpus", lambda: 1)
    assert AdaptiveThreads.for_cpu() is None
