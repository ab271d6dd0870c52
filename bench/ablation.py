"""Issue 17's ablation: which objective, data and shape make a better student from one teacher.

Trains every variant of a fixed list (``VARIANTS``) with the same ``--time-budget`` and
``--threads`` into ``OUT/<variant>/`` and measures each: zero-shot STS-B dev Spearman (from the
run), validation cosine on the *default* shards' held-out rows (the same rows for every variant,
never trained on by any), frozen-probe GLUE scores (``pipeline eval glue --freeze-encoder``,
3 seeds), sentences seen, parameters, and inference sentences/s on the same corpus lines (one
process, same threads, interleaved rounds, best time). The rule of
``bench/ablation_select.py`` (written in docs/student.md before any numbers) picks the variant
to adopt. Writes bench/results/ablation.json and ablation.md.

Resumable: a finished variant is skipped, an interrupted one resumes from its checkpoint, the
shard sets of the data variants skip their complete shards and the probes their finished
(task, seed) pairs. The data variants need shards of their own, encoded with the default
shards' teacher and settings (``pipeline train --targets`` takes one shard directory):
``OUT/shards-dedup`` (``pipeline encode --dedup`` of the same corpus) and ``OUT/shards-wordnet``
(the corpus, then the WordNet glosses and examples of ``pipeline data wordnet``, in one
encoding, so the corpus keeps its line numbers and its held-out rows).

    python -m bench.ablation --targets runs/corpus-shards --time-budget 10 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from bench.ablation_select import DEFAULT, RULE, SPEED_TOLERANCE, select, summarise, table
from bench.common import RESULTS, ROOT, SHARED_DATA, corpus_lines, run_pipeline, write_result
from bench.glue_table import scores_by_model
from data.files import write_text
from data.manifest import read_manifest
from data.shards import ShardStore
from data.stream import scan_shards
from data.wordnet import WORDNET_DIR
from stage2_train import Student
from stage2_train.config import TrainConfig
from stage2_train.evaluate import validate
from stage2_train.layout import CONFIG_FILE

# Chosen from the terms' scales before any run: the cosine term starts near 1 and the MSE of
# normalised 384-d vectors near 0.005; the relational MSE starts near 0.02-0.05, so weight 1
# keeps it a clear but minor share of the loss; InfoNCE starts near ln(128) = 4.9 for a batch
# of 128, so 0.1 puts it at about half the cosine term.
RELATIONAL_WEIGHT = 1.0
CONTRASTIVE_WEIGHT = 0.1
# The default student when the ablation was designed (max+mean pooling; its result made attention
# the default since), spelled out so that a change of a default does not move the base.
SHAPE = ("--layers", "1", "--hidden-size", "256", "--embed-proj", "128", "--pooling", "max_mean")
PROBE_TASKS = "sst2,cola,mrpc,rte"


@dataclass(frozen=True)
class Variant:
    name: str
    group: str  # what it varies: objective, data or shape
    data: str  # which shards: corpus, wordnet or dedup
    options: tuple[str, ...] = ()  # `pipeline train` options on top of SHAPE


VARIANTS = (
    Variant(DEFAULT, "baseline", "corpus"),
    Variant("relational", "objective", "corpus", ("--relational-weight", str(RELATIONAL_WEIGHT))),
    Variant(
        "contrastive", "objective", "corpus", ("--contrastive-weight", str(CONTRASTIVE_WEIGHT))
    ),
    Variant("wordnet", "data", "wordnet"),
    Variant("dedup", "data", "dedup"),
    Variant("layers-2", "shape", "corpus", ("--layers", "2")),
    Variant("hidden-384", "shape", "corpus", ("--hidden-size", "384")),
    Variant("attention", "shape", "corpus", ("--pooling", "attention")),
)


# ------------------------------------------------------------------------------------ shards


def shard_dirs(args: argparse.Namespace, needed: set[str]) -> dict[str, Path]:
    """The shard directory of every data variant in ``needed``, encoded if not complete."""
    dirs = {"corpus": args.targets}
    if "dedup" in needed:
        dirs["dedup"] = encode_like_default(args, "shards-dedup", [args.corpus], dedup=True)
    if "wordnet" in needed:
        glosses = args.out / "wordnet.txt"
        if not glosses.is_file():
            wordnet = ["--wordnet-dir", str(args.wordnet_dir)]
            run_pipeline("data", "wordnet", "--out", str(glosses), *wordnet)
        dirs["wordnet"] = encode_like_default(args, "shards-wordnet", [args.corpus, glosses])
    return dirs


def encode_like_default(
    args: argparse.Namespace, name: str, corpus: list[Path], dedup: bool = False
) -> Path:
    """``pipeline encode`` with the default shards' teacher and settings into ``OUT/name``."""
    base = read_manifest(args.targets)
    teacher = base["teacher"]
    out = args.out / name
    run_pipeline(
        "encode",
        *map(str, corpus),
        "--out",
        str(out),
        "--teacher",
        args.teacher or teacher["name_or_path"],
        "--pooling",
        teacher["pooling"],
        "--normalize" if teacher["normalize"] else "--no-normalize",
        "--max-length",
        str(teacher["max_length"]),
        "--precision",
        teacher.get("precision", "fp32"),
        "--dtype",
        base["dtype"],
        "--shard-size",
        str(base["shard_size"]),
        *(["--dedup"] if dedup else []),
        "--reuse",  # the default shards' texts need no second teacher pass
        str(args.targets),
    )
    check_same_source(base, read_manifest(out), out, same_corpus=dedup)
    return out


