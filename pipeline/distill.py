"""``distill()``: stage 1 and stage 2 in one Python call, as ``pipeline encode`` then ``train``.

The defaults are the CLI's because both read the same dataclasses (``EncodeConfig``,
``TrainConfig``, ``StudentConfig``); the same resume rules hold, so calling ``distill`` again
after an interruption continues where it stopped: complete shards are skipped and training
resumes from its newest checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.errors import PipelineError

if TYPE_CHECKING:
    from stage2_train import Student

# Set by distill() itself, so not accepted among the training options.
_OWN = {"targets", "out", "student", "device", "precision"}
# Teacher settings that ``encode_options`` may carry beside the ``EncodeConfig`` fields.
TEACHER_OPTIONS = ("pooling", "normalize", "max_length", "trust_remote_code")


def default_shards(out: str | Path) -> Path:
    """Where ``distill`` caches the teacher's vectors unless told: beside the student folder
    (``runs/student`` -> ``runs/student-shards``), since ``train`` owns the student folder."""
    out = Path(out)
    return out.with_name(f"{out.name}-shards")


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` as (student architecture, training run) keyword arguments, by field name."""
    from stage2_train.config import StudentConfig, TrainConfig

    student_names = {f.name for f in fields(StudentConfig)} - {"teacher"}
    train_names = {f.name for f in fields(TrainConfig)} - _OWN
    unknown = sorted(set(options) - student_names - train_names)
    if unknown:
        known = ", ".join(sorted(student_names | train_names))
        raise PipelineError(f"distill: unknown option(s) {', '.join(unknown)}; known: {known}")
    student = {k: v for k, v in options.items() if k in student_names}
    return student, {k: v for k, v in options.items() if k in train_names}


def distill(
    corpus: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    teacher: str | None = None,
    shards: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    encode_options: dict[str, Any] | None = None,
    **train_options: Any,
) -> Student:
    """Distil ``teacher`` (default: the embedded all-MiniLM-L6-v2) into a BiLSTM student.

    ``corpus``: text files (one text per line, ``.txt`` / ``.txt.gz``) or folders of them.
    ``shards``: where stage 1 caches the teacher's vectors (default: ``default_shards(out)``).
    ``encode_options``: ``EncodeConfig`` fields (``shard_size``, ``dedup``, ...) and the
    teacher's ``pooling``, ``normalize``, ``max_length``. ``train_options``: any ``TrainConfig``
    or ``StudentConfig`` field (``max_steps=2000``, ``time_budget=20``, ``hidden_size=384``,
    ``sts_dev="STS-B/dev.tsv"``, ...). Returns the trained student, loaded from ``out``.
    """
    from stage2_train import Student

    student_options, run_options = split_options(train_options)  # refuse typos before any work
    if run_options.get("sts_dev") is not None:
        run_options["sts_dev"] = Path(run_options["sts_dev"])
    targets = Path(shards) if shards is not None else default_shards(out)
    encode_corpus(corpus, targets, teacher, device, precision, dict(encode_options or {}))
    train_student(targets, Path(out), device, precision, student_options, run_options)
    return Student.from_pretrained(out)


def encode_corpus(
    corpus: str | Path | Sequence[str | Path],
    targets: Path,
    teacher: str | None,
    device: str,
    precision: str,
    options: dict[str, Any],
) -> None:
    """Stage 1 into ``targets``, with the precision rules of ``pipeline encode``."""
    from data.corpus import resolve_corpus
    from pipeline.runtime import resolve_device
    from stage1_encode.encode import EncodeConfig, run_encode
    from stage1_encode.precision import teacher_precision
    from stage1_encode.teacher import Teacher

    paths = [corpus] if isinstance(corpus, str | Path) else list(corpus)
    files = resolve_corpus(paths)
    teacher_options = {k: options.pop(k) for k in TEACHER_OPTIONS if k in options}
    config_names = {f.name for f in fields(EncodeConfig)} - {"out"}
    if unknown := sorted(set(options) - config_names):
        raise PipelineError(f"distill: unknown encode option(s) {', '.join(unknown)}")
    where = resolve_device(device)
    resume = None if options.get("overwrite", False) else targets
    model = Teacher(
        teacher,
        device=where,
        precision=teacher_precision(precision, where, resume),
        require_precision=precision != "auto",
        **teacher_options,
    )
    if options.get("reuse") is not None:
        options["reuse"] = Path(options["reuse"])
    run_encode(files, model, EncodeConfig(out=targets, **options))


def train_student(
    targets: Path,
    out: Path,
    device: str,
    precision: str,
    student_options: dict[str, Any],
    run_options: dict[str, Any],
) -> None:
    """Stage 2 from ``targets`` into ``out``, as ``pipeline train`` builds its configuration."""
    from data.precision import resolve_precision
    from pipeline.runtime import resolve_device
    from stage2_train.config import StudentConfig, TrainConfig
    from stage2_train.train import train

    where = resolve_device(device)
    train(
        TrainConfig(
            targets=targets,
            out=out,
            student=StudentConfig(**student_options),
            device=str(where),
            precision=resolve_precision(precision, where, "student"),
            **run_options,
        )
    )
