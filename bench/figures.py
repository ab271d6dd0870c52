"""The figures quoted in README.md and docs/*.md, generated from the benchmarks' JSON.

A hand-copied number drifts from its measurement as soon as a benchmark is rerun; so every
figure that has a JSON source is written in the markdown as a marked span::

    <!-- fig:student_speed.fp32_per_s -->1,199<!-- /fig -->

and ``FIGURES`` below says where its value lives in ``bench/results/`` and how it is written.
``python -m bench.figures`` rewrites every span from the JSON (``make figures``);
``--check`` rewrites nothing and exits 1 listing each span whose text and JSON disagree
(``tests/test_figures.py`` runs it over the repository).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.files import write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SPAN = re.compile(r"<!-- fig:(?P<name>[\w.+-]+) -->(?P<text>.*?)<!-- /fig -->")

Getter = Callable[[Any], Any]


@dataclass(frozen=True)
class Figure:
    """One figure: the JSON file it comes from, the value in it, and how it is written."""

    source: str  # a file name in bench/results/
    value: str | Getter  # a key path ("rows.3.sentences_per_second") or a function of the JSON
    fmt: str = "{}"  # a str.format template applied to the value


def key(data: Any, path: str) -> Any:
    """The value at a dotted key path; a number part indexes a list."""
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def pct(path: str) -> Getter:
    """A share (0.957) as a percentage (95.7), for templates such as ``"{:.1f} %"``."""
    return lambda data: 100 * key(data, path)


def ratio(numerator: str, denominator: str) -> Getter:
    """One value over another, for speed-ups the benchmark does not store itself."""
    return lambda data: key(data, numerator) / key(data, denominator)


def share_of_peak(row: str) -> Getter:
    """Achieved over peak GFLOP/s as a percentage, from the unrounded pair rather than the
    stored three-digit share (0.555 would round up where 59.7 / 107.6 rounds down)."""
    roofline = f"roofline.{row}"
    return lambda data: 100 * ratio(f"{roofline}.achieved_gflops", f"{roofline}.peak_gflops")(data)


def mean_of_tasks(scores: str) -> Getter:
    """The mean over the JSON's ``mean_tasks`` of a per-task score table (a published row)."""
    return lambda data: (
        sum(key(data, scores)[task] for task in data["mean_tasks"]) / len(data["mean_tasks"])
    )


def minutes(path: str) -> Getter:
    """Seconds as minutes."""
    return lambda data: key(data, path) / 60


GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "rte", "wnli")


def _glue_figures() -> dict[str, Figure]:
    """GLUE dev ×100: the default student against the same BiLSTM without distillation and with
    Tang et al.'s task-specific distillation (glue.json), and the MPNet student's
    (glue_mpnet.json)."""
    vs = "comparisons.student vs scratch"
    figures = {
        f"glue.{task}_vs_scratch": Figure("glue.json", f"{vs}.{task}.difference", "{:+.1f}")
        for task in ("sst2", "mrpc", "stsb", "rte", "cola")
    }
    for run in ("student", "scratch", "scratch+kd", "student+kd", "teacher"):
        figures[f"glue.mean.{run}"] = Figure("glue.json", f"mean_x100.{run}", "{:.1f}")
        for task in GLUE_TASKS:
            figures[f"glue.{task}.{run}"] = Figure(
                "glue.json", f"scores_x100.{run}.{task}", "{:.1f}"
            )
            if run != "teacher":  # one seed: no spread
                std = f"std_x100.{run}.{task}"
                figures[f"glue.std.{task}.{run}"] = Figure("glue.json", std, "{:.1f}")
    for task in GLUE_TASKS:
        elmo = f"reference.ELMo.scores_x100.{task}"
        figures[f"glue.{task}.elmo"] = Figure("glue.json", elmo, "{:.1f}")
    figures["glue.wnli.majority"] = Figure("glue.json", "wnli_majority_class_x100", "{:.1f}")
    for run in ("student", "scratch"):
        figures[f"glue_mpnet.mean.{run}"] = Figure("glue_mpnet.json", f"mean_x100.{run}", "{:.1f}")
        figures[f"glue_mpnet.cola.{run}"] = Figure(
            "glue_mpnet.json", f"scores_x100.{run}.cola", "{:.1f}"
        )
    figures["glue.mean.elmo"] = Figure(
        "glue.json", mean_of_tasks("reference.ELMo.scores_x100"), "{:.1f}"
    )
    return figures


def _teachers_figures() -> dict[str, Figure]:
    """docs/teachers.md's table: bench/teachers.py's five rows (MPNet teacher, its student and
    the student in ONNX Runtime, MiniLM teacher, its student), on two threads and on one."""
    figures: dict[str, Figure] = {}
    for source in ("teachers.json", "teachers_threads1.json"):
        prefix = source.removesuffix(".json")
        for i in range(5):
            row = f"{prefix}.row{i}"
            per_s = "{:.1f}" if i == 0 else "{:,.0f}"
            figures[f"{row}.per_s"] = Figure(source, f"rows.{i}.sentences_per_second", per_s)
            figures[f"{row}.sts"] = Figure(source, f"rows.{i}.sts_b_dev_spearman", "{:.3f}")
            if i in (1, 2, 4):
                speedup = f"rows.{i}.speedup_vs_sentence_transformers_teacher"
                figures[f"{row}.speedup"] = Figure(source, speedup, "{:.1f}×")
            if i in (1, 4):
                share = pct(f"rows.{i}.sts_share_of_teacher")
                figures[f"{row}.sts_share"] = Figure(source, share, "{:.1f} %")
    return figures