def check_same_source(base: dict, made: dict, out: Path, same_corpus: bool) -> None:
    """The variant's shards come from the default's teacher and start with the same corpus
    files (``same_corpus``: are exactly that corpus)."""
    if made["teacher"]["weights_sha256"] != base["teacher"]["weights_sha256"]:
        raise SystemExit(f"{out}: encoded by another teacher than {base['teacher']}")
    names = [Path(p).name for p in base["corpus"]["paths"]]
    if [Path(p).name for p in made["corpus"]["paths"]][: len(names)] != names:
        raise SystemExit(f"{out}: its corpus does not start with the default's files {names}")
    if same_corpus and made["corpus"]["sha256"] != base["corpus"]["sha256"]:
        raise SystemExit(f"{out}: another corpus than the default shards' (sha256 differs)")


# ---------------------------------------------------------------------------------- training


def finished(out: Path) -> bool:
    """A run that saved its student (``config.json`` with the training summary)."""
    path = out / CONFIG_FILE
    return path.is_file() and "training" in json.loads(path.read_text(encoding="utf-8"))


def train_variant(args: argparse.Namespace, variant: Variant, targets: Path) -> Path:
    """Train (or resume) one variant; a finished one is skipped."""
    out = args.out / variant.name
    if finished(out):
        print(f"{variant.name}: finished in {out} (skipped)", flush=True)
        return out
    # One budget ends every run: the step budget when given (load-independent), else the time box.
    budget = (
        ["--max-steps", str(args.max_steps)]
        if args.max_steps
        else ["--time-budget", str(args.time_budget)]
    )
    run_pipeline(
        "train",
        "--targets",
        str(targets),
        "--out",
        str(out),
        *budget,
        "--threads",
        str(args.threads),
        "--epochs",
        "100",  # the budget, not the epochs, ends the run
        "--val-every",
        str(args.val_every),
        "--sts-dev",
        str(args.sts_dev),
        "--no-progress",
        *SHAPE,
        *variant.options,
    )
    return out


# -------------------------------------------------------------------------------- measuring


def probe(args: argparse.Namespace, name: str, student: Path) -> None:
    """Frozen-probe GLUE for one variant into the shared ``OUT/probe`` (resumable)."""
    argv = ["--model", str(student), "--name", name, "--freeze-encoder", "--tasks", args.tasks]
    argv += ["--data-dir", str(args.glue_dir), "--out", str(args.out / "probe")]
    argv += ["--seeds", str(args.seeds), "--device", "cpu", "--no-predict-test"]
    for option in ("max_train_examples", "max_eval_examples", "glue_epochs"):
        if getattr(args, option):
            flag = "--epochs" if option == "glue_epochs" else "--" + option.replace("_", "-")
            argv += [flag, str(getattr(args, option))]
    run_pipeline("eval", "glue", *argv)


def validation_cosines(
    targets: Path, students: dict[str, Student], first_shards: int | None = None
) -> dict[str, float | None]:
    """Cosine to the teacher on the default shards' held-out rows (of their first
    ``first_shards``), as training computes it (None when the split holds no row, as in a tiny
    smoke corpus)."""
    defaults = TrainConfig(targets=targets, out=Path())
    store = ShardStore(targets, first_shards=first_shards)
    _, held_out = scan_shards(store, defaults.val_fraction, defaults.val_rows)
    return {name: validate(student, held_out).get("cosine") for name, student in students.items()}


def inference_speeds(
    students: dict[str, Student], lines: list[str], rounds: int
) -> dict[str, float]:
    """Sentences/s of ``encode`` on ``lines``: every student once per round, best round kept.

    Each round starts one student later (``timing_order``): whichever is timed first in a
    round measured up to 18 % slower than the same shape timed later, so no variant may always
    go first."""
    best = dict.fromkeys(students, float("inf"))
    for student in students.values():
        student.encode(lines[:64])  # warm-up: first-call allocations
    for order in timing_order(list(students), rounds):
        for name in order:
            start = time.perf_counter()
            students[name].encode(lines)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(lines) / seconds for name, seconds in best.items()}


def timing_order(names: list[str], rounds: int) -> list[list[str]]:
    """``names`` once per round, round ``r`` rotated by ``r``: each leads a round in turn."""
    return [names[r % len(names) :] + names[: r % len(names)] for r in range(rounds)]


