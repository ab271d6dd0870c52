"""Stage-2 quality and training throughput: one `pipeline train` run within a time or step budget.

Trains (or resumes, if --out already holds the same run) a student on a shard directory with
zero-shot STS-B dev Spearman logged at every evaluation, then summarises the run from its
``metrics.jsonl`` and ``config.json``: validation cosine and MSE, STS-B Spearman against the
teacher's, training sentences/s and the share of step time spent waiting for data. Writes
bench/results/train_quality.json.

    python -m bench.train_quality --targets runs/corpus-shards --out runs/student \
        --time-budget 25 [-- any further `pipeline train` options]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import SHARED_DATA, run_pipeline, write_result
from stage2_train.layout import CONFIG_FILE, METRICS

TEACHER_STS_B_DEV = 0.867  # all-MiniLM-L6-v2, measured by bench/student_speed.py and stage 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=Path, default=Path("runs/corpus-shards"))
    parser.add_argument("--out", type=Path, default=Path("runs/student"))
    parser.add_argument("--time-budget", type=float, default=25.0, help="Minutes of training.")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="A step budget instead of the time budget: with `-- --threads 1` the same student "
        "on every machine of this kind (the GLUE ledger's student rows stay valid).",
    )
    parser.add_argument("--sts-dev", type=Path, default=SHARED_DATA / "glue/STS-B/dev.tsv")
    parser.add_argument("--teacher-sts", type=float, default=TEACHER_STS_B_DEV)
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="More `pipeline train` args.")
    args = parser.parse_args()
    extra = [a for a in args.train_args if a != "--"]
    command = [
        "train",
        "--targets",
        str(args.targets),
        "--out",
        str(args.out),
        *(
            ["--max-steps", str(args.max_steps)]
            if args.max_steps
            else ["--time-budget", str(args.time_budget)]
        ),
        "--sts-dev",
        str(args.sts_dev),
        *extra,
    ]
    run_pipeline(*command)

    summary = json.loads((args.out / CONFIG_FILE).read_text())["training"]
    records = [json.loads(x) for x in (args.out / METRICS).read_text().splitlines()]
    rates = [r["sentences_per_s"] for r in records if "sentences_per_s" in r]
    waits = [r["data_wait_share"] for r in records if "data_wait_share" in r]
    evals = [r for r in records if "val_cosine" in r]
    sts = summary.get("sts_dev", {}).get("spearman")
    write_result(
        "train_quality",
        {
            "command": "pipeline " + " ".join(command),
            "parameters": summary["parameters"],
            "corpus_rows": summary["corpus_rows"],
            "steps": summary["steps"],
            "sentences_seen": summary["sentences_seen"],
            "train_seconds": summary["train_seconds"],
            "train_sentences_per_second": summary["sentences_per_second"],
            "train_sentences_per_second_median_window": statistics.median(rates) if rates else None,
            "data_wait_share_mean": statistics.fmean(waits) if waits else None,
            "validation": summary["validation"],
            "sts_b_dev_spearman": sts,
            "teacher_sts_b_dev_spearman": args.teacher_sts,
            "sts_share_of_teacher": None if sts is None else sts / args.teacher_sts,
            "curve": [{k: r.get(k) for k in ("step", "val_cosine", "sts_spearman")} for r in evals],
            "targets": {
                "sts_share": 0.95,
                "train_sentences_per_second": 300,
                "data_wait_share": 0.10,
            },
        },
    )


if __name__ == "__main__":
    main()
