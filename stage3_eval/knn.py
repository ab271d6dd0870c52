"""Cosine nearest neighbours with faiss, shared by the kNN probe and semantic search.

Vectors are L2-normalised and searched by inner product, so scores are cosines. ``exact``
(a flat index) is the default and the reference; ``ivf`` and ``hnsw`` trade a little recall
for speed on collections too large to scan.
"""

from __future__ import annotations

import faiss
import numpy as np

from data.errors import PipelineError

INDEX_KINDS = ("exact", "ivf", "hnsw")
DEFAULT_INDEX_KIND = "exact"  # the reference the approximate kinds are measured against


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2-normalised float32 copy (zero rows stay zero)."""
    vectors = np.array(vectors, dtype=np.float32, copy=True, order="C")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, norms, out=vectors, where=norms > 0)
    return vectors


def ivf_lists(rows: int) -> int:
    """About 4·sqrt(rows) lists (the faiss guideline), each trained on >= 39 points."""
    return max(1, min(int(4 * rows**0.5), rows // 39))


def new_index(kind: str, dim: int, train_rows: int = 0) -> faiss.Index:
    """An empty inner-product index; ``ivf`` sizes its lists for ``train_rows``."""
    if kind == "exact":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
        return index
    if kind == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        lists = ivf_lists(train_rows)
        index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = min(lists, max(8, lists // 8))
        return index
    raise PipelineError(f"unknown index kind {kind!r}; choose from {INDEX_KINDS}")


def build_index(vectors: np.ndarray, kind: str = DEFAULT_INDEX_KIND) -> faiss.Index:
    """An index over normalised ``vectors`` (trained first when the kind needs it)."""
    index = new_index(kind, vectors.shape[1], len(vectors))
    if not index.is_trained:
        index.train(vectors)
    index.add(vectors)
    return index


def neighbours_excluding_self(index: faiss.Index, vectors: np.ndarray, k: int) -> np.ndarray:
    """For row i of the indexed ``vectors``, its k nearest other rows ([N, k] ids).

    Searches k+1 and drops the row itself; if a duplicate vector outranks the row so that it
    is not among the k+1 hits, the last hit is dropped instead.
    """
    k = min(k, len(vectors) - 1)
    if k < 1:
        raise PipelineError(f"need at least 2 rows for a neighbour search, got {len(vectors)}")
    _, ids = index.search(vectors, k + 1)
    out = np.empty((len(vectors), k), dtype=np.int64)
    for row, hits in enumerate(ids):
        others = hits[hits != row]
        out[row] = others[:k]
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of each row's k true neighbours that are among its k found neighbours."""
    found, truth = found[:, :k], truth[:, :k]
    hits = [len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits) / k)
