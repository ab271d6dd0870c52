"""Roofline figures for the speed benchmarks: FLOPs of a forward pass, and the machine's peak.

Every speed benchmark states its achieved arithmetic rate next to the rate a plain matrix product
reaches on the same machine, in the same run and precision, so a figure reads as "x % of peak".

FLOPs are counted analytically from the model's shapes and the real (unpadded) token counts, so
padding, tokenization and data movement all count as time not spent on useful arithmetic. One
multiply-add is two FLOPs. Peak is the best rate of a large matrix product over a few repeats,
through both oneDNN (packed weights, as stage 1 runs) and ``torch.mm``. On a shared machine the
load changes from minute to minute, so ``bracketed`` probes the peak just before and just after
each timed run and pairs the run with the better of the two: a share of peak then compares two
figures taken under about the same load.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def teacher_flops(lengths: Sequence[int], config: Any) -> int:
    """FLOPs of a BERT-family encoder forward pass over sequences of ``lengths`` real tokens.

    Per layer and token: the Q, K, V and output projections (4·d² multiply-adds) and the
    feed-forward block (2·d·d_ff); per layer and sequence: scores and weighted values (2·L²·d).
    The pooler adds d² per sequence. Embedding look-ups, LayerNorm and softmax are left out.
    """
    d, d_ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = sum(lengths)
    squares = sum(length * length for length in lengths)
    per_layer = tokens * (4 * d * d + 2 * d * d_ff) + 2 * squares * d
    return 2 * (layers * per_layer + len(lengths) * d * d)


def student_flops(lengths: Sequence[int], config: Any) -> int:
    """FLOPs of the BiLSTM student's forward pass over sequences of ``lengths`` real tokens.

    Per token, layer and direction an LSTM step is 4 gates × (input + hidden) × hidden
    multiply-adds; the embedding projection adds embed_dim × proj per token, and the head
    pooled_width × output_dim (twice for an MLP head) per sequence.
    """
    tokens, hidden = sum(lengths), config.hidden_size
    total = tokens * config.embed_dim * config.embed_proj if config.embed_proj else 0
    width = config.input_width
    for _ in range(config.num_layers):
        total += 2 * tokens * 4 * (width + hidden) * hidden
        width = width + 2 * hidden if config.connection == "dense" else 2 * hidden
    head = config.pooled_width * config.output_dim
    if config.head == "mlp":
        head += config.output_dim * config.output_dim
    return 2 * (total + len(lengths) * head)


def _onednn_product(rows: int, inner: int, cols: int, dtype: torch.dtype):
    x = torch.randn(rows, inner).to(dtype)
    weight = torch.randn(cols, inner).to(dtype)
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
    except (RuntimeError, AttributeError):
        return None
    return lambda: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


def _best_rate(product, flops: int, repeats: int, device: str = "cpu") -> float:
    def run() -> None:
        product()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    run()  # warm-up: first-call allocation and kernel selection
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


@torch.inference_mode()
def matmul_peak(
    precision: str, size: int = 2048, repeats: int = 5, device: str = "cpu"
) -> dict[str, float]:
    """Best GFLOP/s of a ``size``³ matrix product in ``precision`` on ``device``, by each route."""
    dtype = DTYPES[precision]
    flops = 2 * size**3
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    rates = {"torch_mm": _best_rate(lambda: torch.mm(a, b), flops, repeats, device)}
    onednn = _onednn_product(size, size, size, dtype) if device == "cpu" else None
    if onednn is not None:
        rates["onednn"] = _best_rate(onednn, flops, repeats)
    rates["peak"] = max(rates.values())
    return {name: round(rate, 1) for name, rate in rates.items()}


def bracketed(run: Callable[[], object], precision: str) -> dict[str, float]:
    """Seconds of ``run()`` and the best peak of ``precision`` probed right before and after."""
    before = matmul_peak(precision, size=1536, repeats=2)["peak"]
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    after = matmul_peak(precision, size=1536, repeats=2)["peak"]
    return {"seconds": round(seconds, 3), "peak_gflops": max(before, after)}


def roofline(flops: int, seconds: float, peak_gflops: float) -> dict[str, float]:
    """The figure a benchmark reports: achieved GFLOP/s and its share of the measured peak."""
    achieved = flops / seconds / 1e9
    return {  # significant figures, not decimals: a tiny model's rate must not round to zero
        "gflop": _significant(flops / 1e9),
        "achieved_gflops": _significant(achieved),
        "peak_gflops": peak_gflops,
        "share_of_peak": _significant(achieved / peak_gflops),
    }


def _significant(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")
