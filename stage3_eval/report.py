"""``report.html``: every result and training curve found under some run directories, plotted.

It reads only files that the stages write (Contract 3 ``results.json``, stage 2's
``metrics.jsonl`` and student ``config.json``, stage 1's shard ``manifest.json``), so it can be
re-run at any time, on any mix of runs, and it never needs a model. The output is one static
HTML file with PNGs beside it: nothing to serve, nothing fetched, opens offline.

A result whose value is not a number is refused (a report that silently dropped or mis-plotted
a measurement would be a wrong answer), before anything is written. All files are written under
temporary names and renamed together at the end, and an existing page or PNG is replaced only
when this command made it, so a failed or mistaken run leaves the folder as it was.
"""

from __future__ import annotations

import html
import math
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from data.errors import PipelineError
from data.files import atomic_path, made_here, os_errors
from stage3_eval.report_data import (
    RunData,
    gather,
    glue_scores,
    model_kind,
    probe_scores,
    short,
    speeds,
    sts_scores,
)
from stage3_eval.results import Result

CURVES = (
    ("loss", "training loss"),
    ("val_cosine", "validation cosine"),
    ("sts_spearman", "STS-B dev Spearman"),
)
TITLE = "SRA-Distill report"
PNG_MARK = "SRA-Distill pipeline report"  # the PNG "Software" text: a figure this command made


def _models(table: dict[str, dict[str, float]]) -> list[str]:
    return sorted({m for row in table.values() for m in row}, key=lambda m: (m != "teacher", m))


def _bars(table: dict[str, dict[str, float]], title: str, ylabel: str, scale: float = 1.0):
    import matplotlib.pyplot as plt

    groups, models = list(table), _models(table)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) * max(1, len(models)) / 2), 4))
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        values = [scale * table[g].get(model, np.nan) for g in groups]
        x = np.arange(len(groups)) + (i - (len(models) - 1) / 2) * width
        bars = ax.bar(x, values, width, label=short(model))
        ax.bar_label(bars, fmt="%.1f" if scale != 1 else "%.3f", fontsize=7, padding=1)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    # Below the axes: bars reach the top of the plot, where a legend would hide their labels.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(models))
    return fig


def _curves_figure(curves: dict[str, list[dict[str, Any]]]):
    import matplotlib.pyplot as plt

    present = [(k, t) for k, t in CURVES if any(k in r for rs in curves.values() for r in rs)]
    fig, axes = plt.subplots(1, len(present), figsize=(4.5 * len(present), 3.6), squeeze=False)
    for ax, (key, title) in zip(axes[0], present, strict=True):
        for run, records in curves.items():
            points = [(r["step"], r[key]) for r in records if _is_number(r.get(key))]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker="." if len(points) < 30 else None, label=short(run))
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return fig


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plain_number(value: float, _position: int) -> str:
    return f"{value:,.0f}"


def _sparse_minor(value: float, _position: int) -> str:
    """Label only the 2× and 5× minor ticks of a log axis, so labels never collide."""
    leading = round(value / 10 ** np.floor(np.log10(value)))
    return _plain_number(value, _position) if leading in (2, 5) else ""


def _speed_quality_figure(data: RunData, speed: dict[str, float], sts: dict[str, float], name):
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in _models({"": sts}):
        if model in speed:
            marker = "s" if model_kind(data, model) == "teacher" else "o"
            ax.scatter(speed[model], sts[model], marker=marker, s=60)
            ax.annotate(
                short(model),
                (speed[model], sts[model]),
                fontsize=8,
                textcoords="offset points",
                xytext=(5, 5),
            )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_plain_number))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(_sparse_minor))
    ax.set_xlabel("sentences / second (CPU, log scale)")
    ax.set_ylabel(f"{name} Spearman (zero-shot)")
    ax.set_title("speed vs quality (square: teacher)")
    ax.grid(alpha=0.3)
    return fig


