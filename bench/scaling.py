"""Issue 30's data-scaling curve: one teacher, one recipe, more unlabeled texts.

Every point trains the default student (spelled out as the ablation's shape with attention
pooling, so a later change of a default does not move the curve) from one shard directory,
the corpus then corpus-large (``bench/scale_encode.py``), on a prefix of its shards
(``--first-shards``): prefixes of a uniform shuffle are uniform samples, and the held-out rows of
a prefix are a subset of every longer prefix's, never trained on by any point. The recipe is
``make bench-full``'s (13,454 steps of 128 on one thread, validation every 1,500 steps), fixed
before any point was trained; one more point gives the largest corpus three times the steps.

Per point: validation cosine to the teacher on the 170k prefix's held-out rows (the same rows
for every point), zero-shot STS-B dev Spearman and its share of the teacher's, the frozen
probes of the ablation (``pipeline eval glue --freeze-encoder``, 3 seeds), kNN recall@10 of
the teacher's neighbours on the same held-out rows, training wall time. Writes
bench/results/scaling.json (the points finished so far) and docs/scaling.png (quality against
texts, log x).

Resumable: a finished point is skipped, an interrupted one resumes from its checkpoint, the
probes skip finished (task, seed) pairs.

    python -m bench.scaling --targets runs/scale/large-shards [--points 170k,1.7M]
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.ablation import PROBE_TASKS, SHAPE, finished, probe, validation_cosines
from bench.ablation_select import summarise
from bench.common import RESULTS, ROOT, SHARED_DATA, run_pipeline, write_result
from bench.encode_memory import run_child
from bench.glue_table import scores_by_model
from bench.train_quality import TEACHER_STS_B_DEV
from data.files import write_text
from data.manifest import read_manifest
from stage2_train import Student
from stage2_train.layout import CONFIG_FILE, METRICS

DEFAULT_STEPS = 13_454  # make bench-full's STUDENT_STEPS
COMMON_SHARDS = 17  # the 170k prefix: its held-out rows are every point's validation rows
RECIPE = ("--threads", "1", "--epochs", "100", "--val-every", "1500", "--no-progress")


@dataclass(frozen=True)
class Point:
    name: str
    shards: int | None  # a prefix of the shard directory; None: all of it
    steps: int


POINTS = (
    Point("170k", COMMON_SHARDS, DEFAULT_STEPS),
    Point("500k", 50, DEFAULT_STEPS),
    Point("1.7M", None, DEFAULT_STEPS),
    Point("1.7M-3x", None, 3 * DEFAULT_STEPS),
)


def train_point(args: argparse.Namespace, point: Point) -> Path:
    out = args.out / point.name
    if finished(out):
        print(f"{point.name}: finished in {out} (skipped)", flush=True)
        return out
    prefix = [] if point.shards is None else ["--first-shards", str(point.shards)]
    argv = [
        "train",
        "--targets",
        str(args.targets),
        "--out",
        str(out),
        *prefix,
        "--max-steps",
        str(point.steps),
        "--sts-dev",
        str(args.sts_dev),
        *RECIPE,
        *SHAPE,
        "--pooling",
        "attention",
    ]
    # A child process, so that its peak RSS is the training's alone (one record per attempt).
    attempt = run_child(argv, every=5.0)
    memory = memory_file(args, point)
    earlier = json.loads(memory.read_text()) if memory.is_file() else []
    write_text(memory, json.dumps([*earlier, attempt], indent=2) + "\n")
    return out


def memory_file(args: argparse.Namespace, point: Point) -> Path:
    return args.out / f"{point.name}.memory.json"


def knn_recall(args: argparse.Namespace, point: Point, student: Path) -> dict[str, float]:
    """recall@k and mean cosine on the common held-out rows (``pipeline eval probe``)."""
    out = args.out / "knn" / point.name
    results = out / "results.json"
    if not results.is_file():
        run_pipeline(
            "eval", "probe", "--model", str(student), "--targets", str(args.targets),
            "--first-shards", str(COMMON_SHARDS), "--out", str(out), "--device", "cpu",
        )  # fmt: skip
    entries = json.loads(results.read_text(encoding="utf-8"))
    return {e["metric"]: e["value"] for e in entries if e["task"] == "knn-probe"}


def measure(args: argparse.Namespace, points: list[Point]) -> dict[str, dict[str, Any]]:
    done = [p for p in points if finished(args.out / p.name)]
    students = {p.name: Student.from_pretrained(args.out / p.name).eval() for p in done}
    cosines = validation_cosines(args.targets, students, first_shards=COMMON_SHARDS)
    rows = {}
    for point in done:
        student = args.out / point.name
        if not args.skip_probes:
            probe(args, point.name, student)
        summary = json.loads((student / CONFIG_FILE).read_text(encoding="utf-8"))["training"]
        sts = summary["sts_dev"]["spearman"]
        row = {
            "texts": summary["corpus_rows"],
            "shards_used": summary.get("shards_used"),
            "steps": summary["steps"],
            "sentences_seen": summary["sentences_seen"],
            "passes_over_texts": summary["sentences_seen"] / summary["corpus_rows"],
            "train_seconds": summary["train_seconds"],
            "train_peak_rss_mib": train_peak_rss(args, point),
            "data_wait_share_mean": data_wait_share(student),
            "val_cosine_common": cosines[point.name],
            "own_validation": summary["validation"],
            "sts": sts,
            "sts_share_of_teacher": sts / args.teacher_sts,
            "knn": knn_recall(args, point, student),
            "curve": curve(student),
        }
        row["probe"] = scores_by_model(args.out / "probe")[0].get(point.name, {})
        rows[point.name] = {**row, **summarise(row)}
    return rows


def train_peak_rss(args: argparse.Namespace, point: Point) -> float | None:
    """The largest peak RSS over the point's training attempts (None: trained elsewhere)."""
    memory = memory_file(args, point)
    attempts = json.loads(memory.read_text()) if memory.is_file() else []
    return max((a["peak_rss_mib"] for a in attempts), default=None)