# Row indices follow each benchmark's fixed row order (bench/student_speed.py, bench/teachers.py).
_ST, _ONEDNN_FP32, _STUDENT_FP32, _STUDENT_INT8 = "rows.0", "rows.1", "rows.3", "rows.5"
_MPNET, _MPNET_STUDENT, _MPNET_ONNX, _MINILM, _MINILM_STUDENT = (f"rows.{i}" for i in range(5))

FIGURES: dict[str, Figure] = {
    # stage 1: bench/encode_throughput.py
    "encode.fp32_per_s": Figure(
        "encode_throughput.json", "sentences_per_second.pipeline_encode_fp32", "{:.0f}"
    ),
    "encode.st_per_s": Figure(
        "encode_throughput.json", "sentences_per_second.sentence_transformers", "{:.0f}"
    ),
    "encode.fp32_speedup": Figure(
        "encode_throughput.json", "speedup_vs_sentence_transformers.fp32", "{:.1f}×"
    ),
    "encode.bf16_speedup": Figure(
        "encode_throughput.json", "speedup_vs_sentence_transformers.bf16", "{:.1f}×"
    ),
    "encode.bf16_min_cosine": Figure("encode_throughput.json", "bf16_vs_fp32_cosine.min", "{:.4f}"),
    "encode.fp32_share_of_peak": Figure(
        "encode_throughput.json", share_of_peak("pipeline_encode_fp32"), "{:.0f} %"
    ),
    "encode.bf16_share_of_peak": Figure(
        "encode_throughput.json", share_of_peak("pipeline_encode_bf16"), "{:.0f} %"
    ),
    "encode_loaded.fp32_speedup": Figure(
        "encode_throughput_loaded.json", "speedup_vs_sentence_transformers.fp32", "{:.1f}×"
    ),
    "encode_loaded.bf16_speedup": Figure(
        "encode_throughput_loaded.json", "speedup_vs_sentence_transformers.bf16", "{:.1f}×"
    ),
    # stage 2: bench/train_quality.py
    "train.minutes": Figure("train_quality.json", minutes("train_seconds"), "{:.0f}"),
    "train.corpus_rows_k": Figure(
        "train_quality.json", lambda data: data["corpus_rows"] / 1000, "{:.0f}k"
    ),
    "train.sentences_seen_m": Figure(
        "train_quality.json", lambda data: data["sentences_seen"] / 1e6, "{:.2f}M"
    ),
    "train.parameters_m": Figure(
        "train_quality.json", lambda data: data["parameters"] / 1e6, "{:.2f}M"
    ),
    "train.val_cosine": Figure("train_quality.json", "validation.cosine", "{:.3f}"),
    "train.sts": Figure("train_quality.json", "sts_b_dev_spearman", "{:.3f}"),
    "train.sts_share": Figure("train_quality.json", pct("sts_share_of_teacher"), "{:.1f} %"),
    "train.teacher_sts": Figure("train_quality.json", "teacher_sts_b_dev_spearman", "{:.3f}"),
    "train.per_s": Figure("train_quality.json", "train_sentences_per_second", "{:,.0f}"),
    "train.threads": Figure("train_quality.json", "machine.threads", "{}"),
    "train.parameters": Figure("train_quality.json", "parameters", "{:,}"),
    "train.sts4": Figure("train_quality.json", "sts_b_dev_spearman", "{:.4f}"),
    **{
        f"train.curve.{i}.{field}": Figure("train_quality.json", f"curve.{i}.{field}", "{:.3f}")
        for i in range(9)  # the nine evaluations of bench-full's 13,454 steps, every 1,500
        for field in ("val_cosine", "sts_spearman")
    },
    # student speed: bench/student_speed.py (rows: teachers first, then the student's precisions)
    "student_speed.fp32_per_s": Figure(
        "student_speed.json", f"{_STUDENT_FP32}.sentences_per_second", "{:,.0f}"
    ),
    "student_speed.int8_per_s": Figure(
        "student_speed.json", f"{_STUDENT_INT8}.sentences_per_second", "{:,.0f}"
    ),
    "student_speed.threads": Figure("student_speed.json", f"{_STUDENT_FP32}.threads", "{}"),
    "student_speed.pooling": Figure("student_speed.json", f"{_STUDENT_FP32}.pooling", "{}"),
    "student_speed.fp32_speedup": Figure(
        "student_speed.json", f"{_STUDENT_FP32}.speedup_vs_teacher", "{:.1f}×"
    ),
    "student_speed.fp32_vs_onednn": Figure(
        "student_speed.json",
        ratio(f"{_STUDENT_FP32}.sentences_per_second", f"{_ONEDNN_FP32}.sentences_per_second"),
        "{:.1f}×",
    ),
    "student_speed.teacher_per_s": Figure(
        "student_speed.json", f"{_ST}.sentences_per_second", "{:.0f}"
    ),
    # the default student beside the teachers: bench/teachers.py, two threads and one
    "teachers.minilm_student_per_s": Figure(
        "teachers.json", f"{_MINILM_STUDENT}.sentences_per_second", "{:,.0f}"
    ),
    "teachers.minilm_student_speedup": Figure(
        "teachers.json", f"{_MINILM_STUDENT}.speedup_vs_sentence_transformers_teacher", "{:.1f}×"
    ),
    "teachers.minilm_teacher_per_s": Figure(
        "teachers.json", f"{_MINILM}.sentences_per_second", "{:.0f}"
    ),
    "teachers_threads1.minilm_student_speedup": Figure(
        "teachers_threads1.json",
        f"{_MINILM_STUDENT}.speedup_vs_sentence_transformers_teacher",
        "{:.1f}×",
    ),
    # the 12-layer teacher: bench/teachers.py on one thread
    "mpnet.student_sts": Figure(
        "teachers_threads1.json", f"{_MPNET_STUDENT}.sts_b_dev_spearman", "{:.3f}"
    ),
    "mpnet.student_sts_share": Figure(
        "teachers_threads1.json", pct(f"{_MPNET_STUDENT}.sts_share_of_teacher"), "{:.1f} %"
    ),
    "mpnet.teacher_sts": Figure("teachers_threads1.json", f"{_MPNET}.sts_b_dev_spearman", "{:.3f}"),
    "mpnet.student_speedup": Figure(
        "teachers_threads1.json",
        f"{_MPNET_STUDENT}.speedup_vs_sentence_transformers_teacher",
        "{:.0f}×",
    ),
    "mpnet.onnx_speedup": Figure(
        "teachers_threads1.json",
        f"{_MPNET_ONNX}.speedup_vs_sentence_transformers_teacher",
        "{:.0f}×",
    ),
    **_glue_figures(),
    **_teachers_figures(),
}


