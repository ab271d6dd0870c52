"""Stage-2 training in float32 vs bf16 autocast: sentences/s and validation cosine, one run.

Trains the same student (same shards, seed and options) for ``--steps`` steps in each precision,
alternating the two ``--repeats`` times so load from elsewhere hits both alike; each keeps its
best training rate (from ``metrics.jsonl``). The validation cosine after the last step is the
same in every repeat of a precision (same seed), so the quality gap is exact. bf16 runs only on
hardware with native bf16. Writes bench/results/train_precision.json.

    python -m bench.train_precision --targets runs/shards --steps 150 [-- more train options]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import write_result
from data.precision import cpu_has_native_bf16
from stage2_train.layout import METRICS


def train_once(targets: Path, precision: str, steps: int, extra: list[str]) -> dict:
    """One fresh training run; its best logged rate and its final validation scores."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "student"
        command = [
            sys.executable, "-m", "pipeline", "train", "--targets", str(targets), "--out",
            str(out), "--max-steps", str(steps), "--val-every", str(steps), "--checkpoint-every",
            str(steps), "--precision", precision, "--no-progress", *extra,
        ]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        records = [json.loads(line) for line in (out / METRICS).open()]
    rates = [r["sentences_per_s"] for r in records if "sentences_per_s" in r]
    final = [r for r in records if "val_cosine" in r][-1]
    return {
        "sentences_per_second": max(rates),
        "val_cosine": final["val_cosine"],
        "sts_spearman": final.get("sts_spearman"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="More `pipeline train` args.")
    args = parser.parse_args()
    extra = [a for a in args.train_args if a != "--"]
    precisions = ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]
    runs: dict[str, list[dict]] = {p: [] for p in precisions}
    for _ in range(args.repeats):
        for precision in precisions:
            runs[precision].append(train_once(args.targets, precision, args.steps, extra))
    best = {
        p: {**runs[p][0], "sentences_per_second": max(r["sentences_per_second"] for r in runs[p])}
        for p in precisions
    }
    payload = {"steps": args.steps, "train_args": extra, "runs": runs, "best": best}
    if "bf16" in best:
        payload["bf16_speedup"] = (
            best["bf16"]["sentences_per_second"] / best["fp32"]["sentences_per_second"]
        )
        payload["bf16_val_cosine_delta"] = best["bf16"]["val_cosine"] - best["fp32"]["val_cosine"]
    write_result("train_precision", payload)


if __name__ == "__main__":
    main()