def data_wait_share(student: Path) -> float | None:
    records = [json.loads(x) for x in (student / METRICS).read_text().splitlines()]
    waits = [r["data_wait_share"] for r in records if "data_wait_share" in r]
    return sum(waits) / len(waits) if waits else None


def curve(student: Path) -> list[dict[str, Any]]:
    records = [json.loads(x) for x in (student / METRICS).read_text().splitlines()]
    keys = ("step", "val_cosine", "sts_spearman")
    return [{k: r.get(k) for k in keys} for r in records if "val_cosine" in r]


def plot(rows: dict[str, dict[str, Any]], path: Path, teacher_sts: float) -> None:
    """STS-B share of the teacher and validation cosine against texts (log x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for axis, key, label in (
        (left, "sts_share_of_teacher", f"STS-B dev, share of the teacher ({teacher_sts:.3f})"),
        (right, "val_cosine_common", "validation cosine to the teacher"),
    ):
        for steps in sorted({r["steps"] for r in rows.values()}):
            same = sorted((r["texts"], r[key]) for r in rows.values() if r["steps"] == steps)
            axis.plot(*zip(*same, strict=True), "o-", label=f"{steps:,} steps")
        axis.set_xscale("log")
        axis.set_xlabel("unlabeled texts")
        axis.set_title(label, fontsize=9)
        axis.grid(alpha=0.3)
    left.axhline(0.98, color="grey", linestyle="--", linewidth=0.8)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--targets", type=Path, default=ROOT / "runs" / "scale" / "large-shards")
    add("--out", type=Path, default=ROOT / "runs" / "scale" / "students")
    add("--points", default=",".join(p.name for p in POINTS), help="Subset (comma list).")
    add("--sts-dev", type=Path, default=SHARED_DATA / "glue" / "STS-B" / "dev.tsv")
    add("--teacher-sts", type=float, default=TEACHER_STS_B_DEV)
    add("--glue-dir", type=Path, default=SHARED_DATA / "glue")
    add("--tasks", default=PROBE_TASKS, help="Frozen-probe GLUE tasks.")
    add("--seeds", type=int, default=3)
    add("--train-only", action="store_true", help="Train the points, measure nothing yet.")
    add("--skip-probes", action="store_true", help="Leave the GLUE probes for a later run.")
    add("--plot", type=Path, default=ROOT / "docs" / "scaling.png")
    args = parser.parse_args()
    # bench.ablation.probe's smoke-run options stay off: the curve probes full training sets.
    args.max_train_examples = args.max_eval_examples = args.glue_epochs = None
    return args


def main() -> None:
    args = parse_args()
    wanted = {n.strip() for n in args.points.split(",")}
    points = [p for p in POINTS if p.name in wanted]
    if unknown := wanted - {p.name for p in POINTS}:
        raise SystemExit(f"unknown points {sorted(unknown)}; known: {[p.name for p in POINTS]}")
    for point in points:
        train_point(args, point)
    if args.train_only:
        return
    rows = measure(args, list(POINTS))
    write_result(
        "scaling",
        {
            "targets": str(args.targets),
            "shards_total": len(read_manifest(args.targets)["shards"]),
            "recipe": [*RECIPE, *SHAPE, "--pooling", "attention"],
            "common_validation_shards": COMMON_SHARDS,
            "teacher_sts_b_dev_spearman": args.teacher_sts,
            "target_sts_share": 0.98,
            "points_planned": [p.__dict__ for p in POINTS],
            "glue_probes_run": not args.skip_probes,
            "points": rows,
        },
        folder=RESULTS,
    )
    if rows:
        plot(rows, args.plot, args.teacher_sts)


if __name__ == "__main__":
    main()
