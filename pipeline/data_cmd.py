"""``pipeline data``: build ready-made corpora that need nothing from a hub."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("data")
def data_group() -> None:
    """Prepare corpora for `pipeline encode`."""


@data_group.command("wordnet")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Corpus file.")
@click.option(
    "--wordnet-dir",
    default=Path("/usr/share/wordnet"),
    type=click.Path(path_type=Path),
    help="Folder with data.noun/verb/adj/adv (Debian package wordnet-base).",
)
@click.option("--kind", type=click.Choice(["both", "glosses", "examples"]), default="both")
@click.option("--keep-duplicates", is_flag=True, help="Keep repeated texts.")
def wordnet_cmd(out, wordnet_dir, kind, keep_duplicates) -> None:
    """Extract WordNet 3.0 glosses and example sentences, one text per line."""
    from data.wordnet import extract

    summary = extract(out, wordnet_dir, kind=kind, dedup=not keep_duplicates)
    click.echo(
        f"wrote {summary.written:,} texts ({summary.glosses:,} glosses, {summary.examples:,} "
        f"examples; {summary.duplicates:,} duplicates dropped) -> {out}"
    )
