"""The figures README.md and docs/*.md quote agree with bench/results/*.json (bench/figures.py).

The repository check fails as soon as a benchmark is rerun without ``make figures`` or a marked
number is edited by hand; the small cases prove the check can fail and the rewrite repairs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.figures import FIGURES, RESULTS, SPAN, Figure, markdown_files, pct, render, update

TINY = {
    "speed.per_s": Figure("speed.json", "rows.0.sentences_per_second", "{:,.0f}"),
    "speed.share": Figure("speed.json", pct("share"), "{:.1f} %"),
}


def test_repository_figures_agree_with_their_json() -> None:
    mismatches = update(markdown_files(), check=True)
    assert not mismatches, "run `make figures`:\n" + "\n".join(map(str, mismatches))


def test_repository_marks_figures() -> None:
    """The README's results table is generated, not only a handful of spans elsewhere."""
    readme = markdown_files()[0].read_text(encoding="utf-8")
    assert len(SPAN.findall(readme)) >= 40
    assert all(name in FIGURES for name, _ in SPAN.findall(readme))


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    """A results folder with one JSON, and a markdown file quoting it with one stale figure."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "speed.json").write_text(
        json.dumps({"rows": [{"sentences_per_second": 1719.51}], "share": 0.9576})
    )
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Speed\n\n"
        "The student: <!-- fig:speed.per_s -->1,720<!-- /fig --> sentences/s,\n"
        "at <!-- fig:speed.share -->96.3 %<!-- /fig --> of the teacher.\n"
    )
    return results, doc


def test_check_reports_each_disagreement_and_writes_nothing(tiny: tuple[Path, Path]) -> None:
    results, doc = tiny
    before = doc.read_text()
    mismatches = update([doc], check=True, figures=TINY, results=results)
    assert [(m.line, m.name, m.written, m.expected) for m in mismatches] == [
        (4, "speed.share", "96.3 %", "95.8 %")
    ]
    assert "doc.md:4: speed.share: written '96.3 %', JSON says '95.8 %'" in str(mismatches[0])
    assert doc.read_text() == before


def test_rewrite_fixes_the_text_and_then_the_check_passes(tiny: tuple[Path, Path]) -> None:
    results, doc = tiny
    update([doc], check=False, figures=TINY, results=results)
    assert "at <!-- fig:speed.share -->95.8 %<!-- /fig --> of the teacher." in doc.read_text()
    assert update([doc], check=True, figures=TINY, results=results) == []


def test_a_rerun_benchmark_makes_the_check_fail(tiny: tuple[Path, Path]) -> None:
    results, doc = tiny
    update([doc], check=False, figures=TINY, results=results)
    (results / "speed.json").write_text(
        json.dumps({"rows": [{"sentences_per_second": 2000.0}], "share": 0.9576})
    )
    [mismatch] = update([doc], check=True, figures=TINY, results=results)
    assert (mismatch.written, mismatch.expected) == ("1,720", "2,000")


def test_an_unknown_figure_name_is_an_error(tiny: tuple[Path, Path]) -> None:
    results, doc = tiny
    doc.write_text("<!-- fig:speed.renamed -->1<!-- /fig -->\n")
    with pytest.raises(KeyError, match=r"speed\.renamed"):
        update([doc], check=True, figures=TINY, results=results)


def test_every_registered_figure_renders() -> None:
    """A benchmark that drops or renames a field breaks here, not silently in a doc."""
    for name in FIGURES:
        assert render(name, FIGURES, RESULTS)
