"""The student's inference batch size on the CPU, measured: sentences/s per batch size and thread
count, interleaved in one run, for student directories and their ONNX exports.

``Student.encode`` sorts texts by length and runs padded batches through oneDNN's fused LSTM.
Each time step is a small matrix product over the batch; a larger batch means fewer steps per
sentence but a gate state that no longer fits the core's cache, so the best size is a property of
the CPU and the student's width, not something to guess. Every batch size is timed once per round
for ``--repeats`` rounds on the same corpus lines (tokenization included, as users call it) and
keeps its best time, so load from elsewhere hits all sizes alike. Writes
bench/results/student_batch.json.

    python -m bench.student_batch runs/student [runs/student-onnx ...]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from bench.common import corpus_lines, write_result
from data.progress import encode_timed
from stage2_train import Student
from stage2_train.config import inference_batch_size
from stage2_train.onnx_encoder import OnnxEncoder, is_onnx_export
from stage2_train.vectors import SentenceEncoding


def load(folder: Path, threads: int) -> SentenceEncoding:
    """A student dir in torch (threads set by the caller) or an ONNX export in ONNX Runtime."""
    if is_onnx_export(folder):
        return OnnxEncoder.from_export(folder, threads=threads)
    return Student.from_pretrained(folder).eval()


def sweep(
    student: SentenceEncoding, lines: list[str], sizes: list[int], repeats: int
) -> dict[int, float]:
    """Best sentences/s of ``student.encode(lines)`` per batch size over interleaved rounds."""
    student.encode(lines[:64])  # warm-up: first-call allocations
    best = dict.fromkeys(sizes, float("inf"))
    for _ in range(repeats):
        for size in sizes:
            seconds = encode_timed(lambda t, s=size: student.encode(t, batch_size=s), lines)[1]
            best[size] = min(best[size], seconds)
    return {size: len(lines) / seconds for size, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "students", nargs="+", type=Path, help="Student dirs or ONNX exports (pipeline export)."
    )
    parser.add_argument("--lines", type=int, default=5000, help="nltk_brown lines timed.")
    parser.add_argument("--batch-sizes", default="16,32,64,128,256,512")
    parser.add_argument("--threads", default="1,2", help="torch thread counts, comma list.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    lines = corpus_lines("nltk_brown.txt.gz", args.lines)
    default, rows = inference_batch_size("cpu"), []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for folder in args.students:
            rates = sweep(load(folder, threads), lines, sizes, args.repeats)
            best = max(rates, key=rates.get)
            rows.append(
                {
                    "student": str(folder),
                    "threads": threads,
                    "sentences_per_second": rates,
                    "best_batch_size": best,
                    "best_over_default": rates[best] / rates[default] if default in rates else None,
                }
            )
            print(rows[-1], flush=True)
    write_result(
        "student_batch",
        {
            "lines": len(lines),
            "repeats": args.repeats,
            "default_batch_size": default,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
