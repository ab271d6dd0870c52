"""``pipeline shards``: check and describe a shard directory written by ``pipeline encode``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from data.errors import PipelineError


@click.group("shards")
def shards_group() -> None:
    """Inspect and check a shard directory."""


@shards_group.command("verify")
@click.argument("directory", type=click.Path(path_type=Path))
def verify_cmd(directory: Path) -> None:
    """Check every shard's checksum and row count; exit 1 if any is missing or corrupt."""
    from data.shards import verify

    report = verify(directory)
    for name in report.missing:
        click.echo(f"missing: {name}")
    for problem in report.bad:
        click.echo(f"corrupt: {problem}")
    click.echo(f"{report.checked} shard(s) checked, {report.rows} rows verified")
    if not report.ok:
        first = f"; {report.bad[0]}" if report.bad else ""
        raise PipelineError(
            f"{directory}: incomplete ({len(report.missing)} missing, {len(report.bad)} corrupt)"
            + first
        )


@shards_group.command("info")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def info_cmd(directory: Path, as_json: bool) -> None:
    """Print a shard directory's provenance and counts."""
    from data.shards import expected_shards, read_manifest

    manifest = read_manifest(directory)
    if as_json:
        click.echo(json.dumps(manifest, indent=2, sort_keys=True))
        return
    records = manifest["shards"].values()
    teacher, corpus = manifest["teacher"], manifest["corpus"]
    totals = {
        k: sum(r.get(k, 0) for r in records)
        for k in ("rows", "blank", "duplicates", "truncated", "invalid_utf8")
    }
    lines = [
        f"teacher      {teacher['name_or_path']}",
        f"             sha256 {teacher['weights_sha256'][:16]}…  dim {teacher['hidden_size']}  "
        f"pooling {teacher['pooling']}  normalize {teacher['normalize']}  "
        f"max_length {teacher['max_length']}  precision {teacher.get('precision', 'fp32')}",
        f"corpus       {_corpus_source(corpus)}, {corpus['lines']} lines, "
        f"sha256 {corpus['sha256'][:16]}…",
        f"shards       {len(manifest['shards'])} of {len(expected_shards(manifest))} complete, "
        f"{manifest['shard_size']} lines each, {manifest['dtype']}",
        "rows         " + ", ".join(f"{v} {k}" for k, v in totals.items()),
    ]
    click.echo("\n".join(lines))


def _corpus_source(corpus: dict) -> str:
    dataset = corpus.get("dataset")
    if dataset:
        return f"dataset {dataset['name']} split {dataset['split']} column {dataset['column']}"
    return f"{len(corpus['paths'])} file(s)"
