"""Length-bucketed batching shared by every stage that runs a model over token ids.

Sorting by length and capping the padded size of a batch (rows × longest row) keeps padding
near zero and the matrix products large, which is what makes CPU encoding fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

# Tokens per text by default, for every model the pipeline runs (teacher, student, GLUE
# encoders); longer texts are truncated. A student takes the one its shards' manifest records.
MAX_LENGTH = 128
# Padded tokens per batch (rows x longest row): a transformer (the teacher, GLUE prediction) and
# the far cheaper BiLSTM student, in training and in ``encode``.
TEACHER_MAX_TOKENS = 8192
STUDENT_MAX_TOKENS = 16384


def token_budget_batches(
    lengths: Sequence[int], max_tokens: int, max_rows: int = 512
) -> list[np.ndarray]:
    """Group row indices, longest first, so each batch pads to at most ``max_tokens`` tokens.

    Deterministic for given lengths (stable sort), so a shard re-encoded after a crash is cut
    into exactly the same batches and gives bit-identical vectors.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        rows = max(1, min(max_rows, max_tokens // longest))
        batches.append(order[start : start + rows])
        start += rows
    return batches


def sized_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Row indices in batches of ``batch_size`` (the last one smaller), shortest rows first."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def length_grouped(
    items: np.ndarray,
    lengths: np.ndarray,
    chunk_rows: int,
    group: Callable[[np.ndarray], list[np.ndarray]],
) -> Iterator[list[np.ndarray]]:
    """Length-bucketed shuffling: the batches of each ``chunk_rows`` run of shuffled ``items``.

    ``items`` come already shuffled, ``lengths[i]`` the length of ``items[i]``; ``group`` cuts a
    chunk's lengths into batches of similar length (``token_budget_batches``, ``sized_batches``).
    Batches stay random at the scale of a chunk but pad to rows of near equal length, which is
    what makes training several times faster than uniformly random batches. The caller shuffles
    the batches (per chunk or all together).
    """
    for begin in range(0, len(items), chunk_rows):
        chunk = items[begin : begin + chunk_rows]
        yield [chunk[rows] for rows in group(lengths[begin : begin + chunk_rows])]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id sequences into ``(input_ids, attention_mask)`` long tensors."""
    width = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), max(width, 1)), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(np.asarray(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask
