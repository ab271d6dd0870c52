"""Helpers shared by the benchmarks: running a command, corpus slices, result files.

A benchmark that measures a whole command runs it through :func:`run_pipeline`, the CLI in
this process exactly as a user types it (``python -m bench.common ARGS`` runs it the same way
in a child process, for peak memory). The speed benchmarks that time one step (stage 1's
encoding, the student's ``encode``) call that function directly instead, so that model
loading stays off the clock.
"""

from __future__ import annotations

import gzip
import json
import platform
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from data.files import write_text

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def run_pipeline(*args: str) -> None:
    """``pipeline ARGS`` in this process; a refused or failed command ends the benchmark."""
    import click

    from pipeline.cli import main

    print("$ pipeline " + " ".join(args), flush=True)
    try:
        status = main.main(list(args), standalone_mode=False)
    except click.ClickException as exc:
        raise SystemExit(f"pipeline {' '.join(args)}: {exc.format_message()}") from None
    if status:  # a command that called ctx.exit(status)
        raise SystemExit(f"pipeline {' '.join(args)} failed with status {status}")


def corpus_lines(name: str | Path = "nltk_brown.txt.gz", count: int = 5000) -> list[str]:
    """The first ``count`` non-blank lines of a corpus file (.txt or .txt.gz): a path, or a
    file name in ../shared/data/corpus."""
    path = Path(name) if isinstance(name, Path) else SHARED_DATA / "corpus" / name
    if not path.is_file():
        raise SystemExit(f"benchmark data missing: {path} (needs ../shared/data)")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return list(islice((line.strip() for line in handle if line.strip()), count))


def write_result(name: str, payload: dict[str, Any], folder: Path = RESULTS) -> Path:
    """Write ``<folder>/<name>.json`` (bench/results by default) with the machine it ran on."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
        },
        **payload,
    }
    path = folder / f"{name}.json"
    write_text(path, json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return path


if __name__ == "__main__":
    run_pipeline(*sys.argv[1:])
