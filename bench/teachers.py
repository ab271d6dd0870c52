"""The all-mpnet-base-v2 teacher end to end: corpus subset, stage 1, and the comparison tables.

Encoding the whole shared corpus (168k lines) with a 12-layer 768-d teacher takes 1.5 hours in
bf16 on one core of a CPU with native bf16, and about four in float32 on two cores without it
(docs/teachers.md); ``encode`` writes a fixed subset instead: every line of the seven corpus
files (sorted, blank lines skipped) whose running index ``i`` has ``i % 8 < 3``, which keeps 3
of every 8 lines of every file (62,988 lines), shuffled with seed 0 so that its first N lines
are a uniform sample of the corpus too. ``--lines N`` encodes only that prefix (its own shard
directory), for a student when the full subset cannot finish.

    python -m bench.teachers encode [--lines 20000]   # resumable: re-run to continue
    python -m bench.teachers wordpieces --targets DIR   # to choose --embed-proj
    python -m bench.teachers glue --student DIR --targets DIR [--rows scratch] [--tasks cola]
    python -m bench.teachers compare --student runs/teachers/student-mpnet --targets DIR \
        --minilm-student runs/student --minilm-targets runs/corpus-shards [--onnx EXPORT]

``compare`` writes bench/results/teachers.json (``--name``): each teacher (through
sentence-transformers) and its student on the same corpus lines, in one process with the same
threads (sentences/s), zero-shot STS-B dev for all, each student's validation cosine, kNN
recall@10 on its held-out shard rows (the shards it trained on), and parameters; ``--onnx``
adds the MPNet student served by ONNX Runtime. ``glue`` runs bench/glue.py's rows for
the MPNet teacher (student and scratch by default; ``--rows teacher`` fine-tunes MPNet itself)
into runs/teachers/glue with the ledger bench/results/glue_mpnet_runs.json (resumable, across
machines) and writes bench/results/glue_mpnet.json, then bench/results/teachers_glue.json: each
row, MPNet minus MiniLM (bench/results/glue.json) per task with Welch's p.
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
from bench.glue_table import AVERAGED

GLUE_LEDGER = RESULTS / "glue_mpnet_runs.json"  # finished GLUE runs kept across machines
MPNET_GLUE = "glue_mpnet"  # bench/glue.py's result file for the MPNet rows

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


def student_row(
    name: str, student_dir: Path, targets: Path, lines: list[str], pairs, teacher: dict
) -> dict[str, Any]:
    """One student's row: quality, held-out kNN recall and speed against ``teacher``'s rate."""
    from bench.student_speed import spearman
    from data.shards import ShardStore
    from stage2_train import Student
    from stage2_train.layout import CONFIG_FILE
    from stage3_eval.encoders import load_encoder
    from stage3_eval.probe import held_out_rows, resolve_fraction, run_probe

    student = Student.from_pretrained(student_dir)
    summary = json.loads((student_dir / CONFIG_FILE).read_text(encoding="utf-8"))["training"]
    rate = sentences_per_second(student.encode, lines)
    sts = spearman(student.encode, pairs)
    encoder = load_encoder(str(student_dir))
    store = ShardStore(targets, first_shards=summary.get("shards_used"))  # the rows it trained on
    probe = run_probe(encoder, held_out_rows(store, resolve_fraction(None, encoder)))
    return {
        "encoder": f"{name} student {student_dir}",
        "parameters": student.num_parameters(),
        "corpus_rows": summary["corpus_rows"],
        "shards": f"{len(store.paths)} of {store.total_shards}",
        "sentences_seen": summary["sentences_seen"],
        "train_seconds": summary["train_seconds"],
        "sts_b_dev_spearman": sts,
        "sts_share_of_teacher": sts / teacher["sts_b_dev_spearman"],
        "validation_cosine": summary["validation"]["cosine"],
        "knn_probe": {"rows": probe.rows, **{f"recall@{k}": v for k, v in probe.recall.items()}},
        "sentences_per_second": rate,
        "speedup_vs_sentence_transformers_teacher": rate / teacher["sentences_per_second"],
    }


def sentences_per_second(encode, lines: list[str]) -> float:
    """Rate of one timed ``encode`` of ``lines`` after a short warm-up."""
    from data.progress import encode_timed

    encode(lines[:64])
    return len(lines) / encode_timed(encode, lines)[1]


def teacher_row(name: str, folder: Path, lines: list[str], pairs) -> dict[str, Any]:
    """A sentence-transformers teacher: parameters, sentences/s on ``lines``, STS-B dev."""
    from sentence_transformers import SentenceTransformer

    from bench.student_speed import spearman

    model = SentenceTransformer(str(folder), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=32, show_progress_bar=False)

    return {
        "encoder": f"teacher {name} (sentence-transformers, batch 32)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "sentences_per_second": sentences_per_second(encode, lines),
        "sts_b_dev_spearman": spearman(encode, pairs),
    }


def onnx_row(name: str, export: Path, lines: list[str], pairs, teacher: dict) -> dict[str, Any]:
    """A student served by ONNX Runtime (``pipeline export``): speed and STS-B, same threads."""
    from bench.student_speed import spearman
    from stage2_train.onnx_encoder import OnnxEncoder

    encoder = OnnxEncoder.from_export(export, threads=torch.get_num_threads())
    rate = sentences_per_second(encoder.encode, lines)
    return {
        "encoder": f"{name} student in ONNX Runtime {export}",
        "sts_b_dev_spearman": spearman(encoder.encode, pairs),
        "sentences_per_second": rate,
        "speedup_vs_sentence_transformers_teacher": rate / teacher["sentences_per_second"],
    }


def compare(
    students: dict[str, tuple[Path, Path]], count: int, name: str, exports: dict[str, Path]
) -> None:
    """The comparison table of docs/teachers.md: each teacher and its student, one process.

    ``students`` maps a teacher name to (student dir, its shard dir); ``exports`` a teacher name
    to its student's ONNX export, for an ONNX Runtime row. Every encoder runs on the same ``count``
    corpus lines with the same threads, so the speed-ups are same-run ratios.
    """
    from data.sts import read_sts
    from stage1_encode.teacher import embedded_teacher_path

    lines = corpus_lines("nltk_brown.txt.gz", count)
    pairs = read_sts(SHARED_DATA / "glue/STS-B/dev.tsv")
    folders = {"all-mpnet-base-v2": MPNET, "all-MiniLM-L6-v2": Path(embedded_teacher_path())}
    rows = []
    for teacher_name, (student_dir, targets) in students.items():
        teacher = teacher_row(teacher_name, folders[teacher_name], lines, pairs)
        rows += [teacher, student_row(teacher_name, student_dir, targets, lines, pairs, teacher)]
        if teacher_name in exports:
            rows.append(onnx_row(teacher_name, exports[teacher_name], lines, pairs, teacher))
    write_result(
        name,
        {
            "lines": len(lines),
            "threads": torch.get_num_threads(),
            "rows": rows,
            "target_sts_share": 0.95,
            "target_speedup": 80.0,
        },
    )


GLUE_ROWS = ("student", "scratch", "teacher")


def glue(student: Path, targets: Path, options: list[str], minilm: Path) -> None:
    """bench/glue.py's rows for the MPNet teacher, then those rows beside the MiniLM ones.

    The rows run exactly as docs/glue.md's (same seeds, full training sets, resumable), with
    their own results folder, ledger and result file; ``options`` go on to bench/glue.py
    (``--rows``, default scratch and student; ``--tasks``; ``--report-only``). Then, per task
    and row, MPNet minus MiniLM with Welch's p from both files' per-seed scores: does a
    stronger teacher pass through?
    """
    from bench.glue import main as run_glue

    run_glue(
        [
            *("--student", str(student), "--targets", str(targets), "--teacher", str(MPNET)),
            *("--out", str(RUNS / "glue"), "--ledger", str(GLUE_LEDGER)),
            *("--result-name", MPNET_GLUE, "--rows", "scratch,student", *options),
        ]
    )

    sources = {"MiniLM": minilm, "MPNet": RESULTS / f"{MPNET_GLUE}.json"}
    results = {name: json.loads(path.read_text(encoding="utf-8")) for name, path in sources.items()}
    write_result(
        "teachers_glue",
        {"sources": {n: str(p) for n, p in sources.items()}, **teacher_comparison(results)},
    )


def teacher_comparison(results: dict[str, dict]) -> dict[str, Any]:
    """MPNet's rows minus MiniLM's per task (Welch p), from two bench/glue.py result files."""
    from bench.glue_table import compare

    differences = {
        row: compare(
            {name: r["scores_x100_per_seed"].get(row, {}) for name, r in results.items()},
            "MPNet",
            "MiniLM",
            list(AVERAGED),
        )
        for row in GLUE_ROWS
    }
    return {
        "scores_x100": {name: r["scores_x100"] for name, r in results.items()},
        "mean_x100": {name: r["mean_x100"] for name, r in results.items()},
        "seeds": {name: r["seeds"] for name, r in results.items()},
        "mpnet_minus_minilm": differences,
        "target": "MPNet student above the MiniLM student on CoLA and SST-2",
        "target_met": _ahead(differences["student"], ("cola", "sst2")),
    }


def _ahead(compared: dict[str, dict], tasks: tuple[str, ...]) -> bool | None:
    """Whether MPNet's row leads on every one of ``tasks``; None while one lacks a row."""
    if any(t not in compared for t in tasks):
        return None
    return all(compared[t]["difference"] > 0 for t in tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    enc = commands.add_parser("encode", help="Stage 1 with MPNet on the subset (resumable).")
    enc.add_argument("--lines", type=int, default=None, help="Only the subset's first N lines.")
    enc.add_argument("--shard-size", type=int, default=2500)
    cmp = commands.add_parser("compare", help="Write bench/results/teachers.json.")
    cmp.add_argument("--student", type=Path, required=True, help="MPNet student dir.")
    cmp.add_argument("--targets", type=Path, required=True, help="Its MPNet shard dir.")
    cmp.add_argument("--minilm-student", type=Path, help="A MiniLM student, measured alongside.")
    cmp.add_argument("--minilm-targets", type=Path, help="Its shard dir (held-out kNN rows).")
    cmp.add_argument("--onnx", type=Path, help="The MPNet student's ONNX export (pipeline export).")
    cmp.add_argument("--lines", type=int, default=5000, help="nltk_brown lines timed.")
    cmp.add_argument("--name", default="teachers", help="bench/results/NAME.json")
    ranks = commands.add_parser("wordpieces", help="Measure rank-k word-piece projections.")
    ranks.add_argument("--targets", type=Path, required=True, help="An MPNet shard dir.")
    glue_cmd = commands.add_parser("glue", help="Write bench/results/teachers_glue.json.")
    glue_cmd.add_argument("--student", type=Path, required=True, help="MPNet student dir.")
    glue_cmd.add_argument("--targets", type=Path, required=True, help="Its MPNet shard dir.")
    glue_cmd.add_argument("--minilm", type=Path, default=RESULTS / "glue.json", help="Its rows.")
    args, glue_options = parser.parse_known_args()
    if args.command == "glue":
        glue(args.student, args.targets, glue_options, args.minilm)
    elif glue_options:
        parser.error(f"unrecognized arguments: {' '.join(glue_options)}")
    elif args.command == "encode":
        encode(args.lines, args.shard_size)
    elif args.command == "wordpieces":
        wordpiece_ranks(args.targets, (64, 128, 256, 384, 768))
    else:
        students = {"all-mpnet-base-v2": (args.student, args.targets)}
        if args.minilm_student:
            students["all-MiniLM-L6-v2"] = (args.minilm_student, args.minilm_targets)
        exports = {"all-mpnet-base-v2": args.onnx} if args.onnx else {}
        compare(students, args.lines, args.name, exports)


if __name__ == "__main__":
    main()
