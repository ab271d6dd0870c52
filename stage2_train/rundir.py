"""A training run's ``--out``: claimed, resumed or replaced, and its append-only metrics log.

Only a folder holding this tool's ``train_config.json`` is a training run; a run is resumed
only under the same configuration (``TrainConfig.identity``), and ``--overwrite`` replaces
only the files a run writes (``layout.RUN_FILES``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from data.errors import PipelineError
from data.files import (
    earlier_output,
    os_errors,
    remove_outputs,
    require_writable_folder,
    write_text,
)
from stage2_train.config import TrainConfig
from stage2_train.layout import RUN_FILES, TRAIN_CONFIG


def prepare_run_dir(cfg: TrainConfig) -> None:
    """Refuse an output dir of another run or of anything else; resume or replace our own.

    ``--overwrite`` replaces a run (naming what it removes) and never touches any other folder,
    so a mistyped ``--out`` (a shard folder, a Hugging Face model) loses nothing. Only rank 0
    calls this; the other ranks wait at a barrier after it.
    """
    out = Path(cfg.out)
    previous = _recorded_run(out) if earlier_output(out, TRAIN_CONFIG, "a training run") else None
    if previous is not None and cfg.overwrite:
        remove_outputs(out, [out / name for name in RUN_FILES])
    elif previous is not None:
        mismatch = _first_difference(previous, cfg.identity())
        if mismatch:
            raise PipelineError(
                f"{out} holds a run with another configuration ({mismatch}); "
                "use --overwrite or another --out"
            )
    require_writable_folder(out)
    text = json.dumps(cfg.identity(), indent=2, sort_keys=True) + "\n"
    with os_errors(out / TRAIN_CONFIG):
        write_text(out / TRAIN_CONFIG, text)


def _recorded_run(out: Path) -> dict[str, Any]:
    """The configuration recorded by a previous run in ``out``."""
    path = out / TRAIN_CONFIG
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        recorded = None
    if not (isinstance(recorded, dict) and isinstance(recorded.get("student"), dict)):
        raise PipelineError(
            f"{path}: not a training configuration written by `pipeline train`; use another --out"
        )
    return recorded


def _first_difference(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str | None:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} before, {b!r} now"
    return None


class MetricsLog:
    """Append-only JSONL; on resume, lines from beyond the checkpoint are dropped first."""

    def __init__(self, path: Path, enabled: bool, resume_step: int):
        self.path = path
        self.enabled = enabled
        if enabled and path.is_file():
            kept = [
                line
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            write_text(path, "".join(f"{line}\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def merge(self, record: dict[str, Any]) -> None:
        """Add the final evaluation to the last step's line, or append it: one line per step."""
        if not self.enabled:
            return
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.is_file() else []
        if lines and json.loads(lines[-1]).get("step") == record["step"]:
            record = {**json.loads(lines.pop()), **record}
        lines.append(json.dumps(record))
        write_text(self.path, "".join(f"{line}\n" for line in lines))
