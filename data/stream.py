"""Training batches streamed from a shard directory, in a deterministic, resumable order.

Stage 2 never holds the whole corpus: one pass over the shards (``scan_shards``) checks them and
keeps only each row's token count plus the small held-out validation set. An epoch's batches are
then *planned* from those counts alone (``plan_epoch``): the shards are shuffled, taken a window
of a few shards at a time (the bounded shuffle buffer), their rows shuffled together, cut into
chunks, and each chunk grouped by similar length. The plan is a pure function of (seed, epoch,
rank, world size), so resuming at batch k of an epoch means skipping k plan entries with no I/O,
and every DDP rank can compute every other rank's batch count without talking to it.
``BatchLoader`` then reads the shards of the current window and pads the planned batches in a
background thread, so the training step rarely waits for data.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import torch

from data.batching import STUDENT_MAX_TOKENS, length_grouped, pad_batch, token_budget_batches
from data.errors import PipelineError
from data.shards import ShardData, ShardStore, check_finite, is_validation, read_shard


@dataclass
class ShardIndex:
    """What the planner needs to know about one shard: its token counts and training rows."""

    path: Path
    lengths: np.ndarray  # tokens per row, all rows
    train_rows: np.ndarray  # rows not held out for validation


@dataclass
class ValidationSet:
    """Held-out rows (chosen by ``is_validation`` on the corpus line), never trained on."""

    input_ids: list[np.ndarray]
    targets: np.ndarray  # float32 [n, dim]
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.lines)


@dataclass
class TrainBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def _check_shard_attrs(path: Path, handle: h5py.File, store: ShardStore) -> None:
    """A shard whose own provenance or width disagrees with the manifest is refused."""
    teacher = handle.attrs.get("teacher")
    if teacher is not None:
        recorded = json.loads(teacher).get("weights_sha256")
        expected = store.manifest["teacher"].get("weights_sha256")
        if recorded != expected:
            raise PipelineError(
                f"{path}: written by teacher {str(recorded)[:12]}…, the manifest says "
                f"{str(expected)[:12]}…; the shard directory mixes two teachers"
            )
    width = handle["embedding"].shape[1] if handle["embedding"].ndim == 2 else -1
    if width != store.dim:
        raise PipelineError(
            f"{path}: vectors of width {width}, the manifest says {store.dim}; re-run encode"
        )


def scan_shards(
    store: ShardStore, val_fraction: float, max_val_rows: int
) -> tuple[list[ShardIndex], ValidationSet]:
    """Check every shard (provenance, width, finite targets) and index it for planning."""
    index: list[ShardIndex] = []
    val_ids: list[np.ndarray] = []
    val_targets: list[np.ndarray] = []
    val_lines: list[np.ndarray] = []
    for path in store.paths:
        try:
            with h5py.File(path, "r") as handle:
                _check_shard_attrs(path, handle, store)
                embedding = handle["embedding"][()]
                ids = handle["input_ids"][()]
                lines = handle["line"][()]
        except (OSError, KeyError, ValueError) as exc:
            raise PipelineError(f"{path}: unreadable shard ({exc}); re-run encode") from None
        check_finite(path, embedding, lines)
        held_out = is_validation(lines, val_fraction)
        lengths = np.fromiter((len(s) for s in ids), dtype=np.int64, count=len(ids))
        index.append(ShardIndex(path, lengths, np.flatnonzero(~held_out)))
        rows = np.flatnonzero(held_out)
        val_ids.extend(ids[rows])
        val_targets.append(embedding[rows].astype(np.float32))
        val_lines.append(lines[rows])
    targets = np.concatenate(val_targets) if val_targets else np.zeros((0, store.dim), np.float32)
    keep = slice(0, max_val_rows)
    validation = ValidationSet(val_ids[keep], targets[keep], np.concatenate(val_lines)[keep])
    if sum(len(s.train_rows) for s in index) == 0:
        raise PipelineError(f"{store.directory}: no training rows left after the validation split")
    return index, validation


def plan_epoch(
    index: list[ShardIndex],
    *,
    seed: int,
    epoch: int,
    rank: int = 0,
    world: int = 1,
    batch_size: int = 128,
    max_tokens: int = STUDENT_MAX_TOKENS,
    window_shards: int = 2,
    chunk_rows: int = 4096,
) -> list[np.ndarray]:
    """The batches of one epoch for one rank, each an array of (shard, row) pairs.

    Each rank takes a disjoint set of shards (every ``world``-th of a shuffled order).
    """
    rng = np.random.default_rng([seed, epoch])
    mine = rng.permutation(len(index))[rank::world]
    rng = np.random.default_rng([seed, epoch, rank])
    batches: list[np.ndarray] = []
    for start in range(0, len(mine), window_shards):
        window = mine[start : start + window_shards]
        pairs = np.concatenate(
            [
                np.stack([np.full(len(index[s].train_rows), s), index[s].train_rows], 1)
                for s in window
            ]
        )
        lengths = np.concatenate([index[s].lengths[index[s].train_rows] for s in window])
        shuffle = rng.permutation(len(pairs))
        group = partial(token_budget_batches, max_tokens=max_tokens, max_rows=batch_size)
        for groups in length_grouped(pairs[shuffle], lengths[shuffle], chunk_rows, group):
            batches.extend(groups[i] for i in rng.permutation(len(groups)))
    return batches


def steps_per_epoch(index: list[ShardIndex], world: int, **plan_kwargs) -> int:
    """Batches every rank can take in an epoch: the smallest rank's count, so DDP stays in step."""
    if world > len(index):
        raise PipelineError(f"{world} training processes but only {len(index)} shard(s)")
    return min(len(plan_epoch(index, rank=r, world=world, **plan_kwargs)) for r in range(world))


class BatchLoader:
    """Reads the planned batches' shards (a few at a time) and pads them in a background thread."""

    def __init__(
        self,
        index: list[ShardIndex],
        plan: list[np.ndarray],
        pad_id: int,
        cache_shards: int = 2,
        prefetch: int = 8,
    ):
        self.index = index
        self.plan = plan
        self.pad_id = pad_id
        self.cache_shards = max(1, cache_shards)
        self.prefetch = prefetch
        self._cache: OrderedDict[int, ShardData] = OrderedDict()

    def _shard(self, shard: int) -> ShardData:
        if shard not in self._cache:
            self._cache[shard] = read_shard(self.index[shard].path)
            while len(self._cache) > self.cache_shards:
                self._cache.popitem(last=False)
        self._cache.move_to_end(shard)
        return self._cache[shard]

    def _build(self, pairs: np.ndarray) -> TrainBatch:
        ids, targets = [], []
        for shard, row in pairs:
            data = self._shard(int(shard))
            ids.append(data.input_ids[row])
            targets.append(data.embedding[row])
        input_ids, mask = pad_batch(ids, self.pad_id)
        return TrainBatch(input_ids, mask, torch.from_numpy(np.stack(targets).astype(np.float32)))

    def __iter__(self) -> Iterator[TrainBatch]:
        box: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        failure: list[BaseException] = []

        def produce() -> None:
            try:
                for pairs in self.plan:
                    if stop.is_set():
                        return
                    box.put(self._build(pairs))
            except BaseException as exc:  # handed to the consumer and re-raised there
                failure.append(exc)
            finally:
                box.put(None)

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        try:
            while (batch := box.get()) is not None:
                yield batch
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    box.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)
        if failure:
            raise failure[0]
