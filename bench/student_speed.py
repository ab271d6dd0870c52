"""Student vs teacher encoding speed (and STS-B dev quality), interleaved in one run, CPU.

The teacher is the embedded all-MiniLM-L6-v2, timed through sentence-transformers (mean pooling,
normalised, batch 32, its own length sorting), the reference the speed-up target is stated
against, and through stage 1's own ``Teacher`` with oneDNN-packed linear layers in float32 and
(on CPUs with native bf16) bf16. Each student directory is timed in float32, bf16 autocast (same
condition) and int8 dynamic quantization (``Student.quantized``) on the same corpus lines, in the
same process. Every encoder is timed once per round for ``--repeats`` rounds and keeps its best
time, so a burst of load from elsewhere hits all of them alike; tokenization is included in every
timing. Each float row carries a roofline figure: its forward FLOPs over the time, against the
best matrix product of that precision probed in every round (``bench/roofline.py``). With
``--sts-dev`` each encoder's zero-shot STS-B dev Spearman is measured as well, which gives the
speed/quality trade-off table of docs/student.md. Writes bench/results/student_speed.json.

    python -m bench.student_speed runs/student [more student dirs...]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

from bench.common import SHARED_DATA, corpus_lines, write_result
from bench.roofline import matmul_peak, roofline, student_flops, teacher_flops
from data.sts import read_sts
from pipeline.runtime import cpu_has_native_bf16
from stage2_train import Student
from stage3_eval.encoders import student_precision


def spearman(encode, pairs) -> float:
    from scipy.stats import spearmanr

    a, b = encode(pairs.sentence1), encode(pairs.sentence2)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(spearmanr((a * b).sum(1), pairs.scores).statistic)


def seconds_for(encode, lines: list[str]) -> float:
    encode(lines[:64])  # warm-up: first-call allocations, lazy imports
    start = time.perf_counter()
    encode(lines)
    return time.perf_counter() - start


def teacher_rows(lines: list[str], precisions: list[str]) -> list[dict]:
    """The teacher through sentence-transformers (fp32) and through stage 1's packed Teacher."""
    from sentence_transformers import SentenceTransformer

    from stage1_encode.teacher import Teacher, embedded_teacher_path

    reference = SentenceTransformer(embedded_teacher_path(), device="cpu")
    rows = [
        {
            "encoder": "teacher all-MiniLM-L6-v2 (sentence-transformers)",
            "precision": "fp32",
            "parameters": sum(p.numel() for p in reference.parameters()),
            "encode": lambda texts: reference.encode(texts, batch_size=32, show_progress_bar=False),
        }
    ]
    for precision in precisions:
        teacher = Teacher(None, device="cpu", precision=precision)
        teacher.pack_for_inference()
        rows.append(
            {
                "encoder": f"teacher all-MiniLM-L6-v2 (pipeline Teacher, oneDNN {precision})",
                "precision": precision,
                "parameters": sum(p.numel() for p in teacher.parameters()),
                "encode": teacher.encode,
            }
        )
    lengths = [len(ids) for ids in teacher.tokenize(lines)]
    flops = teacher_flops(lengths, teacher.model.config)
    for row in rows:
        row["flops"] = flops
    return rows


def student_rows(directory: Path, lines: list[str], precisions: list[str], batch: int) -> list:
    student = Student.from_pretrained(directory)
    config = student.config
    flops = student_flops([len(ids) for ids in student.tokenize(lines)], config)
    rows = []
    for precision in [*precisions, "int8"]:
        model = student.quantized() if precision == "int8" else student

        def encode(texts, model=model, precision=precision):
            with student_precision(precision, "cpu"):
                return model.encode(texts, batch_size=batch)

        rows.append(
            {
                "encoder": f"{directory} ({precision})",
                "hidden_size": config.hidden_size,
                "layers": config.num_layers,
                "pooling": config.pooling,
                "precision": precision,
                "parameters": student.num_parameters(),
                "encode": encode,
                "flops": None if precision == "int8" else flops,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("students", nargs="+", type=Path, help="Student dirs (pipeline train).")
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sts-dev", type=Path, default=SHARED_DATA / "glue/STS-B/dev.tsv")
    parser.add_argument("--no-sts", action="store_true", help="Time only.")
    args = parser.parse_args()
    lines = corpus_lines("nltk_brown.txt.gz", args.lines)
    pairs = None if args.no_sts else read_sts(args.sts_dev)
    precisions = ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]
    rows = teacher_rows(lines, precisions)
    for directory in args.students:
        rows += student_rows(directory, lines, precisions, args.batch_size)
    peaks: dict[str, list[dict]] = {p: [] for p in precisions}
    for row in rows:
        row["all_seconds"] = []
    for _ in range(args.repeats):
        for precision in precisions:
            peaks[precision].append(matmul_peak(precision))
        for row in rows:
            row["all_seconds"].append(round(seconds_for(row["encode"], lines), 3))
    peak = {p: max(probe["peak"] for probe in peaks[p]) for p in precisions}
    write_result(
        "student_speed",
        {
            "lines": len(lines),
            "batch_size": args.batch_size,
            "threads": torch.get_num_threads(),
            "matmul_probes_gflops": peaks,
            "rows": with_sts_deltas(
                [finish(row, rows[0], len(lines), peak, pairs) for row in rows]
            ),
            "target_speedup": 25.0,
            "target_sts_delta_bf16": 0.002,
        },
    )


def finish(row: dict, reference: dict, count: int, peak: dict[str, float], pairs) -> dict:
    """A row's rates, roofline and STS score, relative to the sentence-transformers teacher."""
    encode, flops = row.pop("encode"), row.pop("flops")
    seconds = min(row["all_seconds"])
    row["sentences_per_second"] = count / seconds
    row["speedup_vs_teacher"] = min(reference["all_seconds"]) / seconds
    if flops is not None:
        row["roofline"] = roofline(flops, seconds, peak[row["precision"]])
    row["sts_b_dev_spearman"] = None if pairs is None else spearman(encode, pairs)
    return row


def with_sts_deltas(rows: list[dict]) -> list[dict]:
    """Each non-fp32 row's STS-B Spearman minus that of the same encoder in fp32."""
    fp32 = {row["encoder"].rsplit(" (", 1)[0]: row for row in rows if row["precision"] == "fp32"}
    for row in rows:
        base = fp32.get(row["encoder"].rsplit(" (", 1)[0])
        if row["precision"] != "fp32" and base and row["sts_b_dev_spearman"] is not None:
            row["sts_delta_vs_fp32"] = row["sts_b_dev_spearman"] - base["sts_b_dev_spearman"]
    return rows


if __name__ == "__main__":
    main()
