"""One-shot GPU check: encode, train, embed and one GLUE task on ``--device``, with throughput.

    python -m bench.gpu_check                 # on a CUDA machine; well under 10 minutes on one GPU
    python -m bench.gpu_check --device cpu --lines 60 --steps 40 ...   # the test suite's smoke run

Each step runs the real CLI (``python -m pipeline``) in a subprocess, as a user would:

1. ``pipeline encode`` of ``--lines`` corpus lines on the device (``--precision auto``: bf16 on
   a GPU); the stored vectors of the first ``--check-lines`` lines are compared with the
   float32 teacher on the CPU (every cosine >= 0.999);
2. ``pipeline train`` for ``--steps`` steps on those shards (every logged loss finite, the last
   below the first);
3. embedding the corpus lines with the new student on the device (stage 3's encoder, the code
   path of ``pipeline eval``/``index``), timed;
4. ``pipeline eval glue`` on one task (``--glue-task``, RTE by default) with that student.

Writes the device's name, each step's time and throughput and each check to ``--out``
(bench/results/gpu_check.json by default) and exits 1 if any check failed. Encode and embed also
carry a roofline figure: achieved GFLOP/s of the forward pass against a matrix-product probe of
the same precision on the same device (``bench/roofline.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from bench.common import RESULTS, SHARED_DATA, corpus_lines, write_result
from bench.roofline import matmul_peak, roofline, student_flops, teacher_flops
from stage2_train.layout import METRICS

MIN_COSINE = 0.999


def pipeline(*args: Any) -> tuple[float, str]:
    """Run ``python -m pipeline ARGS``; return its seconds and output, or stop with its last
    output line."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"gpu_check: pipeline {args[0]} failed: {last[0]}")
    return time.perf_counter() - start, done.stdout


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    import platform

    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def check_encode(args: argparse.Namespace, work: Path, corpus: Path, lines: list[str]) -> dict:
    """Encode on the device; compare the first stored vectors with the CPU float32 teacher."""
    from data.shards import ShardStore, read_shard
    from stage1_encode.teacher import Teacher

    shards = work / "shards"
    teacher = ["--teacher", args.teacher] if args.teacher else []
    seconds, output = pipeline("encode", corpus, "--out", shards, "--device", args.device, *teacher)
    encoding = float(re.search(r"in ([0-9.]+)s", output).group(1))  # the teacher's own time
    encoding = encoding or seconds  # printed to 0.1 s: a tiny smoke run rounds to 0, use the wall
    store = ShardStore(shards)
    first = read_shard(store.paths[0])
    rows = min(args.check_lines, len(first.text))
    reference = Teacher(args.teacher, device="cpu", precision="fp32")
    reference.pack_for_inference()
    want = reference.encode(first.text[:rows])
    got = np.asarray(first.embedding[:rows], dtype=np.float32)
    cosine = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    precision = store.manifest["teacher"]["precision"]
    lengths = [len(ids) for ids in reference.tokenize(lines)]
    flops = teacher_flops(lengths, reference.model.config)
    return {
        "seconds": round(seconds, 2),
        "encode_seconds": encoding,
        "sentences_per_second": round(len(lines) / encoding, 1),
        "precision": precision,
        "roofline": roofline(flops, encoding, matmul_peak(precision, device=args.device)["peak"]),
        "compared_lines": rows,
        "min_cosine_vs_cpu_fp32": float(cosine.min()),
        "ok": bool(cosine.min() >= MIN_COSINE),
    }


