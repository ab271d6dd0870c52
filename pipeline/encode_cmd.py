"""``pipeline encode`` and ``pipeline shards``: stage 1 and its shard directory."""

from __future__ import annotations

import json
from pathlib import Path

import click

from data.errors import PipelineError
from pipeline.options import device_option, precision_option
from pipeline.runtime import array_task, resolve_device, resolve_precision


@click.command()
@click.argument("corpus", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Shard dir.")
@click.option("--teacher", default=None, help="HF name or folder [default: embedded MiniLM-L6]")
@click.option(
    "--pooling",
    type=click.Choice(["mean", "cls", "pooler"]),
    default=None,
    help="Sentence pooling [default: as the teacher declares, else mean]",
)
@click.option(
    "--normalize/--no-normalize", default=None, help="L2-normalise [default: as declared]"
)
@click.option("--max-length", default=128, type=click.IntRange(8, 8192), help="Tokens per text.")
@click.option("--max-tokens", default=8192, type=click.IntRange(64), help="Padded tokens/batch.")
@click.option("--shard-size", default=10_000, type=click.IntRange(1), help="Corpus lines/shard.")
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default="float16")
@device_option
@precision_option
@click.option("--num-shards", type=click.IntRange(1), default=None, help="Array task count K.")
@click.option("--shard-index", type=click.IntRange(0), default=None, help="This task, 0..K-1.")
@click.option("--dedup", is_flag=True, help="Drop exact duplicate texts (counted).")
@click.option("--strict", is_flag=True, help="Fail on invalid UTF-8 instead of replacing it.")
@click.option("--overwrite", is_flag=True, help="Replace shards of another run in --out.")
@click.option("--trust-remote-code", is_flag=True, help="Allow the teacher's own model code.")
def encode(
    corpus,
    out,
    teacher,
    pooling,
    normalize,
    max_length,
    max_tokens,
    shard_size,
    dtype,
    device,
    precision,
    num_shards,
    shard_index,
    dedup,
    strict,
    overwrite,
    trust_remote_code,
) -> None:
    """Stage 1: encode CORPUS (.txt/.txt.gz files or directories) with the teacher into shards.

    Resumable: re-running skips complete shards. Split across array jobs with
    --num-shards K --shard-index I (read from SLURM_ARRAY_TASK_* when set).
    """
    from data.corpus import resolve_corpus
    from stage1_encode.encode import EncodeConfig, run_encode
    from stage1_encode.teacher import Teacher

    resolve_corpus(list(corpus))  # fail on bad input before loading the teacher
    tasks, index = array_task(num_shards, shard_index)
    device = resolve_device(device)
    model = Teacher(
        teacher,
        pooling=pooling,
        normalize=normalize,
        max_length=max_length,
        device=device,
        trust_remote_code=trust_remote_code,
        precision=resolve_precision(precision, device, "teacher"),
    )
    cfg = EncodeConfig(
        out=out,
        shard_size=shard_size,
        max_tokens=max_tokens,
        dtype=dtype,
        num_shards=tasks,
        shard_index=index,
        dedup=dedup,
        strict=strict,
        overwrite=overwrite,
    )
    summary = run_encode(list(corpus), model, cfg)
    click.echo(
        f"encoded {summary.rows} rows in {summary.seconds:.1f}s ({summary.rate:.1f} sentences/s, "
        f"{model.precision}); "
        f"{len(summary.written)} shard(s) written, {len(summary.skipped)} already complete -> {out}"
    )


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
        raise PipelineError(
            f"{directory}: incomplete ({len(report.missing)} missing, {len(report.bad)} corrupt)"
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
        f"corpus       {len(corpus['paths'])} file(s), {corpus['lines']} lines, "
        f"sha256 {corpus['sha256'][:16]}…",
        f"shards       {len(manifest['shards'])} of {len(expected_shards(manifest))} complete, "
        f"{manifest['shard_size']} lines each, {manifest['dtype']}",
        "rows         " + ", ".join(f"{v} {k}" for k, v in totals.items()),
    ]
    click.echo("\n".join(lines))
