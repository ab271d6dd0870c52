"""``pipeline eval``: stage-3 evaluations (zero-shot STS and the kNN probe here; GLUE beside)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.options import (
    FiniteRange,
    device_option,
    encode_batch_option,
    precision_option,
    results_out_option,
)
from pipeline.runtime import load_encoder_as

MODEL_HELP = "Student dir, 'teacher' (embedded) or an HF encoder path; repeat to compare."


@click.group("eval")
def eval_group() -> None:
    """Stage 3: evaluate students and teachers; every command writes OUT/results.json."""


def _load(specs: tuple[str, ...], device: str, batch_size: int, precision: str):
    for spec in specs:
        yield load_encoder_as(spec, device, batch_size, precision)


@eval_group.command("sts")
@click.option("--model", "models", multiple=True, required=True, help=MODEL_HELP)
@click.option(
    "--data",
    "files",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="STS-B dev.tsv layout or sentence1<TAB>sentence2<TAB>score; repeatable.",
)
@results_out_option
@encode_batch_option
@device_option
@precision_option
def sts_cmd(models, files, out, batch_size, device, precision) -> None:
    """Zero-shot cosine Pearson and Spearman (x100 in the table) on STS files."""
    from data.sts import read_sts
    from stage3_eval.results import write_results
    from stage3_eval.sts import evaluate_sts, sts_results

    datasets = [read_sts(f) for f in files]  # fail on bad input before loading any model
    rows, entries = [], []
    for encoder in _load(models, device, batch_size, precision):
        for pairs in datasets:
            score = evaluate_sts(encoder, pairs)
            entries += sts_results(encoder, pairs.name, score)
            rows.append(
                f"{encoder.label:<40} {pairs.name:<16} {100 * score.pearson:8.2f} "
                f"{100 * score.spearman:9.2f} {score.sentences_per_second:9.0f}"
            )
    path = write_results(out, entries)
    click.echo(f"{'model':<40} {'data':<16} {'pearson':>8} {'spearman':>9} {'sent/s':>9}")
    click.echo("\n".join(rows))
    click.echo(f"results -> {path}")


@eval_group.command("probe")
@click.option("--model", "models", multiple=True, required=True, help=MODEL_HELP)
@click.option(
    "--targets",
    required=True,
    type=click.Path(path_type=Path),
    help="Shard dir of teacher vectors (stage 1); its validation rows are probed.",
)
@click.option(
    "--validation-fraction",
    default=None,
    type=FiniteRange(0, 1, min_open=True),
    help="Held-out share of rows [default: the student's own, else stage 2's]",
)
@click.option("--max-rows", default=None, type=click.IntRange(2), help="Cap the probed rows.")
@click.option(
    "-k",
    "ks",
    multiple=True,
    default=(1, 10),
    type=click.IntRange(1),
    help="Neighbour counts to report recall at; repeatable.",
)
@click.option(
    "--index",
    "index_kind",
    type=click.Choice(["exact", "ivf", "hnsw"]),
    default="exact",
    help="faiss search; ivf/hnsw are approximate, for large sets.",
)
@results_out_option
@encode_batch_option
@device_option
@precision_option
def probe_cmd(
    models,
    targets,
    validation_fraction,
    max_rows,
    ks,
    index_kind,
    out,
    batch_size,
    device,
    precision,
) -> None:
    """kNN recall@k of the teacher's neighbours and mean cosine on held-out shard rows."""
    from data.shards import ShardStore
    from stage3_eval.probe import held_out_rows, probe_results, resolve_fraction, run_probe
    from stage3_eval.results import write_results

    store = ShardStore(targets)
    rows, entries = [], []
    for encoder in _load(models, device, batch_size, precision):
        fraction = resolve_fraction(validation_fraction, encoder)
        held = held_out_rows(store, fraction, max_rows)
        score = run_probe(encoder, held, tuple(sorted(set(ks))), index_kind)
        entries += probe_results(encoder, targets, score, fraction, index_kind)
        recalls = "  ".join(f"R@{k} {v:.3f}" for k, v in score.recall.items())
        cosine = "n/a" if score.mean_cosine is None else f"{score.mean_cosine:.4f}"
        rows.append(
            f"{encoder.label}: {score.rows} rows  {recalls}  cos {cosine}  "
            f"{score.sentences_per_second:.0f} sent/s"
        )
    path = write_results(out, entries)
    click.echo("\n".join(rows))
    click.echo(f"results -> {path}")
