"""How many CPUs this process may really use, and running batches on them side by side.

``os.cpu_count()`` counts the machine, not what a SLURM task, a container or ``taskset`` grants:
the affinity mask and a cgroup CPU quota both cap it. And threads that meet at a barrier at
every step (OpenMP inside one recurrent or attention op) stall together when another process
takes one core: on a shared 2-core machine one busy neighbour cut the student's two-thread
``encode`` to a third. Independent batches on one-thread workers degrade gracefully instead
(each worker slows by its own share), so the CPU encoders run that way.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

Batch = TypeVar("Batch")

# cgroup v2 (one file "QUOTA PERIOD") and v1 (two files) CPU bandwidth limits.
CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = (
    Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
    Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
)


def cgroup_cpu_limit(v2: Path = CGROUP_V2, v1: tuple[Path, Path] = CGROUP_V1) -> float | None:
    """CPUs' worth of time the cgroup quota allows (``2.5`` for 250 ms per 100 ms), or None."""
    try:
        quota, period = v2.read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota, period = (path.read_text().strip() for path in v1)
        except (OSError, ValueError):
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return max(int(quota), 1) / max(int(period), 1)
    except ValueError:
        return None


def usable_cpus() -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup quota (rounded up)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = min(count, math.ceil(limit))
    return max(count, 1)


def encode_workers(device_type: str) -> int:
    """Batches an encoder runs side by side: on the CPU torch's thread count
    (``torch.set_num_threads``, ``--threads``) capped by the usable CPUs; one on a GPU."""
    if device_type != "cpu":
        return 1
    import torch

    return max(1, min(torch.get_num_threads(), usable_cpus()))


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` for the block, then restored."""
    import torch

    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def map_batches(
    run: Callable[[Batch], None], batches: Sequence[Batch], workers: int
) -> Iterator[Batch]:
    """``run`` on every batch, on ``workers`` one-thread workers side by side (or in order here
    for one); yields each batch once it is done, in the order given, for a progress bar.

    ``run`` writes its own results (each batch to its own rows), so the order the batches finish
    in does not matter. torch releases the GIL inside its ops, so the workers compute in
    parallel; each runs torch with one intra-op thread. A worker's error is raised here.
    """
    if workers <= 1:
        for batch in batches:
            run(batch)
            yield batch
        return
    with intra_op_threads(1), ThreadPoolExecutor(workers, thread_name_prefix="encode") as pool:
        futures = [pool.submit(run, batch) for batch in batches]
        try:
            for batch, future in zip(batches, futures, strict=True):
                future.result()
                yield batch
        finally:
            for future in futures:
                future.cancel()


class AdaptiveThreads:
    """torch's intra-op thread count for a training loop, re-chosen as the machine's load moves.

    A training step is one model's forward and backward, so it cannot be split over one-thread
    workers as encoding is; but on a shared machine one thread is often faster than all of
    them (the threads meet at a barrier at every recurrent step). So the loop measures both:
    every ``hold_steps`` steps it times ``probe_steps`` steps at each candidate count,
    interleaved so that both meet the same load and batch lengths, in work units per second
    (tokens: batches differ in length), and keeps the faster until the next probe. A rate that
    falls below ``drop`` of the one chosen probes at once. The probing costs at most
    ``probe_steps`` slower steps per ``hold_steps``.
    """

    def __init__(
        self,
        candidates: Sequence[int],
        probe_steps: int = 20,
        hold_steps: int = 500,
        drop: float = 0.6,
    ):
        self.candidates = sorted(set(candidates))
        self.probe_steps, self.hold_steps, self.drop = probe_steps, hold_steps, drop
        self.threads = self.candidates[-1]
        self._start_probe()

    @classmethod
    def for_cpu(cls) -> AdaptiveThreads | None:
        """One thread or torch's count (``OMP_NUM_THREADS``; torchrun sets 1 per rank) capped
        by the usable CPUs; None where there is nothing to choose."""
        import torch

        most = min(torch.get_num_threads(), usable_cpus())
        return cls([1, most]) if most > 1 else None

    def _start_probe(self) -> None:
        self._queue = [n for _ in range(self.probe_steps) for n in self.candidates]  # interleaved
        self._rates: dict[int, list[float]] = {n: [] for n in self.candidates}
        self._held = 0
        self._chosen_rate: float | None = None
        self._recent: list[float] = []

    def next_threads(self) -> int:
        """The thread count for the next step (set on torch here)."""
        import torch

        self.threads = self._queue[0] if self._queue else self.threads
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        return self.threads

    def record(self, units: float, seconds: float) -> None:
        """The step just run at ``self.threads``: ``units`` of work in ``seconds``."""
        rate = units / max(seconds, 1e-9)
        if self._queue:
            self._queue.pop(0)
            self._rates[self.threads].append(rate)
            if not self._queue:
                self._choose()
            return
        self._held += 1
        self._recent = [*self._recent[-(self.probe_steps - 1) :], rate]
        slowed = (
            len(self._recent) == self.probe_steps
            and self._chosen_rate is not None
            and _median(self._recent) < self.drop * self._chosen_rate
        )
        if self._held >= self.hold_steps or slowed:
            self._start_probe()

    def _choose(self) -> None:
        # the first steps of each count warm its thread pool: the median skips them
        medians = {n: _median(rates) for n, rates in self._rates.items() if rates}
        self.threads = max(medians, key=lambda n: medians[n])
        self._chosen_rate = medians[self.threads]


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
