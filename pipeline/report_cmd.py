"""``pipeline report``: one static HTML page of every result and training curve of some runs."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    default=None,
    type=click.Path(path_type=Path),
    help="HTML file to write [default: FIRST_RUN_DIR/report.html]",
)
def report_cmd(run_dirs, out) -> None:
    """Gather results.json, metrics.jsonl, student configs and shard manifests under RUN_DIRS
    into report.html with PNG plots (static, opens offline), and print a five-line summary."""
    from stage3_eval.report import write_report

    path, summary = write_report(list(run_dirs), out or Path(run_dirs[0]) / "report.html")
    click.echo("\n".join(summary))
    click.echo(f"report -> {path.resolve()}")
