"""The GLUE tasks: what each one reads, where its files are, and how to turn them into examples.

Files are the original GLUE layout written by ``download_glue_data.py`` (``CoLA/train.tsv``,
``MNLI/dev_matched.tsv``, …), plain or gzip-compressed (``.tsv.gz``). Columns are found by their
header name wherever the file has a header, so MNLI's train file (12 columns) and dev files
(16 columns) read alike; CoLA's labelled files have no header and are read by position, as GLUE
does. Fields are split on tabs only and never unquoted: GLUE texts contain bare quote characters.

``--data-dir hf`` reads the same tasks through ``datasets.load_dataset("nyu-mll/glue", task)``.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.errors import PipelineError

HF = "hf"
HF_DATASET = "nyu-mll/glue"  # the hub's GLUE (the legacy id "glue" redirects here)


@dataclass(frozen=True)
class Layout:
    """Where a split's fields are: header names (str) or, for header-less files, positions (int)."""

    header: bool
    text: tuple[str | int, ...]
    label: str | int | None = None
    index: str | int | None = None
    columns: int = 0  # the exact column count of a header-less file


@dataclass(frozen=True)
class EvalSplit:
    """One evaluated or predicted split of a task (MNLI has two of each)."""

    name: str  # as reported: "mnli-m", "sst2", …
    stem: str  # file stem in the GLUE folder: "dev_matched", "test", …
    hf_split: str  # split name in the hub dataset
    submission: str = ""  # GLUE submission file name for test splits


@dataclass(frozen=True)
class GlueTask:
    name: str
    folder: str
    labels: tuple[str, ...]  # label strings in the hub dataset's id order; () for regression
    metrics: tuple[str, ...]
    labelled: Layout
    test: Layout
    hf_text: tuple[str, ...]
    evals: tuple[EvalSplit, ...]
    tests: tuple[EvalSplit, ...]
    # Fine-tuning passes over the train set unless --epochs says otherwise: fewer over the four
    # large sets keep a CPU run affordable.
    epochs: int

    @property
    def is_regression(self) -> bool:
        return not self.labels

    @property
    def is_pair(self) -> bool:
        return len(self.hf_text) == 2

    @property
    def num_outputs(self) -> int:
        return 1 if self.is_regression else len(self.labels)


def _task(
    name,
    folder,
    labels,
    metrics,
    text,
    label,
    hf_text,
    *,
    epochs: int,
    test_index="index",
    labelled: Layout | None = None,
) -> GlueTask:
    """A task with one train, one dev and one test file (all but MNLI)."""
    return GlueTask(
        name=name,
        folder=folder,
        labels=labels,
        metrics=metrics,
        labelled=labelled or Layout(True, text, label=label),
        test=Layout(True, text, index=test_index),
        hf_text=hf_text,
        evals=(EvalSplit(name, "dev", "validation"),),
        tests=(EvalSplit(name, "test", "test", f"{folder}.tsv"),),
        epochs=epochs,
    )


_BINARY = ("0", "1")
_ENTAIL = ("entailment", "not_entailment")
_PAIR = ("sentence1", "sentence2")

TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in (
        _task(
            "cola",
            "CoLA",
            _BINARY,
            ("matthews",),
            ("sentence",),
            None,
            ("sentence",),
            epochs=4,
            labelled=Layout(False, (3,), label=1, columns=4),
        ),
        _task(
            "sst2",
            "SST-2",
            _BINARY,
            ("accuracy",),
            ("sentence",),
            "label",
            ("sentence",),
            epochs=2,
        ),
        _task(
            "mrpc",
            "MRPC",
            _BINARY,
            ("f1", "accuracy"),
            ("#1 String", "#2 String"),
            "Quality",
            _PAIR,
            epochs=4,
        ),
        _task("stsb", "STS-B", (), ("pearson", "spearman"), _PAIR, "score", _PAIR, epochs=4),
        _task(
            "qqp",
            "QQP",
            _BINARY,
            ("f1", "accuracy"),
            ("question1", "question2"),
            "is_duplicate",
            ("question1", "question2"),
            epochs=2,
            test_index="id",
        ),
        GlueTask(
            name="mnli",
            folder="MNLI",
            labels=("entailment", "neutral", "contradiction"),
            metrics=("accuracy",),
            labelled=Layout(True, _PAIR, label="gold_label"),
            test=Layout(True, _PAIR, index="index"),
            hf_text=("premise", "hypothesis"),
            evals=(
                EvalSplit("mnli-m", "dev_matched", "validation_matched"),
                EvalSplit("mnli-mm", "dev_mismatched", "validation_mismatched"),
            ),
            tests=(
                EvalSplit("mnli-m", "test_matched", "test_matched", "MNLI-m.tsv"),
                EvalSplit("mnli-mm", "test_mismatched", "test_mismatched", "MNLI-mm.tsv"),
            ),
            epochs=2,
        ),
        _task(
            "qnli",
            "QNLI",
            _ENTAIL,
            ("accuracy",),
            ("question", "sentence"),
            "label",
            ("question", "sentence"),
            epochs=2,
        ),
        _task("rte", "RTE", _ENTAIL, ("accuracy",), _PAIR, "label", _PAIR, epochs=4),
        # WNLI's files say 1 for entailment; the hub names id 0 "not_entailment", so ids agree.
        _task("wnli", "WNLI", _BINARY, ("accuracy",), _PAIR, "label", _PAIR, epochs=3),
    )
}
_ALIASES = {alias: t.name for t in TASKS.values() for alias in (t.folder.lower(), t.name)}
_ALIASES.update({"sts-b": "stsb", "sst-2": "sst2"})


def resolve_tasks(spec: str) -> list[GlueTask]:
    """Tasks named in ``spec``: ``all`` or a comma list (``SST-2``, ``sst-2``, ``sst2`` alike)."""
    if spec.strip().lower() == "all":
        return list(TASKS.values())
    tasks: list[GlueTask] = []
    for raw in spec.split(","):
        key = raw.strip().lower()
        if not key:
            continue
        if key not in _ALIASES:
            raise PipelineError(
                f"unknown GLUE task {raw.strip()!r}; choose from all, " + ", ".join(TASKS)
            )
        if TASKS[_ALIASES[key]] not in tasks:
            tasks.append(TASKS[_ALIASES[key]])
    if not tasks:
        raise PipelineError("no GLUE task given")
    return tasks


@dataclass
class GlueSplit:
    """The examples of one split: texts, labels (class ids or scores; None for test) and ids."""

    task: GlueTask
    name: str
    source: str
    text_a: list[str]
    text_b: list[str] | None
    labels: np.ndarray | None
    index: list[str]

    def __len__(self) -> int:
        return len(self.text_a)

    def subset(self, rows: np.ndarray | list[int]) -> GlueSplit:
        rows = [int(i) for i in rows]
        return GlueSplit(
            task=self.task,
            name=self.name,
            source=self.source,
            text_a=[self.text_a[i] for i in rows],
            text_b=None if self.text_b is None else [self.text_b[i] for i in rows],
            labels=None if self.labels is None else self.labels[rows],
            index=[self.index[i] for i in rows],
        )

    def sample(self, count: int | None, seed: int = 0) -> GlueSplit:
        """At most ``count`` rows drawn without replacement (file order kept); all if None."""
        if count is None or count >= len(self):
            return self
        rows = np.random.default_rng(seed).choice(len(self), size=count, replace=False)
        return self.subset(np.sort(rows))


@dataclass
class TaskData:
    """What exists of a task: its training split, the dev splits it reports, its test splits."""

    task: GlueTask
    train: GlueSplit | None
    evals: list[GlueSplit]
    tests: list[GlueSplit]
    missing: list[str]  # train / dev files (or hub splits) looked for and not found

    @property
    def runnable(self) -> bool:
        return self.train is not None and bool(self.evals)


def split_file(task_dir: Path, stem: str) -> Path | None:
    """``stem.tsv`` or ``stem.tsv.gz`` inside ``task_dir``, whichever exists."""
    for name in (f"{stem}.tsv", f"{stem}.tsv.gz"):
        if (task_dir / name).is_file():
            return task_dir / name
    return None


def _read_rows(path: Path) -> list[list[str]]:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = path.read_bytes()
        text = raw.decode("utf-8-sig")  # MRPC's header starts with a byte-order mark
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: cannot read as UTF-8 TSV ({exc})") from None
    return [line.rstrip("\r").split("\t") for line in text.split("\n")]


def _position(path: Path, header: list[str] | None, column: str | int) -> int:
    if isinstance(column, int):
        return column
    assert header is not None
    if column not in header:
        raise PipelineError(
            f"{path}:1: header has no column {column!r} (found: {', '.join(header)}); "
            f"is this the GLUE layout?"
        )
    return header.index(column)


