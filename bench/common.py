"""Helpers shared by the benchmarks: corpus slices, result files, peak memory."""

from __future__ import annotations

import gzip
import json
import platform
import time
from itertools import islice
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


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
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(payload, indent=2))
    return path
