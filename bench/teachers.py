"""The all-mpnet-base-v2 teacher end to end: corpus subset, stage 1, and the comparison table.

Encoding the whole shared corpus (168k lines) with a 12-layer 768-d teacher takes an hour or
more on this machine's two cores (hours when they are shared), so the MPNet run uses a fixed
subset: every line of
the seven corpus files (sorted, blank lines skipped) whose running index ``i`` has
``i % 8 < 3``, which keeps 3 of every 8 lines of every file (62,988 lines), shuffled with seed 0
so that its first N lines are a uniform sample of the corpus too. ``--lines N`` encodes only
that prefix (its own shard directory), for a student when the full subset cannot finish.

    python -m bench.teachers encode [--lines 20000]   # resumable: re-run to continue
    python -m bench.teachers wordpieces --targets DIR   # to choose --embed-proj
    python -m bench.teachers glue --student DIR --targets DIR [--seeds 3]
    python -m bench.teachers compare --student runs/teachers/student-mpnet --targets DIR

``compare`` writes bench/results/teachers.json (``--name``): the MPNet teacher (through
sentence-transformers) and the MPNet student on the same corpus lines in one process and the
same threads (sentences/s),
zero-shot STS-B dev for both, the student's validation cosine and kNN recall@10 on its
held-out shard rows, parameters; the MiniLM student's row is quoted from
bench/results/train_quality.json and student_speed.json (measured earlier, not rerun).
``glue`` fine-tunes a student and its scratch twin (same architecture and word-pieces, no
distillation) on CoLA and SST-2 with the budget of docs/glue.md (8,000 training examples,
per-task epochs) into runs/teachers/glue (resumable; every model run there is reported) and
writes bench/results/teachers_glue.json beside the full-corpus MiniLM student's scores from
bench/results/glue.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

from bench.common import RESULTS, SHARED_DATA, corpus_lines, write_result
from bench.fetch_mpnet import DEFAULT_DEST as RUNS
from bench.fetch_mpnet import FOLDER as MPNET

SUBSET = RUNS / "corpus-subset.txt"
SHARDS = RUNS / "mpnet-shards"
KEEP, STRIDE, SEED = 3, 8, 0


def subset_lines() -> list[str]:
    """The documented subset: 3 of every 8 non-blank corpus lines, shuffled with seed 0."""
    kept, index = [], 0
    for path in sorted((SHARED_DATA / "corpus").glob("*.txt.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                text = line.strip()
                if text:
                    if index % STRIDE < KEEP:
                        kept.append(text)
                    index += 1
    random.Random(SEED).shuffle(kept)
    return kept


def write_subset(lines: int | None) -> Path:
    """Write the subset (or its first ``lines`` lines) once; return the file."""
    target = SUBSET if lines is None else SUBSET.with_name(f"corpus-subset-{lines}.txt")
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        texts = subset_lines()[:lines]
        partial = target.with_name(target.name + ".partial")
        partial.write_text("\n".join(texts) + "\n", encoding="utf-8")
        partial.replace(target)
        print(f"{target}: {len(texts)} lines")
    return target


def shard_dir(lines: int | None) -> Path:
    return SHARDS if lines is None else SHARDS.with_name(f"{SHARDS.name}-{lines}")


def encode(lines: int | None, shard_size: int) -> None:
    """Stage 1 on the subset with MPNet; complete shards are skipped, so re-running resumes."""
    corpus, out = write_subset(lines), shard_dir(lines)
    command = [sys.executable, "-m", "pipeline", "encode", str(corpus), "--out", str(out)]
    command += ["--teacher", str(MPNET), "--shard-size", str(shard_size), "--device", "cpu"]
    subprocess.run(command, check=True)


def wordpiece_ranks(targets: Path, ranks: tuple[int, ...]) -> None:
    """How much a rank-k projection of the word-piece matrix keeps, for choosing --embed-proj.

    Two cheap measurements, no training: the share of the matrix's variance in its top k
    principal directions (MPNet's and MiniLM's), and a bag-of-word-pieces proxy of the
    student: ridge regression from the mean of a line's word-pieces, projected onto those k
    directions, to the teacher's vector, scored by mean cosine on a fifth of the stored rows.
    """
    import h5py
    from safetensors.torch import load_file

    from data import shards
    from stage1_encode.teacher import embedded_teacher_path

    def variance_kept(matrix: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
        centred = matrix - matrix.mean(0)
        _, values, basis = torch.linalg.svd(centred, full_matrices=False)
        share = (values**2).cumsum(0) / (values**2).sum()
        return basis, [float(share[min(k, len(share)) - 1]) for k in ranks]

    minilm = load_file(str(Path(embedded_teacher_path()) / "model.safetensors"))
    minilm_matrix = next(v for k, v in minilm.items() if "word_embeddings" in k).float()
    matrix = load_file(str(targets / shards.INPUT_EMBEDDINGS))["weight"].float()
    basis, kept = variance_kept(matrix)
    with h5py.File(shards.list_shard_files(targets)[0], "r") as handle:
        targets_y = handle["embedding"][()].astype(np.float32)
        ids = list(handle["input_ids"][()])
    bags = torch.stack([matrix[torch.as_tensor(row, dtype=torch.long)].mean(0) for row in ids])
    split = len(bags) * 4 // 5
    proxy = {}
    for k in ranks:
        x = (bags @ basis[:k].T).numpy()
        x = np.hstack([x, np.ones((len(x), 1), np.float32)])
        gram = x[:split].T @ x[:split] + 1e-2 * np.eye(x.shape[1], dtype=np.float32)
        weights = np.linalg.solve(gram, x[:split].T @ targets_y[:split])
        pred, true = x[split:] @ weights, targets_y[split:]
        cos = (pred * true).sum(1) / np.linalg.norm(pred, axis=1) / np.linalg.norm(true, axis=1)
        proxy[k] = float(cos.mean())
    write_result(
        "teachers_wordpieces",
        {
            "targets": str(targets),
            "rows": len(bags),
            "ranks": list(ranks),
            "teacher_variance_kept": dict(zip(ranks, kept, strict=True)),
            "minilm_variance_kept": dict(zip(ranks, variance_kept(minilm_matrix)[1], strict=True)),
            "bag_of_wordpieces_val_cosine": proxy,
        },
    )


def minilm_row() -> dict[str, Any]:
    """The MiniLM student of docs/student.md, as its own benchmark files recorded it."""
    quality = json.loads((RESULTS / "train_quality.json").read_text(encoding="utf-8"))
    speed = json.loads((RESULTS / "student_speed.json").read_text(encoding="utf-8"))
    student = next(r for r in speed["rows"] if r.get("precision") == "fp32")
    return {
        "encoder": "MiniLM student (runs/student-v2, quoted from earlier benchmark files)",
        "parameters": quality["parameters"],
        "corpus_rows": quality["corpus_rows"],
        "sts_b_dev_spearman": quality["sts_b_dev_spearman"],
        "teacher_sts_b_dev_spearman": quality["teacher_sts_b_dev_spearman"],
        "validation_cosine": quality["validation"]["cosine"],
        "sentences_per_second": student["sentences_per_second"],
        "speedup_vs_sentence_transformers_teacher": student["speedup_vs_teacher"],
    }


def compare(
    student_dir: Path, targets: Path, count: int, teacher_sts: float | None, name: str
) -> None:
    """The comparison table of docs/teachers.md (one process, same lines, same threads)."""
    from sentence_transformers import SentenceTransformer

    from bench.student_speed import spearman, timed
    from data.shards import ShardStore
    from data.sts import read_sts
    from stage2_train import Student
    from stage3_eval.encoders import load_encoder
    from stage3_eval.probe import held_out_rows, resolve_fraction, run_probe

    lines = corpus_lines("nltk_brown.txt.gz", count)
    pairs = read_sts(SHARED_DATA / "glue/STS-B/dev.tsv")
    teacher = SentenceTransformer(str(MPNET), device="cpu")

    def teacher_encode(texts: list[str]) -> np.ndarray:
        return teacher.encode(texts, batch_size=32, show_progress_bar=False)

    student = Student.from_pretrained(student_dir)
    summary = json.loads((student_dir / "config.json").read_text(encoding="utf-8"))["training"]
    teacher_rate, student_rate = timed(teacher_encode, lines), timed(student.encode, lines)
    if teacher_sts is None:
        teacher_sts = spearman(teacher_encode, pairs)
    student_sts = spearman(student.encode, pairs)
    encoder = load_encoder(str(student_dir))
    held = held_out_rows(ShardStore(targets), resolve_fraction(None, encoder))
    probe = run_probe(encoder, held, (1, 10))
    rows = [
        {
            "encoder": "teacher all-mpnet-base-v2 (sentence-transformers, batch 32)",
            "parameters": sum(p.numel() for p in teacher.parameters()),
            "sentences_per_second": teacher_rate,
            "sts_b_dev_spearman": teacher_sts,
        },
        {
            "encoder": f"MPNet student {student_dir}",
            "parameters": student.num_parameters(),
            "corpus_rows": summary["corpus_rows"],
            "sentences_seen": summary["sentences_seen"],
            "train_seconds": summary["train_seconds"],
            "sts_b_dev_spearman": student_sts,
            "sts_share_of_teacher": student_sts / teacher_sts,
            "validation_cosine": summary["validation"]["cosine"],
            "knn_probe": {
                "rows": probe.rows,
                **{f"recall@{k}": v for k, v in probe.recall.items()},
            },
            "sentences_per_second": student_rate,
            "speedup_vs_sentence_transformers_teacher": student_rate / teacher_rate,
        },
        minilm_row(),
    ]
    write_result(
        name,
        {
            "lines": len(lines),
            "threads": torch.get_num_threads(),
            "targets": str(targets),
            "rows": rows,
            "target_sts_share": 0.95,
            "target_speedup": 80.0,
        },
    )


def glue(student_dir: Path, targets: Path, seeds: int, tasks: str, models: str) -> None:
    """CoLA and SST-2 dev: MPNet student and scratch against the MiniLM student's scores."""
    from bench.glue_table import scores_by_model, student_vs_scratch
    from pipeline.cli import main as pipeline_main

    out = RUNS / "glue"
    common = ["--tasks", tasks, "--data-dir", str(SHARED_DATA / "glue"), "--out", str(out)]
    common += ["--seeds", str(seeds), "--max-train-examples", "8000", "--no-predict-test"]
    runs = {
        "student": (str(student_dir), []),
        "scratch": ("scratch", ["--teacher", str(targets), "--student-config", str(student_dir)]),
    }
    for model, extra in (runs[name] for name in models.split(",")):
        argv = ["eval", "glue", "--model", model, "--device", "cpu", *common, *extra]
        print("$ pipeline " + " ".join(argv), flush=True)
        pipeline_main.main(argv, standalone_mode=False)
    scores, timing = scores_by_model(out)
    minilm = json.loads((RESULTS / "glue.json").read_text(encoding="utf-8"))
    names = tasks.split(",")
    write_result(
        "teachers_glue",
        {
            "budget": {"seeds": seeds, "max_train_examples": 8000, "epochs": "per task"},
            "scores_x100": {
                m: {t: {"mean": float(np.mean(v)), "seeds": v} for t, v in by.items()}
                for m, by in scores.items()
            },
            "student_vs_scratch": student_vs_scratch(
                {("student" if m == student_dir.name else m): v for m, v in scores.items()}, names
            ),
            "minilm_full_corpus_scores_x100": {
                m: {t: minilm["scores_x100"][m][t] for t in names}
                for m in ("student", "scratch", "teacher")
            },
            "seconds_per_run": timing,
            "results_dir": str(out),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    enc = commands.add_parser("encode", help="Stage 1 with MPNet on the subset (resumable).")
    enc.add_argument("--lines", type=int, default=None, help="Only the subset's first N lines.")
    enc.add_argument("--shard-size", type=int, default=2500)
    cmp = commands.add_parser("compare", help="Write bench/results/teachers.json.")
    cmp.add_argument("--student", type=Path, required=True, help="MPNet student dir.")
    cmp.add_argument("--targets", type=Path, required=True, help="Its MPNet shard dir.")
    cmp.add_argument("--lines", type=int, default=5000, help="nltk_brown lines timed.")
    cmp.add_argument("--teacher-sts", type=float, help="The teacher's STS-B, if measured before.")
    cmp.add_argument("--name", default="teachers", help="bench/results/NAME.json")
    ranks = commands.add_parser("wordpieces", help="Measure rank-k word-piece projections.")
    ranks.add_argument("--targets", type=Path, required=True, help="An MPNet shard dir.")
    glue_cmd = commands.add_parser("glue", help="Write bench/results/teachers_glue.json.")
    glue_cmd.add_argument("--student", type=Path, required=True, help="MPNet student dir.")
    glue_cmd.add_argument("--targets", type=Path, required=True, help="Its MPNet shard dir.")
    glue_cmd.add_argument("--seeds", type=int, default=3)
    glue_cmd.add_argument("--tasks", default="cola,sst2")
    glue_cmd.add_argument("--models", default="student,scratch")
    args = parser.parse_args()
    if args.command == "glue":
        glue(args.student, args.targets, args.seeds, args.tasks, args.models)
    elif args.command == "encode":
        encode(args.lines, args.shard_size)
    elif args.command == "wordpieces":
        wordpiece_ranks(args.targets, (64, 128, 256, 384, 768))
    else:
        compare(args.student, args.targets, args.lines, args.teacher_sts, args.name)


if __name__ == "__main__":
    main()