def check_train(args: argparse.Namespace, work: Path) -> dict:
    """Train for ``--steps`` steps; the logged losses must be finite and end lower."""
    student = work / "student"
    seconds, _ = pipeline(
        "train", "--targets", work / "shards", "--out", student, "--device", args.device,
        "--max-steps", args.steps, "--val-every", args.steps, "--checkpoint-every", args.steps,
        "--hidden-size", args.hidden_size, "--batch-size", args.batch_size, "--no-progress",
    )  # fmt: skip
    records = [json.loads(line) for line in (student / METRICS).open()]
    losses = [r["loss"] for r in records if "loss" in r]
    rates = [r["sentences_per_s"] for r in records if "sentences_per_s" in r]
    finite = bool(losses) and all(math.isfinite(x) for x in losses)
    return {
        "seconds": round(seconds, 2),
        "steps": args.steps,
        "sentences_per_second": round(float(np.mean(rates)), 1) if rates else None,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "ok": finite and len(losses) >= 2 and losses[-1] < losses[0],
    }


def check_embed(args: argparse.Namespace, work: Path, lines: list[str]) -> dict:
    """Embed the corpus lines with the trained student on the device, as stage 3 does."""
    from data.precision import resolve_precision
    from data.progress import encode_timed
    from stage3_eval.encoders import load_encoder

    precision = resolve_precision("auto", torch.device(args.device), "student")
    encoder = load_encoder(str(work / "student"), device=args.device, precision=precision)
    encoder.encode(lines[:64])  # warm-up
    vectors, seconds = encode_timed(encoder.encode, lines)
    model = encoder.model
    flops = student_flops([len(ids) for ids in model.tokenize(lines)], model.config)
    return {
        "seconds": round(seconds, 2),
        "sentences_per_second": round(len(lines) / seconds, 1),
        "precision": precision,
        "roofline": roofline(flops, seconds, matmul_peak(precision, device=args.device)["peak"]),
        "ok": bool(np.isfinite(vectors).all()) and vectors.shape[0] == len(lines),
    }


def check_glue(args: argparse.Namespace, work: Path) -> dict:
    """One GLUE task fine-tuned from the student; its dev score must be a number."""
    out = work / "glue"
    caps = []
    if args.max_train_examples:
        caps += ["--max-train-examples", args.max_train_examples]
    if args.max_eval_examples:
        caps += ["--max-eval-examples", args.max_eval_examples]
    seconds, _ = pipeline(
        "eval", "glue", "--model", work / "student", "--tasks", args.glue_task, "--data-dir",
        args.glue_dir, "--out", out, "--device", args.device, "--no-predict-test", *caps,
    )  # fmt: skip
    entries = json.loads((out / "results.json").read_text(encoding="utf-8"))
    scores = [{key: e[key] for key in ("task", "metric", "value")} for e in entries]
    return {
        "seconds": round(seconds, 2),
        "task": args.glue_task,
        "scores": scores,
        "ok": bool(scores) and all(math.isfinite(s["value"]) for s in scores),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (smoke runs).")
    parser.add_argument("--teacher", default=None, help="[default: the embedded teacher]")
    parser.add_argument("--corpus", type=Path, default=SHARED_DATA / "corpus/nltk_brown.txt.gz")
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--check-lines", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--glue-task", default="rte")
    parser.add_argument("--glue-dir", type=Path, default=SHARED_DATA / "glue")
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--max-eval-examples", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu_check.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; pass --device cpu for a smoke run")
    lines = corpus_lines(args.corpus, args.lines)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = work / "corpus.txt"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        start = time.perf_counter()
        steps = {"encode": check_encode(args, work, corpus, lines)}
        steps["train"] = check_train(args, work)
        steps["embed"] = check_embed(args, work, lines)
        steps["glue"] = check_glue(args, work)
        total = time.perf_counter() - start
    passed = all(step["ok"] for step in steps.values())
    payload = {
        "device": args.device,
        "device_name": device_name(args.device),
        "lines": len(lines),
        "total_seconds": round(total, 1),
        "steps": steps,
        "passed": passed,
    }
    write_result(args.out.stem, payload, folder=args.out.parent)
    if not passed:
        failed = ", ".join(name for name, step in steps.items() if not step["ok"])
        raise SystemExit(f"gpu_check: failed: {failed}")


if __name__ == "__main__":
    main()