@dataclass(frozen=True)
class Mismatch:
    """A marked span whose text is not what its JSON says."""

    path: Path
    line: int
    name: str
    written: str
    expected: str

    def __str__(self) -> str:
        where = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        said = f"written {self.written!r}, JSON says {self.expected!r}"
        return f"{where}:{self.line}: {self.name}: {said}"


def _load(results: Path, source: str) -> Any:
    return json.loads((results / source).read_text(encoding="utf-8"))


def render(name: str, figures: dict[str, Figure], results: Path) -> str:
    """The text a figure's span should hold; an unknown name or a missing key is an error here,
    so that a renamed figure or benchmark field cannot leave a stale number unchecked."""
    if name not in figures:
        raise KeyError(f"unknown figure {name!r} (not in bench/figures.py FIGURES)")
    figure = figures[name]
    data = _load(results, figure.source)
    value = figure.value(data) if callable(figure.value) else key(data, figure.value)
    return figure.fmt.format(value)


def scan(path: Path, figures: dict[str, Figure], results: Path) -> tuple[str, list[Mismatch]]:
    """The file's text with every span regenerated, and the spans that differed."""
    mismatches: list[Mismatch] = []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)

    def fix(match: re.Match, line: int) -> str:
        expected = render(match["name"], figures, results)
        if match["text"] != expected:
            mismatches.append(Mismatch(path, line, match["name"], match["text"], expected))
        return f"<!-- fig:{match['name']} -->{expected}<!-- /fig -->"

    fixed = [SPAN.sub(lambda m, n=n: fix(m, n), text) for n, text in enumerate(lines, 1)]
    return "".join(fixed), mismatches


def markdown_files(root: Path = ROOT) -> list[Path]:
    """The files whose figures are generated: the README and the docs."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def update(
    paths: list[Path], *, check: bool, figures: dict[str, Figure] = FIGURES, results: Path = RESULTS
) -> list[Mismatch]:
    """Every disagreeing span in ``paths``; unless ``check``, the files are rewritten to agree."""
    found: list[Mismatch] = []
    for path in paths:
        text, mismatches = scan(path, figures, results)
        found += mismatches
        if mismatches and not check:
            write_text(path, text)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.figures", description=__doc__)
    parser.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 on drift")
    args = parser.parse_args(argv)
    mismatches = update(markdown_files(), check=args.check)
    for mismatch in mismatches:
        print(mismatch, file=sys.stderr if args.check else sys.stdout)
    if args.check and mismatches:
        print(f"{len(mismatches)} figure(s) disagree with bench/results/: run `make figures`")
        return 1
    verb = "disagree" if args.check else "rewritten"
    print(f"{len(mismatches)} figure(s) {verb}; {len(FIGURES)} known")
    return 0


if __name__ == "__main__":
    sys.exit(main())