def figures(data: RunData) -> dict[str, tuple[str, Any]]:
    """``{file name: (caption, matplotlib figure)}`` for every plot that has data."""
    out: dict[str, tuple[str, Any]] = {}
    if data.curves:
        out["training.png"] = (
            "Training curves (stage 2 metrics.jsonl)",
            _curves_figure(data.curves),
        )
    glue = glue_scores(data)
    if glue:
        out["glue.png"] = (
            "GLUE dev per task (mean of the task's metrics, over seeds, x100)",
            _bars(glue, "GLUE dev", "score x100", 100),
        )
    sts = sts_scores(data)
    if sts:
        out["sts.png"] = (
            "Zero-shot STS: cosine Spearman x100",
            _bars(sts, "zero-shot STS", "Spearman x100", 100),
        )
    probe = probe_scores(data)
    if probe:
        out["knn.png"] = (
            "kNN probe on held-out rows: recall of the teacher's neighbours",
            _bars(probe, "kNN probe", "value"),
        )
    speed = speeds(data)
    name = "STS-B-dev" if "STS-B-dev" in sts else next(iter(sts), None)
    if name and len(set(speed) & set(sts[name])) >= 1:
        out["speed_quality.png"] = (
            f"Speed vs quality ({name})",
            _speed_quality_figure(data, speed, sts[name], name),
        )
    return out


def _student_label(data: RunData) -> str | None:
    students = sorted({r.model for r in data.results if model_kind(data, r.model) == "student"})
    return students[0] if students else next(iter(data.students), None)


def _student_config(data: RunData, label: str | None) -> dict[str, Any] | None:
    """The config.json of the student filed under ``label`` (or the only student found)."""
    for directory, config in data.students.items():
        if label and Path(directory).resolve() == Path(label).resolve():
            return config
    return next(iter(data.students.values())) if len(data.students) == 1 else None


def _student_size(data: RunData, label: str | None) -> str:
    config = _student_config(data, label) or {}
    training = config.get("training")
    params = training.get("parameters") if isinstance(training, dict) else None
    if not _is_number(params):
        params = None
    if params is None:
        found = (r.extra.get("parameters") for r in data.results if r.model == label)
        params = next((p for p in found if p), None)
    if params is None:
        return "student size: n/a (no student found)"
    layout = ""
    if config:
        layout = (
            f", {config.get('num_layers')} BiLSTM layer(s) x {config.get('hidden_size')}, "
            f"{config.get('output_dim')}-d output"
        )
    megabytes = 4 * params / 2**20
    return f"student size: {params / 1e6:.2f}M parameters ({megabytes:.1f} MB float32){layout}"


def summary_lines(data: RunData) -> list[str]:
    """The five-line summary: rows encoded, student size, speed-up, kNN recall@10, STS."""
    rows = sum(r["rows"] for m in data.manifests.values() for r in m["shards"].values())
    teachers = sorted({short(m["teacher"]["name_or_path"]) for m in data.manifests.values()})
    encoded = f"rows encoded: {rows:,}" + (f" (teacher {', '.join(teachers)})" if teachers else "")
    student = _student_label(data)
    speed = speeds(data)
    teacher_speeds = [v for m, v in speed.items() if model_kind(data, m) == "teacher"]
    if student in speed and teacher_speeds:
        ratio = speed[student] / max(teacher_speeds)
        speedup = (
            f"speed-up over the teacher: {ratio:.1f}x ({speed[student]:,.0f} vs "
            f"{max(teacher_speeds):,.0f} sentences/s)"
        )
    else:
        speedup = "speed-up over the teacher: n/a (probe or STS both the student and the teacher)"
    probe = probe_scores(data)
    if student in probe.get("recall@10", {}):
        cosine = probe.get("mean_cosine", {}).get(student)
        knn = (
            f"kNN recall@10: {probe['recall@10'][student]:.3f}"
            + (
                f" (recall@1 {probe['recall@1'][student]:.3f})"
                if student in probe.get("recall@1", {})
                else ""
            )
            + (f", mean cosine to the teacher {cosine:.3f}" if cosine is not None else "")
        )
    else:
        knn = "kNN recall@10: n/a (run pipeline eval probe)"
    sts_lines = []
    for name, row in sts_scores(data).items():
        teacher = next((v for m, v in row.items() if model_kind(data, m) == "teacher"), None)
        if student in row:
            share = (
                f", {100 * row[student] / teacher:.0f}% of the teacher's {teacher:.3f}"
                if teacher
                else ""
            )
            sts_lines.append(f"{name} Spearman {row[student]:.3f}{share}")
    sts = "STS: " + ("; ".join(sts_lines) if sts_lines else "not run")
    return [encoded, _student_size(data, student), speedup, knn, sts]