def read_tsv(path: Path, task: GlueTask, layout: Layout, name: str) -> GlueSplit:
    """Read one GLUE TSV file; a row with the wrong column count or label names its line."""
    rows = _read_rows(path)
    header = rows[0] if layout.header else None
    width = len(header) if header else layout.columns
    text_at = [_position(path, header, c) for c in layout.text]
    label_at = None if layout.label is None else _position(path, header, layout.label)
    index_at = None if layout.index is None else _position(path, header, layout.index)
    start = 1 if header else 0
    texts: list[list[str]] = [[] for _ in text_at]
    labels: list[int | float] = []
    index: list[str] = []
    for lineno, row in enumerate(rows[start:], start=start + 1):
        if row == [""]:
            continue
        if len(row) != width:
            raise PipelineError(
                f"{path}:{lineno}: expected {width} tab-separated columns, found {len(row)}"
            )
        for column, at in zip(texts, text_at, strict=True):
            column.append(row[at])
        if label_at is not None:
            labels.append(_parse_label(path, lineno, task, row[label_at]))
        index.append(row[index_at] if index_at is not None else str(len(index)))
    if not texts[0]:
        what = "a header but no rows" if header else "no rows"
        raise PipelineError(f"{path}: {what}; a GLUE split needs at least one example")
    dtype = np.float32 if task.is_regression else np.int64
    return GlueSplit(
        task=task,
        name=name,
        source=str(path),
        text_a=texts[0],
        text_b=texts[1] if len(texts) > 1 else None,
        labels=None if label_at is None else np.asarray(labels, dtype=dtype),
        index=index,
    )


def _parse_label(path: Path, lineno: int, task: GlueTask, value: str) -> int | float:
    value = value.strip()
    if task.is_regression:
        try:
            score = float(value)
        except ValueError:
            raise PipelineError(f"{path}:{lineno}: score {value!r} is not a number") from None
        if not math.isfinite(score):  # a NaN label makes every loss and correlation NaN
            raise PipelineError(f"{path}:{lineno}: score {value!r} is not a finite number")
        return score
    if value not in task.labels:
        raise PipelineError(
            f"{path}:{lineno}: label {value!r} is not one of {', '.join(task.labels)}"
        )
    return task.labels.index(value)


def load_task(task: GlueTask, data_dir: str | Path) -> TaskData:
    """Every split of ``task`` that exists under ``data_dir`` (or on the hub for ``hf``)."""
    if str(data_dir) == HF:
        return _load_hub_task(task)
    task_dir = Path(data_dir) / task.folder
    missing: list[str] = []

    def read(stem: str, layout: Layout, name: str) -> GlueSplit | None:
        path = split_file(task_dir, stem)
        if path is None:
            if layout is task.labelled:
                missing.append(str(task_dir / f"{stem}.tsv"))
            return None
        return read_tsv(path, task, layout, name)

    train = read("train", task.labelled, "train")
    evals = [s for e in task.evals if (s := read(e.stem, task.labelled, e.name)) is not None]
    tests = [s for e in task.tests if (s := read(e.stem, task.test, e.name)) is not None]
    return TaskData(task, train, evals, tests, missing)


def split_from_hf(task: GlueTask, dataset, name: str, source: str) -> GlueSplit:
    """A GlueSplit from a hub ``datasets.Dataset`` of the GLUE task (test labels are -1)."""
    columns = [list(dataset[c]) for c in task.hf_text]
    raw = np.asarray(dataset["label"])
    has_labels = raw.size > 0 and not (raw < 0).all()
    labels = raw.astype(np.float32 if task.is_regression else np.int64) if has_labels else None
    index = [str(i) for i in dataset["idx"]] if "idx" in dataset.column_names else None
    return GlueSplit(
        task=task,
        name=name,
        source=source,
        text_a=columns[0],
        text_b=columns[1] if len(columns) > 1 else None,
        labels=labels,
        index=index or [str(i) for i in range(len(columns[0]))],
    )


def _load_hub_task(task: GlueTask) -> TaskData:
    try:
        import datasets

        splits = datasets.load_dataset(HF_DATASET, task.name)
    except Exception as exc:  # the hub raises many types: offline, missing, network
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PipelineError(f"cannot load GLUE task {task.name} from the hub: {first}") from None

    def get(split: str, name: str) -> GlueSplit | None:
        if split not in splits:
            return None
        return split_from_hf(task, splits[split], name, f"hf:glue/{task.name}/{split}")

    train = get("train", "train")
    evals = [s for e in task.evals if (s := get(e.hf_split, e.name))]
    tests = [s for e in task.tests if (s := get(e.hf_split, e.name))]
    missing = [
        f"hf:glue/{task.name}/{s}"
        for s in ("train", *(e.hf_split for e in task.evals))
        if s not in splits
    ]
    return TaskData(task, train, evals, tests, missing)
