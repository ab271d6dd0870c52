"""``pipeline corpus``: documents in, a shuffled, deduplicated sentence corpus out, in the gzip
parts that ``pipeline encode DIR`` reads."""

from __future__ import annotations

from pathlib import Path

import click

from data.document_corpus import CorpusOptions
from data.documents import TXT_DOCUMENTS
from data.errors import PipelineError
from data.sentences import LINE_BREAKS, SentenceRules
from pipeline.options import FiniteRange, config_defaults

CORPUS = config_defaults(CorpusOptions)
RULES = config_defaults(SentenceRules)


@click.command("corpus")
@click.argument("docs", nargs=-1, type=str)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Corpus dir.")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    help="A `datasets` source too (a Hub name, or a local one), one document per row; "
    "repeatable, NAME=SOURCE to name it.",
)
@click.option("--config", "dataset_config", default=None, help="--dataset configuration name.")
@click.option("--split", default="train", help="--dataset (and parquet/CSV/Arrow) split.")
@click.option(
    "--column", default=CORPUS["column"], help="Field (JSON lines) or column holding the text."
)
@click.option(
    "--txt-documents",
    type=click.Choice(TXT_DOCUMENTS),
    default=CORPUS["txt_documents"],
    help="In .txt files, a blank line ends a document, or each file is one document.",
)
@click.option(
    "--line-breaks",
    type=click.Choice(LINE_BREAKS),
    default=CORPUS["line_breaks"],
    help="A single line break is a space (hard-wrapped text) or ends a paragraph (one "
    "paragraph per line, e.g. WikiExtractor output).",
)
@click.option("--min-words", default=RULES["min_words"], type=click.IntRange(1))
@click.option("--max-words", default=RULES["max_words"], type=click.IntRange(1))
@click.option("--min-chars", default=RULES["min_chars"], type=click.IntRange(1))
@click.option("--max-chars", default=RULES["max_chars"], type=click.IntRange(1))
@click.option(
    "--min-letters",
    default=RULES["min_letters"],
    type=FiniteRange(0, 1),
    help="Least share of letters among a sentence's non-space characters.",
)
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="SOURCE=W",
    help="Mixing weight: each source's share of the corpus is W over the sum of weights, each "
    "capped by a seeded uniform sample [default: every sentence of every source].",
)
@click.option("--seed", default=CORPUS["seed"], type=click.IntRange(0), help="Shuffle seed.")
@click.option(
    "--part-size", default=CORPUS["part_size"], type=click.IntRange(1), help="Lines per part."
)
@click.option("--overwrite", is_flag=True, help="Replace a corpus built with other options.")
def corpus(
    docs,
    out,
    datasets,
    dataset_config,
    split,
    column,
    txt_documents,
    line_breaks,
    min_words,
    max_words,
    min_chars,
    max_chars,
    min_letters,
    weights,
    seed,
    part_size,
    overwrite,
) -> None:
    """Split DOCS (.txt/.txt.gz, JSON lines, parquet/CSV/Arrow files or folders of them;
    NAME=PATH names a source) into sentences for `pipeline encode OUT`.

    Sentences are normalised, filtered, deduplicated across sources (case and punctuation
    folded; the first occurrence stays), shuffled by --seed and written as part-NNN.txt.gz of
    --part-size lines, with counts per source in OUT/stats.json. A re-run gives identical bytes.
    """
    from data.document_corpus import build_corpus
    from data.documents import resolve_sources

    sources = resolve_sources(
        list(docs), list(datasets), column=column, split=split, config=dataset_config
    )
    options = CorpusOptions(
        seed=seed,
        part_size=part_size,
        column=column,
        txt_documents=txt_documents,
        line_breaks=line_breaks,
        rules=SentenceRules(min_words, max_words, min_chars, max_chars, min_letters),
        weights=parse_weights(weights),
    )
    summary = build_corpus(sources, out, options, overwrite=overwrite)
    for name, counts in summary.sources.items():
        mixed = f", {counts.over_weight:,} over its weight" if options.weights else ""
        click.echo(
            f"{name}: {counts.documents:,} documents, {counts.sentences:,} sentences, kept "
            f"{counts.kept:,} ({sum(counts.dropped.values()):,} filtered, "
            f"{counts.duplicates:,} duplicates{mixed})"
        )
    click.echo(f"wrote {summary.lines:,} sentences in {len(summary.parts)} part(s) -> {out}")


def parse_weights(values: tuple[str, ...]) -> dict[str, float]:
    """``SOURCE=W`` options as ``{source: weight}``; which sources exist is checked later."""
    weights: dict[str, float] = {}
    for value in values:
        name, equals, number = value.rpartition("=")
        try:
            weight = float(number) if equals and name else None
        except ValueError:
            weight = None
        if weight is None:
            raise PipelineError(f"--weight {value!r}: expected SOURCE=W, e.g. wiki=3")
        if name in weights:
            raise PipelineError(f"--weight {name}: given twice")
        weights[name] = weight
    return weights
