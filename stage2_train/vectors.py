"""sentence-transformers' ``encode`` conventions, shared by every encoder here (the torch
student and its ONNX Runtime export): one implementation of batching and of the return types."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from data.batching import pad_batch, token_budget_batches
from data.progress import progress_bar
from stage2_train.config import INFERENCE, inference_batch_size


class SentenceEncoding:
    """``encode`` and ``embed_ids`` for any encoder with ``tokenize``, ``run_batch``, ``dim``,
    ``pad_id``, ``to`` and ``device``."""

    def embed_ids(
        self,
        ids: Sequence[Sequence[int]],
        batch_size: int | None = None,
        max_tokens: int = INFERENCE["max_tokens"],
        progress: bool = False,
    ) -> np.ndarray:
        """Vectors for tokenized texts in input order: ``run_batch(input_ids, mask)`` on
        length-sorted, padded batches of at most ``batch_size`` rows (default: the device's,
        config.INFERENCE) and ``max_tokens`` tokens."""
        batch_size = batch_size or inference_batch_size(self.device.type)  # type: ignore[attr-defined]
        out = np.zeros((len(ids), self.dim), dtype=np.float32)  # type: ignore[attr-defined]
        batches = token_budget_batches([len(s) for s in ids], max_tokens, batch_size)
        with self.inference():
            for batch in progress_bar(batches, desc="encode", unit="batch", enabled=progress):
                input_ids, mask = pad_batch([ids[i] for i in batch], self.pad_id)  # type: ignore[attr-defined]
                out[batch] = self.run_batch(input_ids, mask)  # type: ignore[attr-defined]
        return out

    def inference(self) -> contextlib.AbstractContextManager:
        """The state ``run_batch`` needs (none here; the torch student switches to eval)."""
        return contextlib.nullcontext()

    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
        normalize_embeddings: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | torch.device | None = None,
        max_tokens: int = INFERENCE["max_tokens"],
        **unused: Any,
    ) -> np.ndarray | torch.Tensor | list[torch.Tensor]:
        """Sentence vectors for raw texts, called as sentence-transformers' ``encode`` is.

        A list gives float32 ``[N, dim]`` in input order (``[0, dim]`` for an empty list), one
        string gives one ``[dim]`` vector. The keyword names are sentence-transformers' own, so
        code written for it runs unchanged; keywords that mean nothing here (``prompt_name``,
        ``precision``, ...) are ignored, as model2vec does.
        """
        single = isinstance(sentences, str)
        if device is not None:
            self.to(device)  # type: ignore[attr-defined]
        vectors = self.embed_ids(  # type: ignore[attr-defined]
            self.tokenize([sentences] if single else sentences),  # type: ignore[attr-defined]
            batch_size=batch_size,
            max_tokens=max_tokens,
            progress=bool(show_progress_bar),
        )
        return as_requested(
            vectors,
            single,
            normalize_embeddings,
            convert_to_numpy,
            convert_to_tensor,
            self.device,  # type: ignore[attr-defined]
        )


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