def _table(results: list[Result]) -> str:
    columns = ("task", "metric", "model", "seed", "value", "data")
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
    rows = [
        f"<tr><td>{html.escape(r.task)}</td><td>{html.escape(r.metric)}</td>"
        f"<td title='{html.escape(r.model)}'>{html.escape(short(r.model))}</td>"
        f"<td>{'' if r.seed is None else r.seed}</td><td>{r.value:.4f}</td>"
        f"<td>{html.escape(short(r.data))}</td></tr>"
        for r in results
    ]
    return f"<table>{head}{''.join(rows)}</table>"


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f0f0f0}img{max-width:100%;border:1px solid #eee}ul.summary li{margin:3px 0}"""


def _page(run_dirs: list[Path], summary: list[str], sections: list[str], data: RunData) -> str:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in summary)
    sources = "".join(f"<li><code>{html.escape(str(d))}</code></li>" for d in run_dirs)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{TITLE}</title>"
        f"<style>{STYLE}</style></head><body><h1>{TITLE}</h1>"
        f"<p>Generated {time.strftime('%Y-%m-%d %H:%M')} from:</p><ul>{sources}</ul>"
        f"<h2>Summary</h2><ul class='summary'>{items}</ul>{''.join(sections)}"
        f"<h2>All results</h2>{_table(data.results)}</body></html>\n"
    )


def _check_replaceable(out: Path, names: list[str]) -> None:
    """Refuse to replace a page or a PNG that this command did not write.

    A PNG is ours when it carries ``PNG_MARK``, or when the page beside it is a report (PNGs of
    reports made before the mark existed).
    """
    if out.is_dir():
        raise PipelineError(f"{out}: is a folder; --out must name an .html file")
    ours = out.is_file() and made_here(out, f"<title>{TITLE}</title>")
    if out.exists() and not ours:
        raise PipelineError(
            f"{out}: exists and is not a report; not overwritten (use another --out)"
        )
    for name in names:
        png = out.parent / name
        if png.exists() and not (ours or (png.is_file() and made_here(png, PNG_MARK))):
            raise PipelineError(
                f"{png}: exists and was not made by `pipeline report`; not overwritten "
                "(use another --out folder)"
            )


def write_report(run_dirs: list[Path], out: Path) -> tuple[Path, list[str]]:
    """Write ``out`` (report.html) and its PNGs beside it; return the path and the summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = gather(run_dirs)
    if not (data.results or data.curves or data.manifests):
        raise PipelineError(
            f"{', '.join(map(str, run_dirs))}: "
            "no results.json, metrics.jsonl or shard manifest found"
        )
    summary = summary_lines(data)
    plots = figures(data)
    sections = []
    try:
        _check_replaceable(out, list(plots))
        with os_errors(out.parent, "cannot write the report in"):
            out.parent.mkdir(parents=True, exist_ok=True)
        # Every file is renamed into place only once all are written (the page last).
        with ExitStack() as renames:
            page = renames.enter_context(atomic_path(out))
            for name, (caption, fig) in plots.items():
                fig.tight_layout()
                fig.savefig(
                    renames.enter_context(atomic_path(out.parent / name)),
                    format="png",
                    dpi=110,
                    bbox_inches="tight",
                    metadata={"Software": PNG_MARK},
                )
                plt.close(fig)
                sections.append(f"<h2>{html.escape(caption)}</h2><img src='{name}' alt='{name}'>")
            page.write_text(_page(run_dirs, summary, sections, data), encoding="utf-8")
    finally:
        plt.close("all")
    return out, summary
