"""What ``pipeline report`` reads: the results, training curves, student configs and shard
manifests found under run directories, and the per-model tables drawn from them."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data import report
from data.errors import PipelineError
from data.shards import MANIFEST
from stage2_train.layout import CHECKPOINTS, CONFIG_FILE, METRICS, is_student_dir
from stage3_eval.glue.report import BENCHMARK as GLUE_BENCHMARK
from stage3_eval.results import RESULTS_JSON, Result, load_results


@dataclass
class RunData:
    """Everything gathered from the run directories, de-duplicated."""

    results: list[Result] = field(default_factory=list)
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    students: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PipelineError(f"{path}: unreadable JSON ({exc})") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise PipelineError(f"{path}:{number}: not a JSON line") from None
    return records


def _files(run_dirs: Iterable[Path], name: str) -> list[Path]:
    found = set()
    for directory in run_dirs:
        found.update(p for p in Path(directory).rglob(name) if CHECKPOINTS not in p.parts)
    return sorted(found)


def gather(run_dirs: list[Path]) -> RunData:
    """Read every results file, metrics log, student config and shard manifest under the dirs."""
    for directory in run_dirs:
        if not Path(directory).is_dir():
            raise PipelineError(f"{directory}: no such run directory")
    data = RunData()
    merged: dict[tuple, Result] = {}
    for path in _files(run_dirs, RESULTS_JSON):
        for r in load_results(path):  # every entry checked: a NaN or a string is refused
            merged[(*r.key(), r.data)] = r
    data.results = sorted(merged.values(), key=lambda r: (r.task, r.model, r.metric, r.seed or 0))
    for path in _files(run_dirs, METRICS):
        records = [r for r in _read_jsonl(path) if isinstance(r, dict) and "step" in r]
        if records:
            data.curves[str(path.parent)] = records
    for path in _files(run_dirs, CONFIG_FILE):
        if is_student_dir(path.parent):
            config = _read_json(path)
            if isinstance(config, dict):
                data.students[str(path.parent)] = config
    for path in _files(run_dirs, MANIFEST):
        manifest = _read_json(path)
        if isinstance(manifest, dict) and "teacher" in manifest and "shards" in manifest:
            if _usable_manifest(manifest):
                data.manifests[str(path.parent)] = manifest
            else:
                report.warning(f"warning: {path}: incomplete shard manifest, not counted")
    return data


def _usable_manifest(manifest: dict[str, Any]) -> bool:
    teacher, records = manifest["teacher"], manifest["shards"]
    return (
        isinstance(teacher, dict)
        and isinstance(teacher.get("name_or_path"), str)
        and isinstance(records, dict)
        and all(isinstance(r, dict) and isinstance(r.get("rows"), int) for r in records.values())
    )


def short(label: str) -> str:
    """A model label fit for a legend: the last two parts of a path."""
    parts = Path(label).parts
    return "/".join(parts[-2:]) if len(parts) > 2 else label


def model_kind(data: RunData, model: str) -> str:
    """``teacher`` if any result of ``model`` came from a teacher, else ``student``."""
    kinds = {r.extra.get("kind") for r in data.results if r.model == model}
    return "teacher" if "teacher" in kinds or model == "teacher" else "student"


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def speeds(data: RunData) -> dict[str, float]:
    """Sentences/s per model: the measurement over the most sentences wins."""
    best: dict[str, tuple[int, float]] = {}
    for r in data.results:
        if r.task == "encode-speed":
            size = int(r.extra.get("sentences", 0))
            if r.model not in best or size > best[r.model][0]:
                best[r.model] = (size, r.value)
    return {model: value for model, (_, value) in best.items()}


def sts_scores(data: RunData, metric: str = "spearman") -> dict[str, dict[str, float]]:
    """``{dataset: {model: value}}`` of the zero-shot STS results."""
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for r in data.results:
        if r.task.startswith("sts:") and r.metric == metric:
            table[r.task.removeprefix("sts:")][r.model] = r.value
    return dict(table)


def probe_scores(data: RunData) -> dict[str, dict[str, float]]:
    """``{metric: {model: value}}`` of the kNN probe (recall@k, mean cosine)."""
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for r in data.results:
        if r.task == "knn-probe":
            table[r.metric][r.model] = r.value
    return dict(sorted(table.items(), key=lambda kv: (kv[0] == "mean_cosine", len(kv[0]), kv[0])))


def glue_scores(data: RunData) -> dict[str, dict[str, float]]:
    """``{task: {model: score}}``: per task the mean of its metrics, averaged over seeds."""
    cells: dict[tuple[str, str], dict[int | None, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in data.results:
        if r.extra.get("benchmark") == GLUE_BENCHMARK and "glue_task" in r.extra:
            cells[(r.task, r.model)][r.seed].append(r.value)
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for (task, model), per_seed in sorted(cells.items()):
        table[task][model] = _mean([_mean(values) for values in per_seed.values()])
    return dict(table)
