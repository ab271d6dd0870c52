"""sentence-transformers' ``encode`` conventions, shared by every encoder here (the torch
student and its ONNX Runtime export): one implementation of batching and of the return types."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from data.batching import pad_batch, token_budget_batches
from data.cpus import encode_workers, map_batches
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
        config.INFERENCE) and ``max_tokens`` tokens, on ``inference_workers()`` side by side."""
        batch_size = batch_size or inference_batch_size(self.device.type)  # type: ignore[attr-defined]
        out = np.zeros((len(ids), self.dim), dtype=np.float32)  # type: ignore[attr-defined]
        batches = token_budget_batches([len(s) for s in ids], max_tokens, batch_size)

        def run(batch: np.ndarray) -> None:
            input_ids, mask = pad_batch([ids[i] for i in batch], self.pad_id)  # type: ignore[attr-defined]
            with torch.inference_mode():  # per thread: a worker does not inherit the caller's
                out[batch] = self.run_batch(input_ids, mask)  # type: ignore[attr-defined]

        with self.inference():
            done = map_batches(run, batches, self.inference_workers())
            for _ in progress_bar(done, total=len(batches), desc="encode", unit="batch",
                                  enabled=progress):  # fmt: skip
                pass
        return out

    def inference_workers(self) -> int:
        """Batches encoded side by side (``data.cpus.encode_workers``): one-thread workers on
        independent batches instead of intra-op threads, since the recurrent loop's threads meet
        at every time step and one busy neighbour on a shared machine stalled them all
        (bench/contention.py); independent workers slow by their own share."""
        return encode_workers(self.device.type)  # type: ignore[attr-defined]

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

        A list, tuple or NumPy array of strings gives float32 ``[N, dim]`` in input order
        (``[0, dim]`` for an empty one), one string gives one ``[dim]`` vector; anything else
        (``None``, bytes, numbers) is a ``TypeError``. The keyword names are
        sentence-transformers' own, so code written for it runs unchanged; keywords that mean
        nothing here (``prompt_name``, ``precision``, ...) are ignored, as model2vec does.
        """
        texts, single = as_texts(sentences)
        if device is not None:
            self.to(device)  # type: ignore[attr-defined]
        vectors = self.embed_ids(  # type: ignore[attr-defined]
            self.tokenize(texts),  # type: ignore[attr-defined]
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


def as_texts(sentences: Any) -> tuple[list[str], bool]:
    """``(texts, single)`` from what ``encode`` was given, refusing what is not text.

    ``None`` once passed as an empty list and came back as zero vectors; an array of strings,
    which sentence-transformers accepts, failed on numpy's truth-value ambiguity.
    """
    if isinstance(sentences, np.ndarray):
        sentences = sentences.tolist()  # a 0-d array of str becomes one str
    if isinstance(sentences, str):
        return [sentences], True
    if not isinstance(sentences, (list, tuple)):
        raise TypeError(f"encode takes a str or a list of str, not {type(sentences).__name__}")
    for number, text in enumerate(sentences):
        if not isinstance(text, str):
            raise TypeError(
                f"encode takes a str or a list of str; item {number} is {type(text).__name__}"
            )
    return list(sentences), False


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
