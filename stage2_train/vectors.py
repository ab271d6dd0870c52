"""The return conventions of sentence-transformers' ``encode``, shared by every encoder here."""

from __future__ import annotations

import numpy as np
import torch


def as_requested(
    vectors: np.ndarray,
    single: bool,
    normalize_embeddings: bool = False,
    convert_to_numpy: bool = True,
    convert_to_tensor: bool = False,
    device: str | torch.device = "cpu",
) -> np.ndarray | torch.Tensor | list[torch.Tensor]:
    """``vectors`` (float32 ``[N, dim]``) as sentence-transformers would return them.

    One string in gives one ``[dim]`` vector; ``convert_to_tensor`` gives a tensor on
    ``device``; ``convert_to_numpy=False`` alone gives a list of per-row tensors.
    """
    if normalize_embeddings:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
    result = vectors[0] if single else vectors
    if convert_to_tensor or (single and not convert_to_numpy):
        return torch.from_numpy(result).to(device)
    if convert_to_numpy:
        return result
    return list(torch.from_numpy(vectors).to(device).unbind(0))
