"""Stage-1 throughput: `pipeline encode` (fp32 and bf16) vs sentence-transformers, one run.

All encode the same 5,000 lines of nltk_brown with the embedded teacher on the CPU, in the same
process; a naive padded HF loop is timed once unless ``--no-naive``. On a shared, noisy machine
the fast contenders run alternately ``--repeats`` times and each keeps its best time, so a burst
of load from elsewhere does not decide the ratio. Each pipeline precision is reported as a
roofline figure: the teacher's forward FLOPs over the encode time, against the best matrix
product of that precision measured in the same run (``bench/roofline.py``). bf16 runs only where
the CPU has native bf16; its vectors are compared with float32 on the first 1,000 lines.
Writes bench/results/encode_throughput.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from bench.common import corpus_lines, write_result
from bench.roofline import matmul_peak, roofline, teacher_flops
from data.batching import MAX_LENGTH, TEACHER_MAX_TOKENS
from data.precision import cpu_has_native_bf16
from stage1_encode.encode import EncodeConfig, run_encode
from stage1_encode.teacher import Teacher, embedded_teacher_path


def time_pipeline(lines: list[str], max_tokens: int, precision: str) -> float:
    teacher = Teacher(None, device="cpu", precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        cfg = EncodeConfig(out=Path(tmp) / "shards", max_tokens=max_tokens, progress=False)
        start = time.perf_counter()
        summary = run_encode([corpus], teacher, cfg)
        seconds = time.perf_counter() - start
    assert summary.rows == len(lines)
    return seconds


def time_sentence_transformers(lines: list[str]) -> float:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(embedded_teacher_path(), device="cpu")
    start = time.perf_counter()
    model.encode(lines, batch_size=32, show_progress_bar=False)
    return time.perf_counter() - start


@torch.inference_mode()
def time_naive(lines: list[str]) -> float:
    """Batches of 64 padded to max length, in corpus order: what a first script does."""
    from transformers import AutoModel, AutoTokenizer

    path = embedded_teacher_path()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    start = time.perf_counter()
    for i in range(0, len(lines), 64):
        batch = tokenizer(
            lines[i : i + 64],
            padding="max_length",
            truncation=True,
            max_length=MAX_LENGTH,
            return_tensors="pt",
        )
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1)
        np.asarray((hidden * mask).sum(1) / mask.sum(1))
    return time.perf_counter() - start


def bf16_agreement(lines: list[str]) -> dict[str, float]:
    """Per-line cosine of the bf16 teacher's vectors to float32's (both oneDNN-packed)."""
    vectors = {}
    for precision in ("fp32", "bf16"):
        teacher = Teacher(None, device="cpu", precision=precision)
        teacher.pack_for_inference()
        vectors[precision] = teacher.encode(lines)
    a, b = vectors["fp32"], vectors["bf16"]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"lines": len(lines), "min": float(cosine.min()), "mean": float(cosine.mean())}


def forward_flops(lines: list[str]) -> int:
    teacher = Teacher(None, device="cpu")
    lengths = [len(ids) for ids in teacher.tokenize(lines)]
    return teacher_flops(lengths, teacher.model.config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--max-tokens", type=int, default=TEACHER_MAX_TOKENS)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-naive", action="store_true", help="Skip the naive HF loop.")
    args = parser.parse_args()
    lines = corpus_lines("nltk_brown.txt.gz", args.lines)
    precisions = ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]
    runs: dict[str, list[float]] = {f"pipeline_encode_{p}": [] for p in precisions}
    runs["sentence_transformers"] = []
    peaks: dict[str, list[dict]] = {p: [] for p in precisions}
    for _ in range(args.repeats):  # interleaved, so load from elsewhere hits every contender
        for precision in precisions:
            peaks[precision].append(matmul_peak(precision))
            runs[f"pipeline_encode_{precision}"].append(
                time_pipeline(lines, args.max_tokens, precision)
            )
        runs["sentence_transformers"].append(time_sentence_transformers(lines))
    seconds = {name: min(times) for name, times in runs.items()}
    if not args.no_naive:
        seconds["naive_hf_loop"] = time_naive(lines)
    rates = {name: len(lines) / s for name, s in seconds.items()}
    flops = forward_flops(lines)
    peak = {p: max(probe["peak"] for probe in peaks[p]) for p in precisions}
    write_result(
        "encode_throughput",
        {
            "lines": len(lines),
            "max_tokens": args.max_tokens,
            "all_seconds": runs,
            "seconds": seconds,
            "sentences_per_second": rates,
            "speedup_vs_sentence_transformers": {
                p: rates[f"pipeline_encode_{p}"] / rates["sentence_transformers"]
                for p in precisions
            },
            "matmul_probes_gflops": peaks,
            "roofline": {
                **{
                    f"pipeline_encode_{p}": roofline(
                        flops, seconds[f"pipeline_encode_{p}"], peak[p]
                    )
                    for p in precisions
                },
                "sentence_transformers": roofline(
                    flops, seconds["sentence_transformers"], peak["fp32"]
                ),
            },
            "bf16_vs_fp32_cosine": bf16_agreement(lines[:1000]) if "bf16" in precisions else None,
            "target_vs_sentence_transformers": 3.0,
        },
    )


if __name__ == "__main__":
    main()
