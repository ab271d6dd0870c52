"""Length-bucketed batching shared by every stage that runs a model over token ids.

Sorting by length and capping the padded size of a batch (rows × longest row) keeps padding
near zero and the matrix products large, which is what makes CPU encoding fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


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


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id sequences into ``(input_ids, attention_mask)`` long tensors."""
    width = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), max(width, 1)), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(np.asarray(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask
