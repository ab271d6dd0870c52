"""Contract 3: every evaluation writes ``results.json`` plus a markdown table beside it.

One entry per (task, metric, model, seed), so runs can be merged, compared and plotted by
``pipeline report`` without knowing which command produced them. A ``results.json`` is checked
entry by entry where it is read, and a results folder is checked before an evaluation starts
(``check_results_folder``): a foreign or damaged file is refused in one line before any model
is loaded, and a ``results.md`` is replaced only when it is a table this module wrote.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from data import files
from data.errors import PipelineError

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
RESULTS_LOCK = ".results.lock"  # held while results.json is read, merged and rewritten
WRITER = "`pipeline eval`"
# The table's first line; every results.md this module ever wrote has it, so it is its mark.
TABLE_HEAD = "| task | metric | model | seed | value | seconds |"


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
    """Entries of a ``results.json`` file (or of the one inside a directory), each checked."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_JSON
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PipelineError(f"{path}: not a results file ({exc}); use another --out") from None
    if not isinstance(entries, list):
        raise PipelineError(
            f"{path}: not a results file (a JSON list of entries expected, found "
            f"{type(entries).__name__}); use another --out"
        )
    return [_entry(path, number, entry) for number, entry in enumerate(entries, start=1)]


_FIELDS = {f.name for f in fields(Result)}
_REQUIRED = ("task", "metric", "value", "model", "data")


def _entry(path: Path, number: int, entry: Any) -> Result:
    """One entry of ``path`` as a ``Result``, or one line naming the file, the entry and why."""
    if not isinstance(entry, dict):
        raise PipelineError(f"{path}: entry {number} is not an object; not a results file")
    missing = [key for key in _REQUIRED if key not in entry]
    unknown = sorted(set(entry) - _FIELDS)
    if missing or unknown:
        problem = f"no {missing[0]!r}" if missing else f"unknown key {unknown[0]!r}"
        raise PipelineError(f"{path}: entry {number}: {problem}; not a results file")
    result = Result(**entry)
    problem = check_result(result)
    if problem:
        raise PipelineError(f"{path}: entry {number} ({result.task}, {result.metric}): {problem}")
    return result


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_result(r: Result) -> str | None:
    """What makes an entry impossible to tabulate or plot, or None: a results file holds only
    finite numbers, so a NaN correlation is refused instead of being recorded as a score."""
    if not all(isinstance(t, str) for t in (r.task, r.metric, r.model, r.data, r.time)):
        return "task, metric, model, data and time must be strings"
    if not _is_number(r.value):
        return f"value {r.value!r} is not a number"
    if not math.isfinite(r.value):
        return f"value {r.value!r} is not a finite number"
    if not (r.seed is None or (isinstance(r.seed, int) and not isinstance(r.seed, bool))):
        return f"seed {r.seed!r} is not an integer"
    if not (r.seconds is None or _is_number(r.seconds)):
        return f"seconds {r.seconds!r} is not a number"
    if not isinstance(r.extra, dict):
        return "extra is not an object"
    return None


def check_results_folder(out_dir: Path, tables: dict[str, str] | None = None) -> None:
    """Refuse, before any work, an ``--out`` whose results files cannot be merged or replaced:
    a file in its place, a ``results.json`` that is not a results file, or a ``results.md`` (or
    one of ``tables``: file name -> mark) that this tool did not write."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PipelineError(f"{out_dir}: exists and is not a folder; --out names a results folder")
    load_results(out_dir)
    for name, mark in {RESULTS_MD: TABLE_HEAD, **(tables or {})}.items():
        files.require_made_here(out_dir / name, mark, WRITER)


def write_results(out_dir: Path, results: list[Result]) -> Path:
    """Merge ``results`` into ``out_dir/results.json`` (same key replaces) and rewrite the table."""
    out_dir = Path(out_dir)
    for r in results:  # a computation that produced no number is a bug, never a score
        problem = check_result(r)
        if problem:
            raise PipelineError(f"{r.task} {r.metric} of {r.model}: {problem}; not recorded")
    with files.os_errors(out_dir, "cannot create"):
        out_dir.mkdir(parents=True, exist_ok=True)
    with files.exclusive_lock(out_dir, RESULTS_LOCK):  # runs into one folder merge, not clobber
        check_results_folder(out_dir)
        merged = {r.key(): r for r in load_results(out_dir)}
        merged.update({r.key(): r for r in results})
        entries = sorted(merged.values(), key=lambda r: (r.task, r.model, r.metric, r.seed or 0))
        path = out_dir / RESULTS_JSON
        files.write_text(path, json.dumps([asdict(r) for r in entries], indent=2) + "\n")
        files.write_text(out_dir / RESULTS_MD, markdown_table(entries))
    return path


def markdown_table(results: list[Result]) -> str:
    lines = [TABLE_HEAD, "|---|---|---|---|---|---|"]
    for r in results:
        seconds = "" if r.seconds is None else f"{r.seconds:.1f}"
        seed = "" if r.seed is None else str(r.seed)
        lines.append(f"| {r.task} | {r.metric} | {r.model} | {seed} | {r.value:.4f} | {seconds} |")
    return "\n".join(lines) + "\n"
