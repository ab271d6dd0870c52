"""A training run's ``--out``: claimed, resumed or replaced, and its append-only metrics log.

Only a folder holding this tool's ``train_config.json`` (a complete ``TrainConfig.identity``)
is a training run; a run is resumed only under the same configuration, ``--overwrite`` replaces
only the files a run writes (``layout.RUN_FILES``), and the student files beside it only when a
run wrote them. One ``pipeline train`` at a time holds a run (``RUN_LOCK``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data import report
from data.errors import PipelineError
from data.files import (
    earlier_output,
    os_errors,
    remove_outputs,
    require_writable_folder,
    write_text,
)
from stage2_train.checkpoint import checkpoint_dirs
from stage2_train.config import StudentConfig, TrainConfig, identity_problem
from stage2_train.layout import (
    CARD_FILE,
    CONFIG_FILE,
    RUN_FILES,
    TOKENIZER_DIR,
    TRAIN_CONFIG,
    WEIGHTS_FILE,
)

# Held (flock) by the process training into the folder, released when it exits, even by
# SIGKILL; hidden and empty, so it does not make a folder non-empty (``earlier_output``).
RUN_LOCK = ".train.lock"
# The student files of ``RUN_FILES``: the run writes them last, after its final checkpoint.
STUDENT_OUTPUTS = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, TOKENIZER_DIR)


@contextlib.contextmanager
def claimed_run_dir(cfg: TrainConfig) -> Iterator[None]:
    """Hold ``--out`` for this run: refuse another run's or anything else's folder, resume or
    replace our own, and keep a second ``pipeline train`` out until this one ends.

    Everything is checked before the folder or its lock is created, and again under the lock
    (a run started meanwhile may have claimed it). ``--overwrite`` names what it removes. Only
    rank 0 calls this; the other ranks wait until it holds the folder.
    """
    out = Path(cfg.out)
    _previous_run(cfg)
    require_writable_folder(out)
    with _exclusive(out):
        if _previous_run(cfg) is not None and cfg.overwrite:
            remove_outputs(out, [out / name for name in RUN_FILES])
        text = json.dumps(cfg.identity(), indent=2, sort_keys=True) + "\n"
        with os_errors(out / TRAIN_CONFIG):
            write_text(out / TRAIN_CONFIG, text)
        yield


def _previous_run(cfg: TrainConfig) -> dict[str, Any] | None:
    """The run recorded in ``--out`` if it may be resumed (or, with ``--overwrite``,
    replaced); None for an absent or empty folder. Anything else is refused."""
    out = Path(cfg.out)
    if not earlier_output(out, TRAIN_CONFIG, "a training run", dot_files_count=False):
        return None
    previous = _recorded_run(out)
    mismatch = None if cfg.overwrite else _first_difference(previous, cfg.identity())
    if mismatch:
        raise PipelineError(
            f"{out} holds a run with another configuration ({mismatch}); "
            "use --overwrite or another --out"
        )
    foreign = _foreign_student_file(out)
    if foreign is not None:
        raise PipelineError(
            f"{foreign}: not written by `pipeline train` (no {CONFIG_FILE} with a training "
            f"summary or checkpoint beside it); move it out of {out} or use another --out"
        )
    return previous


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold ``out``'s run lock, or refuse: two runs into one folder interleaved their metrics
    and deleted each other's checkpoints."""
    path = out / RUN_LOCK
    with os_errors(path, "cannot lock"):
        handle = path.open("a")
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineError(
                f"{out}: another `pipeline train` is training into this folder; "
                "wait for it to end or use another --out"
            ) from None
        except OSError as exc:
            raise PipelineError(f"cannot lock {path}: {exc.strerror}") from None
        yield  # closing the file releases the lock


def _recorded_run(out: Path) -> dict[str, Any]:
    """The configuration recorded by a previous run in ``out``."""
    path = out / TRAIN_CONFIG
    with os_errors(path, "cannot read"):
        text = path.read_bytes()
    try:
        recorded = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        recorded, problem = None, "not JSON"
    else:
        problem = identity_problem(recorded)
    if problem:
        raise PipelineError(
            f"{path}: not a training configuration written by `pipeline train` ({problem}); "
            "use another --out"
        )
    return recorded


def _foreign_student_file(out: Path) -> Path | None:
    """A student file in ``out`` that no run wrote, which this run would replace at its end.

    A run saves its student after its final checkpoint, ``config.json`` last but one with the
    training summary; a run killed in between has a checkpoint and no ``config.json`` yet.
    """
    present = [out / name for name in STUDENT_OUTPUTS if (out / name).exists()]
    config = out / CONFIG_FILE
    ours = _is_trained_student(config) if config.exists() else bool(checkpoint_dirs(out))
    return present[0] if present and not ours else None


def _is_trained_student(config: Path) -> bool:
    try:
        values = json.loads(config.read_text(encoding="utf-8"))
        StudentConfig.from_dict(values)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, PipelineError):
        return False
    return isinstance(values.get("training"), dict)


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
    """Append-only JSONL; on resume, lines from beyond the checkpoint are dropped first.

    A line that is not a record (a write cut short by a full disk or a kill, an edit) is
    dropped with a warning naming it: it holds no metrics, and refusing it would stop a resume.
    """

    def __init__(self, path: Path, enabled: bool, resume_step: int):
        self.path = path
        self.enabled = enabled
        if enabled and path.is_file():
            kept = [line for line, record in self._read() if record["step"] <= resume_step]
            with os_errors(path):
                write_text(path, "".join(f"{line}\n" for line in kept))

    def _read(self) -> list[tuple[str, dict[str, Any]]]:
        """The log's records with their lines; warns about (and leaves out) any other line."""
        with os_errors(self.path, "cannot read"):
            raw = self.path.read_bytes().splitlines()
        found, dropped = [], []
        for number, line in enumerate(raw, 1):
            record = _record(line)
            if record is not None:
                found.append((line.decode("utf-8"), record))
            elif line.strip():
                dropped.append(str(number))
        if dropped:
            report.warning(
                f"warning: {self.path}: line(s) {', '.join(dropped)} not a metrics record; dropped"
            )
        return found

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with os_errors(self.path), self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def merge(self, record: dict[str, Any]) -> None:
        """Add the final evaluation to the last step's line, or append it: one line per step."""
        if not self.enabled:
            return
        found = self._read() if self.path.is_file() else []
        lines = [line for line, _ in found]
        if found and found[-1][1]["step"] == record["step"]:
            record = {**found[-1][1], **record}
            lines.pop()
        with os_errors(self.path):
            write_text(self.path, "".join(f"{line}\n" for line in [*lines, json.dumps(record)]))


def _record(line: bytes) -> dict[str, Any] | None:
    """One metrics line as its record: a JSON object with an integer step; else None."""
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    step = record.get("step")
    return record if isinstance(step, int) and not isinstance(step, bool) else None
