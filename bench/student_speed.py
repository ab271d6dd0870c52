"""Student vs teacher encoding speed (and STS-B dev quality), one run each, CPU.

The teacher is the embedded all-MiniLM-L6-v2, timed twice: through sentence-transformers (mean
pooling, normalised, batch 32, its own length sorting), the reference the speed-up target is
stated against, and through stage 1's own ``Teacher`` with oneDNN-packed linear layers, the
fastest exact teacher this project has. Each student directory is timed in float32 and
with int8 dynamic quantization (``Student.quantized``) on the same corpus lines, in the same
process, so the ratios hold even on a noisy shared machine; tokenization is included in every
timing. With ``--sts-dev`` each encoder's zero-shot STS-B dev Spearman is measured as well, which
gives the speed/quality trade-off table of docs/student.md. Writes
bench/results/student_speed.json.

    python -m bench.student_speed runs/student [more student dirs...]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from bench.common import SHARED_DATA, corpus_lines, write_result
from data.progress import encode_timed
from data.sts import read_sts, zero_shot
from stage2_train import Student


def spearman(encode, pairs) -> float:
    """Zero-shot STS Spearman as ``pipeline eval sts`` computes it."""
    return zero_shot(pairs, lambda texts: encode_timed(encode, texts)[0]).spearman


def timed(encode, lines: list[str]) -> float:
    encode(lines[:64])  # warm-up: first-call allocations, lazy imports
    start = time.perf_counter()
    encode(lines)
    return len(lines) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("students", nargs="+", type=Path, help="Student dirs (pipeline train).")
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--sts-dev", type=Path, default=SHARED_DATA / "glue/STS-B/dev.tsv")
    parser.add_argument("--no-sts", action="store_true", help="Time only.")
    args = parser.parse_args()
    lines = corpus_lines("nltk_brown.txt.gz", args.lines)
    pairs = None if args.no_sts else read_sts(args.sts_dev)

    from sentence_transformers import SentenceTransformer

    from stage1_encode.teacher import embedded_teacher_path
    from stage3_eval.encoders import TEACHER, load_encoder

    teacher = SentenceTransformer(embedded_teacher_path(), device="cpu")

    def teacher_encode(texts):
        return teacher.encode(texts, batch_size=32, show_progress_bar=False)

    rows = [
        {
            "encoder": "teacher all-MiniLM-L6-v2 (sentence-transformers)",
            "parameters": sum(p.numel() for p in teacher.parameters()),
            "sentences_per_second": timed(teacher_encode, lines),
            "sts_b_dev_spearman": None if pairs is None else spearman(teacher_encode, pairs),
        }
    ]
    teacher_rate, teacher_sts = rows[0]["sentences_per_second"], rows[0]["sts_b_dev_spearman"]
    packed = load_encoder(TEACHER)  # stage 3's teacher: oneDNN-packed, as stage 1 runs it
    packed_rate = timed(packed.encode, lines)
    rows.append(
        {
            "encoder": "teacher all-MiniLM-L6-v2 (pipeline Teacher, oneDNN)",
            "parameters": packed.parameters,
            "sentences_per_second": packed_rate,
        }
    )
    del packed
    for directory in args.students:
        student = Student.from_pretrained(directory)
        config = student.config
        for precision, model in (("fp32", student), ("int8", student.quantized())):

            def encode(texts, model=model):
                return model.encode(texts, batch_size=args.batch_size)

            rate = timed(encode, lines)
            sts = None if pairs is None else spearman(encode, pairs)
            rows.append(
                {
                    "encoder": f"{directory} ({precision})",
                    "hidden_size": config.hidden_size,
                    "layers": config.num_layers,
                    "pooling": config.pooling,
                    "precision": precision,
                    "parameters": student.num_parameters(),
                    "sentences_per_second": rate,
                    "speedup_vs_teacher": rate / teacher_rate,
                    "speedup_vs_pipeline_teacher": rate / packed_rate,
                    "sts_b_dev_spearman": sts,
                    "sts_share_of_teacher": None if sts is None else sts / teacher_sts,
                }
            )
    write_result(
        "student_speed",
        {
            "lines": len(lines),
            "batch_size": args.batch_size,
            "threads": torch.get_num_threads(),
            "rows": rows,
            "target_speedup": 10.0,
            "target_sts_share": 0.95,
        },
    )


if __name__ == "__main__":
    main()
