"""Stage-1 throughput: `pipeline encode` vs sentence-transformers vs a naive HF loop, one run.

All three encode the same 5,000 lines of nltk_brown with the embedded teacher on the CPU, in the
same process. On a shared, noisy machine the two fast contenders run alternately ``--repeats``
times and each keeps its best time, so a burst of load from elsewhere does not decide the ratio.
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
from stage1_encode.encode import EncodeConfig, run_encode
from stage1_encode.teacher import Teacher, embedded_teacher_path


def time_pipeline(lines: list[str], max_tokens: int) -> float:
    teacher = Teacher(None, device="cpu")
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
            max_length=128,
            return_tensors="pt",
        )
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1)
        np.asarray((hidden * mask).sum(1) / mask.sum(1))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--max-tokens", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    lines = corpus_lines("nltk_brown.txt.gz", args.lines)
    runs: dict[str, list[float]] = {"pipeline_encode": [], "sentence_transformers": []}
    for _ in range(args.repeats):
        runs["pipeline_encode"].append(time_pipeline(lines, args.max_tokens))
        runs["sentence_transformers"].append(time_sentence_transformers(lines))
    seconds = {name: min(times) for name, times in runs.items()}
    seconds["naive_hf_loop"] = time_naive(lines)
    rates = {name: len(lines) / s for name, s in seconds.items()}
    write_result(
        "encode_throughput",
        {
            "lines": len(lines),
            "max_tokens": args.max_tokens,
            "all_seconds": runs,
            "seconds": seconds,
            "sentences_per_second": rates,
            "speedup_vs_sentence_transformers": rates["pipeline_encode"]
            / rates["sentence_transformers"],
            "speedup_vs_naive": rates["pipeline_encode"] / rates["naive_hf_loop"],
            "target_vs_sentence_transformers": 1.3,
        },
    )


if __name__ == "__main__":
    main()
