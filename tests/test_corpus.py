"""Corpus reading: line numbering, repairs, and refusal of inputs that are not text."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from data.corpus import LineStats, fingerprint, iter_lines, resolve_corpus
from data.errors import PipelineError


def test_blank_lines_skipped_but_numbered(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("first\n\n   \nfourth\n", encoding="utf-8")
    stats = LineStats()
    assert list(iter_lines([path], stats=stats)) == [(0, "first"), (3, "fourth")]
    assert stats.blank == 2


def test_numbering_continues_across_files_and_gzip(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\ntwo", encoding="utf-8")  # no final newline
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("three\nfour\n")
    (tmp_path / "notes.md").write_text("ignored\n", encoding="utf-8")
    files = resolve_corpus([tmp_path])
    assert [p.name for p in files] == ["a.txt", "b.txt.gz"]
    assert [n for n, _ in iter_lines(files)] == [0, 1, 2, 3]
    assert fingerprint(files).lines == 4


def test_crlf_and_bom_are_stripped(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(b"\xef\xbb\xbfhello world\r\nsecond line\r\n")
    assert list(iter_lines([path])) == [(0, "hello world"), (1, "second line")]


def test_invalid_utf8_replaced_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(b"good\nbad \xff byte\n")
    stats = LineStats()
    lines = list(iter_lines([path], stats=stats))
    assert lines[1] == (1, "bad \ufffd byte")
    assert stats.invalid_utf8 == 1


def test_invalid_utf8_strict_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(b"good\nbad \xff byte\n")
    with pytest.raises(PipelineError, match="line 2"):
        list(iter_lines([path], strict=True))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.txt", "no such file"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "no .txt"),
        (lambda d: (d / "b.txt").write_bytes(b"\x00\x01\x02binary") and d / "b.txt", "binary"),
        (lambda d: (d / "z.txt.gz").write_bytes(b"not gzip at all") and d / "z.txt.gz", "cannot"),
    ],
)
def test_bad_inputs_are_refused(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        resolve_corpus([make(tmp_path)])


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("a\nb\n", encoding="utf-8")
    before = fingerprint([path])
    path.write_text("a\nc\n", encoding="utf-8")
    assert fingerprint([path]).sha256 != before.sha256
