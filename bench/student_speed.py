"""Student vs teacher encoding speed (and STS-B dev quality), interleaved in one run, CPU.

The teacher is the embedded all-MiniLM-L6-v2, timed through sentence-transformers (mean pooling,
normalised, batch 32, its own length sorting), the reference the speed-up target is stated
against, and through stage 1's own ``Teacher`` with oneDNN-packed linear layers in float32 and
(on CPUs with native bf16) bf16. Each student directory is timed in float32, bf16 autocast (same
condition) and int8 dynamic quantization (``Student.quantized``) on the same corpus lines, in the
same process. Every encoder is timed once per round for ``--repeats`` rounds and keeps its best
time, so a burst of load from elsewhere hits all of them alike; tokenization is included in every
timing. Each float row carries a roofline figure: its forward FLOPs over the time, against the
best matrix product of that precision probed right before and after it (``bench/roofline.py``). With
``--sts-dev`` each encoder's zero-shot STS-B dev Spearman is measured as well, which gives the
speed/quality trade-off table of docs/student.md. Writes bench/results/student_speed.json.

    python -m bench.student_speed runs/student [more student dirs...]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from bench.common import SHARED_DATA, corpus_lines, write_result
from bench.roofline import bracketed, roofline, student_flops, teacher_flops
from data.precision import cpu_has_native_bf16
from data.progress import encode_timed
from data.sts import read_sts, zero_shot
from stage2_train import Student
from stage3_eval.encoders import student_precision


def spearman(encode, pairs) -> float:
    """Zero-shot STS Spearman as ``pipeline eval sts`` computes it."""
    return zero_shot(pairs, lambda texts: encode_timed(encode, texts)[0]).spearman


def measure(row: dict, lines: list[str]) -> dict[str, float]:
    """One timed encode of ``lines`` after a warm-up, with the peak probed around it."""
    row["encode"](lines[:64])  # warm-up: first-call allocations, lazy imports
    probe = "fp32" if row["precision"] == "int8" else row["precision"]
    return bracketed(lambda: row["encode"](lines), probe)


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


def student_rows(
    directory: Path, lines: list[str], precisions: list[str], batch: int, threads: int | None
) -> list:
    student = Student.from_pretrained(directory)
    config = student.config
    flops = student_flops([len(ids) for ids in student.tokenize(lines)], config)
    rows = []
    for precision in [*precisions, "int8"]:
        model = student.quantized() if precision == "int8" else student

        def encode(texts, model=model, precision=precision):
            default = torch.get_num_threads()
            torch.set_num_threads(threads or default)
            try:
                with student_precision(precision, "cpu"):
                    return model.encode(texts, batch_size=batch)
            finally:
                torch.set_num_threads(default)

        rows.append(
            {
                "encoder": f"{directory} ({precision})",
                "hidden_size": config.hidden_size,
                "layers": config.num_layers,
                "pooling": config.pooling,
                "precision": precision,
                "threads": threads or torch.get_num_threads(),
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
    parser.add_argument(
        "--student-threads",
        type=int,
        default=None,
        help="torch threads for the student rows [default: as the teachers]. On a loaded "
        "machine one thread can be faster: the LSTM synchronises its threads at every step.",
    )
    parser.add_argument("--sts-dev", type=Path, default=SHARED_DATA / "glue/STS-B/dev.tsv")
    parser.add_argument("--no-sts", action="store_true", help="Time only.")
    args = parser.parse_args()
    lines = corpus_lines("nltk_brown.txt.gz", args.lines)
    pairs = None if args.no_sts else read_sts(args.sts_dev)
    precisions = ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]
    rows = teacher_rows(lines, precisions)
    for directory in args.students:
        rows += student_rows(directory, lines, precisions, args.batch_size, args.student_threads)
    for row in rows:
        row["rounds"] = []
    for _ in range(args.repeats):  # interleaved: every round times every encoder once
        for row in rows:
            row["rounds"].append(measure(row, lines))
    write_result(
        "student_speed",
        {
            "lines": len(lines),
            "batch_size": args.batch_size,
            "threads": torch.get_num_threads(),
            "rows": with_sts_deltas([finish(row, rows[0], len(lines), pairs) for row in rows]),
            "target_speedup": 25.0,
            "target_sts_delta_bf16": 0.002,
        },
    )


def finish(row: dict, reference: dict, count: int, pairs) -> dict:
    """A row's rates, roofline and STS score, relative to the sentence-transformers teacher.

    The speed-up is given per round (both timed within minutes of each other) and from the two
    best times; the roofline uses the best round and the peak probed around it.
    """
    encode, flops = row.pop("encode"), row.pop("flops")
    best = min(row["rounds"], key=lambda r: r["seconds"])
    row["sentences_per_second"] = count / best["seconds"]
    row["speedup_by_round"] = [
        round(ref["seconds"] / own["seconds"], 2)
        for ref, own in zip(reference["rounds"], row["rounds"], strict=True)
    ]
    row["speedup_vs_teacher"] = min(r["seconds"] for r in reference["rounds"]) / best["seconds"]
    if flops is not None:
        row["roofline"] = roofline(flops, best["seconds"], best["peak_gflops"])
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
