"""``pipeline index`` and ``pipeline search``: semantic search over a text collection."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from data.errors import PipelineError
from pipeline.options import device_option, encode_batch_option, precision_option
from pipeline.runtime import load_encoder_as
from stage3_eval.knn import DEFAULT_INDEX_KIND, INDEX_KINDS


@click.command("index")
@click.option("--model", required=True, help="Student dir, 'teacher' or an HF encoder path.")
@click.option(
    "--corpus",
    "corpus",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Texts to index (.txt/.txt.gz, one per line, or a directory); repeatable.",
)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Index dir.")
@click.option(
    "--kind",
    type=click.Choice(INDEX_KINDS),
    default=DEFAULT_INDEX_KIND,
    help="faiss index; ivf/hnsw answer faster on millions of texts, approximately.",
)
@encode_batch_option
@device_option
@precision_option
@click.option("--overwrite", is_flag=True, help="Replace an index of another model or corpus.")
def index_cmd(model, corpus, out, kind, batch_size, device, precision, overwrite) -> None:
    """Encode a text collection and write a faiss index directory (streaming, resumable as a no-op
    when the same index is already complete)."""
    from data.corpus import resolve_corpus
    from stage3_eval.search import build_index_dir

    resolve_corpus(list(corpus))  # fail on bad input before loading the model
    encoder = load_encoder_as(model, device, batch_size, precision)
    summary = build_index_dir(encoder, list(corpus), out, kind=kind, overwrite=overwrite)
    if not summary.built:
        click.echo(f"{out}: index of {summary.rows} texts already complete")
        return
    click.echo(
        f"indexed {summary.rows} texts in {summary.seconds:.1f}s "
        f"({summary.rate:.0f} sentences/s, {encoder.precision}) -> {out}"
    )


@click.command("search")
@click.option("--index", "index_dir", required=True, type=click.Path(path_type=Path))
@click.argument("queries", nargs=-1)
@click.option("-k", default=10, type=click.IntRange(1), help="Hits per query.")
@click.option("--model", default=None, help="Encoder [default: the one that built the index]")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per query.")
def search_cmd(index_dir, queries, k, model, as_json) -> None:
    """Print the top hits for each QUERY (or for each line of stdin) with cosine scores."""
    from stage3_eval.encoders import load_encoder
    from stage3_eval.search import SearchIndex

    index = SearchIndex(index_dir)
    if not queries and sys.stdin.isatty():
        raise PipelineError("no query given (pass it as an argument or on stdin)")
    queries = list(queries) or [line.strip() for line in sys.stdin if line.strip()]
    if not queries:
        raise PipelineError("stdin held no query")
    encoder = load_encoder(model or index.meta["model"])
    for query, hits in zip(queries, index.search(encoder, queries, k), strict=True):
        if as_json:
            record = {"query": query, "hits": [hit.__dict__ for hit in hits]}
            click.echo(json.dumps(record, ensure_ascii=False))
            continue
        click.echo(f"query: {query}")
        for hit in hits:
            click.echo(f"{hit.rank:>4}  {hit.score:.4f}  {hit.text}")
