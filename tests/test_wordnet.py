"""WordNet glosses and examples as a corpus, from a small fixture in the real file format."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from data.errors import PipelineError
from data.wordnet import WORDNET_DIR, extract, split_gloss
from pipeline.cli import main

LICENCE = "  1 This software and database is being provided to you, the LICENSEE...  \n"
LINES = {
    "noun": [
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived or known "
        "or inferred to have its own distinct existence (living or nonliving)  \n",
        '02084071 05 n 01 dog 0 000 | a member of the genus Canis; "the dog barked all night"  \n',
    ],
    "verb": [
        "00022686 29 v 02 stimulate 0 arouse 0 000 | cause to be alert and energetic; "
        '"Coffee and tea stimulate me"; "This herbal infusion doesn\'t stimulate"  \n'
    ],
    "adj": ["00002730 00 a 01 acroscopic 0 000 | facing or on the side toward the apex  \n"],
    "adv": [
        '00001740 02 r 01 barely 0 000 | only just; "we barely made it"; '
        '"the dog barked all night"  \n'
    ],
}


@pytest.fixture
def wordnet_dir(tmp_path) -> Path:
    for pos, lines in LINES.items():
        (tmp_path / f"data.{pos}").write_text(LICENCE + "".join(lines), encoding="utf-8")
    return tmp_path


def test_split_gloss_separates_definition_and_examples():
    assert split_gloss('only just; "we barely made it"; "no"') == (
        "only just",
        ["we barely made it", "no"],
    )
    assert split_gloss("a member of the genus Canis; (in compounds) x") == (
        "a member of the genus Canis; (in compounds) x",
        [],
    )
    assert split_gloss('"go!" - Shakespeare') == ("", ["go!"])


def test_extract_writes_glosses_then_examples_deduplicated(wordnet_dir, tmp_path):
    out = tmp_path / "out" / "corpus.txt"
    summary = extract(out, wordnet_dir)
    assert out.read_text(encoding="utf-8").splitlines() == [
        "that which is perceived or known or inferred to have its own distinct existence "
        "(living or nonliving)",
        "a member of the genus Canis",
        "the dog barked all night",
        "cause to be alert and energetic",
        "Coffee and tea stimulate me",
        "This herbal infusion doesn't stimulate",
        "facing or on the side toward the apex",
        "only just",
        "we barely made it",
    ]
    assert (summary.glosses, summary.examples, summary.duplicates) == (5, 4, 1)
    assert extract(tmp_path / "e.txt", wordnet_dir, kind="examples", dedup=False).written == 5


def test_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(PipelineError, match="apt-get install wordnet-base"):
        extract(tmp_path / "c.txt", tmp_path)
    assert not (tmp_path / "c.txt").exists()


def test_corrupt_line_names_file_and_line(wordnet_dir, tmp_path):
    (wordnet_dir / "data.verb").write_text(LICENCE + "garbage without a gloss\n")
    with pytest.raises(PipelineError, match=r"data\.verb:2: not a WordNet data line"):
        extract(tmp_path / "c.txt", wordnet_dir)
    assert not (tmp_path / "c.txt").exists()


def test_cli(wordnet_dir, tmp_path):
    out = tmp_path / "corpus.txt"
    result = CliRunner().invoke(
        main, ["data", "wordnet", "--out", str(out), "--wordnet-dir", str(wordnet_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 9 texts (5 glosses, 4 examples; 1 duplicates dropped)" in result.output


@pytest.mark.skipif(not (WORDNET_DIR / "data.noun").is_file(), reason="wordnet-base not installed")
def test_real_wordnet(tmp_path):
    summary = extract(tmp_path / "c.txt", WORDNET_DIR)
    assert 160_000 < summary.written < 170_000  # 116,683 glosses + 48,195 examples in 3.0
    assert summary.examples > 45_000