def measure(args: argparse.Namespace, variants: list[Variant]) -> dict[str, dict[str, Any]]:
    """Every variant's row: the run's summary, probes, validation cosine and speed."""
    students = {v.name: Student.from_pretrained(args.out / v.name).eval() for v in variants}
    for variant in variants:
        probe(args, variant.name, args.out / variant.name)
    probes, _ = scores_by_model(args.out / "probe")
    cosines = validation_cosines(args.targets, students)
    lines = corpus_lines(args.speed_corpus, args.speed_lines)
    speeds = inference_speeds(students, lines, args.speed_rounds)
    rows = {}
    for variant in variants:
        summary = json.loads((args.out / variant.name / CONFIG_FILE).read_text())["training"]
        row = {
            "group": variant.group,
            "data": variant.data,
            "options": [*SHAPE, *variant.options],
            "student": str(args.out / variant.name),
            "sts": summary["sts_dev"]["spearman"],
            "val_cosine": cosines[variant.name],
            "own_validation": summary["validation"],
            "probe": probes.get(variant.name, {}),
            "sentences_seen": summary["sentences_seen"],
            "steps": summary["steps"],
            "train_seconds": summary["train_seconds"],
            "parameters": summary["parameters"],
            "loss_spec": summary["loss_spec"],
            "sentences_per_second": speeds[variant.name],
        }
        rows[variant.name] = {**row, **summarise(row)}
    return rows


# ------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--targets", type=Path, default=ROOT / "runs" / "corpus-shards", help="Default shards.")
    add("--out", type=Path, default=ROOT / "runs" / "ablation")
    add("--time-budget", type=float, default=10.0, help="Minutes of training per variant.")
    add("--threads", type=int, default=2, help="torch threads: training, probes and speed.")
    add("--variants", default=",".join(v.name for v in VARIANTS), help="Subset (comma list).")
    add("--baseline", default=DEFAULT, help="The incumbent: speed floor and ties go to it.")
    add("--corpus", type=Path, default=SHARED_DATA / "corpus", help="The default shards' corpus.")
    add("--teacher", default=None, help="[default: the default shards' teacher]")
    add("--wordnet-dir", type=Path, default=WORDNET_DIR)
    add("--sts-dev", type=Path, default=SHARED_DATA / "glue" / "STS-B" / "dev.tsv")
    add("--glue-dir", type=Path, default=SHARED_DATA / "glue")
    add("--tasks", default=PROBE_TASKS, help="Frozen-probe GLUE tasks.")
    add("--seeds", type=int, default=3)
    add("--max-train-examples", type=int, default=None, help="Smoke runs only.")
    add("--max-eval-examples", type=int, default=None, help="Smoke runs only.")
    add("--glue-epochs", type=int, default=None, help="[default: per task]; smoke runs only.")
    add("--max-steps", type=int, default=None, help="The same step budget for every variant.")
    add("--val-every", type=int, default=1500)
    add("--speed-corpus", type=Path, default=SHARED_DATA / "corpus" / "nltk_brown.txt.gz")
    add("--speed-lines", type=int, default=5000)
    add("--speed-rounds", type=int, default=3)
    add("--results", type=Path, default=RESULTS, help="Where ablation.json and .md go.")
    return parser.parse_args()


def chosen_variants(names: str, baseline: str = DEFAULT) -> list[Variant]:
    wanted = {n.strip() for n in names.split(",") if n.strip()} | {DEFAULT, baseline}
    unknown = wanted - {v.name for v in VARIANTS}
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {[v.name for v in VARIANTS]}")
    return [v for v in VARIANTS if v.name in wanted]


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    variants = chosen_variants(args.variants, args.baseline)
    dirs = shard_dirs(args, {v.data for v in variants})
    for variant in variants:
        train_variant(args, variant, dirs[variant.data])
    rows = measure(args, variants)
    selection = select(rows, args.baseline)
    for name, row in rows.items():
        row["eligible"] = name in selection["eligible"]
    tasks = [t.strip() for t in args.tasks.split(",")]
    markdown = table(rows, tasks, selection["chosen"])
    write_result(
        "ablation",
        {
            "rule": RULE,
            "speed_tolerance": SPEED_TOLERANCE,
            "selection": selection,
            "time_budget_minutes": None if args.max_steps else args.time_budget,
            "max_steps": args.max_steps,
            "threads": args.threads,
            "shards": {k: str(v) for k, v in dirs.items()},
            "probe_tasks": tasks,
            "seeds": args.seeds,
            "max_train_examples": args.max_train_examples,
            "speed_lines": args.speed_lines,
            "variants": rows,
            "table": markdown,
        },
        folder=args.results,
    )
    write_text(args.results / "ablation.md", markdown)


if __name__ == "__main__":
    main()
