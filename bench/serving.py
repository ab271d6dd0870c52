"""Serving the student: torch, ONNX Runtime and sentence-transformers, one run, 2 threads.

Six encoders on the same corpus lines, in one process, tokenization included in every timing:
the torch student in float32 and int8 (``Student.quantized``), its ONNX export under ONNX
Runtime in float32 and int8 (exported here into a temporary folder with ``export_onnx``), the
student loaded by sentence-transformers from its folder, and the teacher through
sentence-transformers. Each gets sentences/s and zero-shot STS-B dev Spearman; the ONNX rows
also get their agreement with torch float32 on the timed lines. The target: the fastest ONNX
path at least 1.3× the torch float32 student, with STS-B within 0.005. Writes
bench/results/serving.json.

    python -m bench.serving runs/student
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

from bench.common import SHARED_DATA, corpus_lines, write_result
from bench.student_speed import spearman, timed
from data.sts import read_sts
from stage2_train import Student

TARGET_SPEEDUP = 1.3
TARGET_STS_GAP = 0.005


def _row(name: str, encode, lines: list[str], pairs, reference: np.ndarray | None) -> dict:
    row = {
        "encoder": name,
        "sentences_per_second": timed(encode, lines),
        "sts_b_dev_spearman": spearman(encode, pairs),
    }
    if reference is not None:
        vectors = encode(lines)
        cosine = np.sum(vectors * reference, 1) / (
            np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1)
        )
        row["max_abs_diff_to_torch_fp32"] = float(np.abs(vectors - reference).max())
        row["min_cosine_to_torch_fp32"] = float(cosine.min())
    print(row, flush=True)
    return row


def _encoders(student_dir: Path, export: Path, batch: int, threads: int) -> list[tuple]:
    """(name, encode function, compare with torch float32?) for the six encoders."""
    from sentence_transformers import SentenceTransformer

    from stage1_encode.teacher import embedded_teacher_path
    from stage2_train.onnx_encoder import OnnxEncoder

    student = Student.from_pretrained(student_dir)
    int8 = student.quantized()
    ort32 = OnnxEncoder.from_export(export, threads=threads)
    ort8 = OnnxEncoder.from_export(export, int8=True, threads=threads)
    st_student = SentenceTransformer(str(student_dir), trust_remote_code=True, device="cpu")
    teacher = SentenceTransformer(embedded_teacher_path(), device="cpu")
    quiet = {"batch_size": batch, "show_progress_bar": False}
    return [
        ("student torch float32", lambda t: student.encode(t, **quiet), False),
        ("student torch int8 (quantize_dynamic)", lambda t: int8.encode(t, **quiet), True),
        ("student ONNX Runtime float32", lambda t: ort32.encode(t, **quiet), True),
        ("student ONNX Runtime int8 (quantize_dynamic)", lambda t: ort8.encode(t, **quiet), True),
        ("student via sentence-transformers", lambda t: st_student.encode(t, **quiet), True),
        (
            "teacher all-MiniLM-L6-v2 via sentence-transformers",
            lambda t: teacher.encode(t, batch_size=32, show_progress_bar=False),
            False,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("student", type=Path, help="Student dir (pipeline train).")
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sts-dev", type=Path, default=SHARED_DATA / "glue/STS-B/dev.tsv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = corpus_lines("nltk_brown.txt.gz", args.lines)
    pairs = read_sts(args.sts_dev)

    from stage2_train.onnx_export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "onnx"
        parity = export_onnx(args.student, export, int8=True)["parity"]
        encoders = _encoders(args.student, export, args.batch_size, args.threads)
        reference = encoders[0][1](lines)
        rows = [
            _row(name, encode, lines, pairs, reference if compare else None)
            for name, encode, compare in encoders
        ]
    base = rows[0]
    onnx = max(rows[2:4], key=lambda r: r["sentences_per_second"])
    speedup = onnx["sentences_per_second"] / base["sentences_per_second"]
    gap = abs(onnx["sts_b_dev_spearman"] - base["sts_b_dev_spearman"])
    write_result(
        "serving",
        {
            "student": args.student.name,
            "lines": len(lines),
            "threads": args.threads,
            "batch_size": args.batch_size,
            "export_parity": parity,
            "encoders": rows,
            "fastest_onnx": onnx["encoder"],
            "fastest_onnx_speedup_vs_torch_fp32": speedup,
            "fastest_onnx_sts_gap": gap,
            "target_met": speedup >= TARGET_SPEEDUP and gap <= TARGET_STS_GAP,
        },
    )


if __name__ == "__main__":
    main()
