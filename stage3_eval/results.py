"""Contract 3: every evaluation writes ``results.json`` plus a markdown table beside it.

One entry per (task, metric, model, seed), so runs can be merged, compared and plotted by
``pipeline report`` without knowing which command produced them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from data import files

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
RESULTS_LOCK = ".results.lock"  # held while results.json is read, merged and rewritten


@dataclass
class Result:
    task: str
    metric: str
    value: float
    model: str
    data: str
    seed: int | None = None
    seconds: float | None = None
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple:
        return (self.task, self.metric, self.model, self.seed)


def load_results(path: Path) -> list[Result]:
    """Entries of a ``results.json`` file (or of the one inside a directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_JSON
    if not path.is_file():
        return []
    return [Result(**entry) for entry in json.loads(path.read_text(encoding="utf-8"))]


def write_results(out_dir: Path, results: list[Result]) -> Path:
    """Merge ``results`` into ``out_dir/results.json`` (same key replaces) and rewrite the table."""
    out_dir = Path(out_dir)
    with files.os_errors(out_dir, "cannot create"):
        out_dir.mkdir(parents=True, exist_ok=True)
    with files.exclusive_lock(out_dir, RESULTS_LOCK):  # runs into one folder merge, not clobber
        merged = {r.key(): r for r in load_results(out_dir)}
        merged.update({r.key(): r for r in results})
        entries = sorted(merged.values(), key=lambda r: (r.task, r.model, r.metric, r.seed or 0))
        path = out_dir / RESULTS_JSON
        files.write_text(path, json.dumps([asdict(r) for r in entries], indent=2) + "\n")
        files.write_text(out_dir / RESULTS_MD, markdown_table(entries))
    return path


def markdown_table(results: list[Result]) -> str:
    lines = ["| task | metric | model | seed | value | seconds |", "|---|---|---|---|---|---|"]
    for r in results:
        seconds = "" if r.seconds is None else f"{r.seconds:.1f}"
        seed = "" if r.seed is None else str(r.seed)
        lines.append(f"| {r.task} | {r.metric} | {r.model} | {seed} | {r.value:.4f} | {seconds} |")
    return "\n".join(lines) + "\n"
