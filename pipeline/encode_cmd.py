"""``pipeline encode``: stage 1, the teacher's vectors of a corpus written as shards."""

from __future__ import annotations

from pathlib import Path

import click

from data.batching import MAX_LENGTH
from data.errors import PipelineError
from data.manifest import DTYPES
from pipeline.options import MAX_LENGTH_LIMIT, config_defaults, device_option, precision_option
from pipeline.runtime import array_task, resolve_device
from stage1_encode.encode import EncodeConfig
from stage1_encode.precision import teacher_precision
from stage1_encode.teacher import TEACHER_POOLINGS

ENCODE = config_defaults(EncodeConfig)


@click.command()
@click.argument("corpus", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Shard dir.")
@click.option(
    "--dataset",
    default=None,
    help="Instead of CORPUS: a `datasets` corpus, local (parquet, JSON lines, CSV, Arrow file or "
    "folder, save_to_disk folder) or a Hub name, streamed.",
)
@click.option("--config", "dataset_config", default=None, help="--dataset configuration name.")
@click.option("--split", default="train", help="--dataset split.")
@click.option("--column", default="text", help="--dataset column holding the texts.")
@click.option("--teacher", default=None, help="HF name or folder [default: embedded MiniLM-L6]")
@click.option(
    "--pooling",
    type=click.Choice(TEACHER_POOLINGS),
    default=None,
    help="Sentence pooling [default: as the teacher declares, else mean]",
)
@click.option(
    "--normalize/--no-normalize", default=None, help="L2-normalise [default: as declared]"
)
@click.option(
    "--max-length",
    default=MAX_LENGTH,
    type=click.IntRange(8, MAX_LENGTH_LIMIT),
    help="Tokens per text.",
)
@click.option(
    "--max-tokens",
    default=ENCODE["max_tokens"],
    type=click.IntRange(64),
    help="Padded tokens/batch.",
)
@click.option(
    "--shard-size", default=ENCODE["shard_size"], type=click.IntRange(1), help="Corpus lines/shard."
)
@click.option("--dtype", type=click.Choice(DTYPES), default=ENCODE["dtype"])
@device_option
@precision_option
@click.option("--num-shards", type=click.IntRange(1), default=None, help="Array task count K.")
@click.option("--shard-index", type=click.IntRange(0), default=None, help="This task, 0..K-1.")
@click.option("--dedup", is_flag=True, help="Drop exact duplicate texts (counted).")
@click.option(
    "--reuse",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Shards of an earlier encoding by the same teacher and settings: texts found there "
    "take their stored vectors instead of a teacher pass.",
)
@click.option("--strict", is_flag=True, help="Fail on invalid UTF-8 instead of replacing it.")
@click.option("--overwrite", is_flag=True, help="Replace shards of another run in --out.")
@click.option("--trust-remote-code", is_flag=True, help="Allow the teacher's own model code.")
def encode(
    corpus,
    out,
    dataset,
    dataset_config,
    split,
    column,
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
    reuse,
    strict,
    overwrite,
    trust_remote_code,
) -> None:
    """Stage 1: encode CORPUS (.txt/.txt.gz files or directories), or a --dataset column, with
    the teacher into shards.

    Resumable: re-running skips complete shards. Split across array jobs with
    --num-shards K --shard-index I (read from SLURM_ARRAY_TASK_* when set).
    """
    from data.corpus import resolve_corpus
    from data.dataset_corpus import DatasetCorpus
    from stage1_encode.encode import run_encode
    from stage1_encode.teacher import Teacher

    if bool(corpus) == bool(dataset):
        raise PipelineError("give either CORPUS files or --dataset, not both or neither")
    if dataset:
        corpus = DatasetCorpus(dataset, split, column, dataset_config)
        corpus.check()  # fail on bad input before loading the teacher
    else:
        corpus = list(corpus)
        resolve_corpus(corpus)
    tasks, index = array_task(num_shards, shard_index)
    device = resolve_device(device)
    model = Teacher(
        teacher,
        pooling=pooling,
        normalize=normalize,
        max_length=max_length,
        device=device,
        trust_remote_code=trust_remote_code,
        precision=teacher_precision(precision, device, None if overwrite else out),
        require_precision=precision != "auto",
    )
    cfg = EncodeConfig(
        out=out,
        shard_size=shard_size,
        max_tokens=max_tokens,
        dtype=dtype,
        num_shards=tasks,
        shard_index=index,
        dedup=dedup,
        reuse=reuse,
        strict=strict,
        overwrite=overwrite,
    )
    summary = run_encode(corpus, model, cfg)
    click.echo(
        f"encoded {summary.rows} rows in {summary.seconds:.1f}s ({summary.rate:.1f} sentences/s, "
        f"{model.precision}); "
        f"{len(summary.written)} shard(s) written, {len(summary.skipped)} already complete -> {out}"
    )
