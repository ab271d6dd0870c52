"""`pipeline corpus`: documents from text, JSON lines and parquet sources become deduplicated,
filtered, shuffled gzip parts with exact counts per source, identical on every run, that
`pipeline encode DIR` reads; bad input and foreign folders are refused in one line."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from data import document_corpus
from data.document_corpus import STATS, mix_quotas, part_name
from data.errors import PipelineError
from data.sentences import SentenceRules, SentenceSplitter, fold, paragraphs
from pipeline.cli import main
from tests.cli_helpers import refused, snapshot

LONG_WORDS = " ".join(["extraordinarily"] * 30) + "."  # 30 words, 480 characters
MANY_WORDS = " ".join(["ab"] * 81) + "."
WIKI = f"""Dr. Smith walked to the old river bridge at dawn. He watched the boats
drift slowly past the mill.

Read more at https://example.org/wiki about the bridge history.
Write to editor@example.org with any corrections you find.
Too short here. I am at it.
The totals were 1,234,567 and 8,901,234 in 1987.

The boats drift slowly past the old mill every morning.
THE BOATS DRIFT SLOWLY PAST THE OLD MILL, EVERY MORNING!
{MANY_WORDS}
{LONG_WORDS}
"""
TICKETS = [
    {"id": 1, "text": "My printer on the third floor stopped working. It shows a paper jam error."},
    {"id": 2, "text": None},
    {"id": 3, "text": "The boats drift slowly past the old mill every morning."},
    {"id": 4, "text": "Please reset my password for the billing portal.\n\nThanks for the help."},
]
KEPT = {
    "Dr. Smith walked to the old river bridge at dawn.",
    "He watched the boats drift slowly past the mill.",
    "The boats drift slowly past the old mill every morning.",
    "My printer on the third floor stopped working.",
    "It shows a paper jam error.",
    "Please reset my password for the billing portal.",
    "Thanks for the help.",
}
NO_DROPS = dict.fromkeys(document_corpus.DROP_REASONS, 0)


def run(*args: str | Path) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def docs(tmp_path) -> tuple[Path, Path]:
    wiki, tickets = tmp_path / "wiki.txt", tmp_path / "tickets.jsonl"
    wiki.write_text(WIKI, encoding="utf-8")
    tickets.write_text("".join(json.dumps(t) + "\n" for t in TICKETS), encoding="utf-8")
    return wiki, tickets


def build(out: Path, *args: str | Path) -> object:
    result = run("corpus", *args, "--out", out)
    assert result.exit_code == 0, result.output
    return result


def lines_of(out: Path) -> list[str]:
    names = json.loads((out / STATS).read_text())["parts"]
    assert sorted(p.name for p in out.glob("part-*")) == [part["file"] for part in names]
    return [
        line
        for part in names
        for line in gzip.decompress((out / part["file"]).read_bytes()).decode().splitlines()
    ]


def test_counts_per_source_and_kept_sentences(tmp_path, docs):
    out = tmp_path / "corpus"
    result = build(out, *docs)
    stats = json.loads((out / STATS).read_text())
    assert stats["sources"]["wiki"] == {
        "documents": 3,
        "sentences": 11,
        "dropped": {
            **NO_DROPS,
            "url_or_email": 2,
            "too_few_words": 1,
            "too_short": 1,
            "too_few_letters": 1,
            "too_many_words": 1,
            "too_long": 1,
        },
        "duplicates": 1,
        "over_weight": 0,
        "kept": 3,
    }
    assert stats["sources"]["tickets"] == {
        "documents": 3, "sentences": 5, "dropped": NO_DROPS, "duplicates": 1, "over_weight": 0,
        "kept": 4,
    }  # fmt: skip
    assert set(lines_of(out)) == KEPT and stats["lines"] == len(lines_of(out)) == 7
    assert stats["inputs"] == {"wiki": {"files": [str(docs[0])]},
                               "tickets": {"files": [str(docs[1])]}}  # fmt: skip
    assert stats["options"]["rules"] == {"min_words": 4, "max_words": 80, "min_chars": 20,
                                         "max_chars": 400, "min_letters": 0.6}  # fmt: skip
    assert "wiki: 3 documents, 11 sentences, kept 3 (7 filtered, 1 duplicates)" in result.output
    assert f"wrote 7 sentences in 1 part(s) -> {out}" in result.output


def test_reruns_are_byte_identical_and_the_order_is_the_seeds(tmp_path, docs):
    first, second = tmp_path / "first", tmp_path / "second"
    build(first, *docs, "--part-size", "3")
    build(second, *docs, "--part-size", "3")
    assert snapshot(first) == snapshot(second)
    assert sorted(snapshot(first)) == ["part-000.txt.gz", "part-001.txt.gz", "part-002.txt.gz",
                                       STATS]  # fmt: skip
    before = snapshot(first)
    build(first, *docs, "--part-size", "3")  # the same command again: the same bytes
    assert snapshot(first) == before
    swapped = tmp_path / "swapped"
    build(swapped, docs[1], docs[0], "--part-size", "3")  # the order is by hash, not by input
    assert lines_of(swapped) == lines_of(first)
    other_seed = tmp_path / "seed"
    build(other_seed, *docs, "--seed", "7")
    assert sorted(lines_of(other_seed)) == sorted(lines_of(first))
    assert lines_of(other_seed) != lines_of(first)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_weights_cap_each_source_at_its_share(tmp_path, docs):
    out = tmp_path / "mixed"
    build(out, *docs, "--weight", "wiki=1", "--weight", "tickets=2")
    sources = json.loads((out / STATS).read_text())["sources"]
    assert (sources["wiki"]["kept"], sources["tickets"]["kept"]) == (2, 4)  # 6 = 3 / (1/3) x ...
    assert sources["wiki"]["over_weight"] == 1
    for counts in sources.values():
        total = sum(counts["dropped"].values()) + counts["duplicates"] + counts["over_weight"]
        assert total + counts["kept"] == counts["sentences"]
    assert len(lines_of(out)) == 6 and set(lines_of(out)) < KEPT
    again = tmp_path / "again"
    build(again, *docs, "--weight", "wiki=1", "--weight", "tickets=2")
    assert snapshot(again) == snapshot(out)


def test_mix_quotas_are_exact_shares_of_the_largest_mix():
    assert mix_quotas({"a": 10, "b": 4}, {}) == {"a": 10, "b": 4}
    assert mix_quotas({"a": 10, "b": 4}, {"a": 1, "b": 1}) == {"a": 4, "b": 4}
    assert mix_quotas({"a": 900, "b": 100}, {"a": 0.1, "b": 0.2}) == {"a": 50, "b": 100}
    with pytest.raises(PipelineError, match="source b kept no sentence"):
        mix_quotas({"a": 3, "b": 0}, {"a": 1, "b": 1})


def test_encode_reads_the_corpus_folder(tmp_path, docs, tiny_teacher_dir):
    out = tmp_path / "corpus"
    build(out, *docs, "--part-size", "3")
    shards_dir = tmp_path / "shards"
    result = run("encode", out, "--out", shards_dir, "--teacher", tiny_teacher_dir,
                 "--device", "cpu", "--shard-size", "4")  # fmt: skip
    assert result.exit_code == 0, result.output
    corpus = json.loads((shards_dir / "manifest.json").read_text())["corpus"]
    assert corpus["lines"] == 7
    assert corpus["paths"] == [str(out / part_name(i, 3)) for i in range(3)]


def test_parquet_folder_of_documents_and_line_breaks(tmp_path):
    table = pa.table({"body": ["The first row is a document. It has two sentences.", "  "]})
    pq.write_table(table, tmp_path / "rows.parquet")
    tickets = tmp_path / "tickets"
    tickets.mkdir()
    for name in ("a.txt", "b.txt.gz"):
        text = "History\nThe town was founded in 1850 by settlers.\n\nIt grew along the river."
        data = text.encode()
        (tickets / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    out = tmp_path / "out"
    build(out, "rows=" + str(tmp_path / "rows.parquet"), tickets, "--column", "body",
          "--txt-documents", "file")  # fmt: skip
    stats = json.loads((out / STATS).read_text())
    assert stats["sources"]["rows"]["documents"] == 1
    assert stats["inputs"]["rows"]["dataset"]["builder"] == "parquet"
    assert stats["sources"]["tickets"]["documents"] == 2  # one per file, paragraphs inside
    assert stats["sources"]["tickets"]["duplicates"] == 2  # b.txt.gz repeats a.txt
    assert "History The town was founded in 1850 by settlers." in lines_of(out)
    per_line = tmp_path / "per-line"
    build(per_line, tickets, "--line-breaks", "paragraph")
    assert "The town was founded in 1850 by settlers." in lines_of(per_line)
    found = json.loads((per_line / STATS).read_text())["sources"]["tickets"]
    assert found["documents"] == 4 and found["dropped"]["too_few_words"] == 2  # "History"


def test_sentences_filters_and_folding():
    splitter = SentenceSplitter()
    text = "Mr. Brown paid $3.50 for it, e.g. at the U.S. store. Then he left!"
    assert [s for s, _ in splitter.split([(text, None)])] == [
        "Mr. Brown paid $3.50 for it, e.g. at the U.S. store.",
        "Then he left!",
    ]
    assert paragraphs("one\ntwo\n \n\nthree\tfour") == ["one two", "three four"]
    assert paragraphs("one\ntwo", "paragraph") == ["one", "two"]
    assert fold("The Cat, the HAT!") == fold("the cat the hat") == "the cat the hat"
    rules = SentenceRules()
    assert rules.drop_reason("The quick brown fox jumps over the dog.") is None
    assert rules.drop_reason("Mail me at a.b@example.com today please.") == "url_or_email"
    assert rules.drop_reason("See www.example.com for the full story.") == "url_or_email"
    assert rules.drop_reason("1 2 3 4 5 6 7 8 9 10 11 12 13 and so on.") == "too_few_letters"


def test_interrupted_write_leaves_the_earlier_corpus(tmp_path, docs, monkeypatch):
    out = tmp_path / "corpus"
    build(out, *docs, "--part-size", "2")
    before = snapshot(out)
    calls = []

    def interrupt(self, sentence):
        calls.append(sentence)
        if len(calls) == 5:
            raise KeyboardInterrupt

    original = document_corpus._PartWriter.write
    monkeypatch.setattr(document_corpus._PartWriter, "write",
                        lambda self, s: (interrupt(self, s), original(self, s)))  # fmt: skip
    result = run("corpus", *docs, "--part-size", "2", "--out", out)
    assert result.exit_code == 130 and "re-run the same command" in result.output
    assert snapshot(out) == before
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_sigkill_leaves_nothing_and_the_rerun_is_identical(tmp_path, docs):
    big = tmp_path / "big.txt"
    big.write_text(
        "\n\n".join(f"Document {i} has a first sentence here. Its number is {i} in words "
                    f"{'and more ' * (i % 7)}today." for i in range(4000)),
        encoding="utf-8",
    )  # fmt: skip
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    build(clean, big, "--part-size", "1000")
    command = [sys.executable, "-m", "pipeline", "corpus", str(big), "--part-size", "1000",
               "--out", str(killed)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 60
    while not list(tmp_path.glob(".killed.tmp-*")) and process.poll() is None:
        assert time.time() < deadline
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL  # killed mid-run, not finished
    assert not killed.exists()  # the staging folder is a hidden sibling; --out is never half
    build(killed, big, "--part-size", "1000")
    assert snapshot(killed) == snapshot(clean) and len(lines_of(clean)) == 8000
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_overwrite_replaces_only_this_commands_parts(tmp_path, docs):
    out = tmp_path / "corpus"
    build(out, *docs, "--part-size", "2")
    (out / "README.md").write_text("my notes")
    refused(["corpus", *docs, "--part-size", "3", "--out", out],
            "holds a corpus of other options (part_size: 2 there, 3 here)", "--overwrite",
            untouched=out)  # fmt: skip
    refused(["corpus", docs[0], "--out", out], "other inputs (tickets:", untouched=out)
    build(out, *docs, "--part-size", "3", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "part-000.txt.gz", "part-001.txt.gz", "part-002.txt.gz", STATS,
    ]  # fmt: skip
    assert (out / "README.md").read_text() == "my notes"


def _bad_json(d: Path) -> list:
    (d / "t.jsonl").write_text('{"text": "A fine first document is here."}\n{oops\n')
    return [d / "t.jsonl"]


def _no_field(d: Path) -> list:
    (d / "t.jsonl").write_text('{"id": 1, "body": "A fine first document is here."}\n')
    return [d / "t.jsonl"]


def _not_text(d: Path) -> list:
    (d / "t.jsonl").write_text('{"text": 5}\n')
    return [d / "t.jsonl"]


def _binary(d: Path) -> list:
    (d / "b.txt").write_bytes(b"abc\x00def\n")
    return [d / "b.txt"]


def _nothing_kept(d: Path) -> list:
    (d / "s.txt").write_text("Hi.\n\nNo.\n")
    return [d / "s.txt"]


def _twice_named(d: Path) -> list:
    for sub in ("a", "b"):
        (d / sub).mkdir()
        (d / sub / "x.txt").write_text("A fine first document is here.\n")
    return [d / "a" / "x.txt", d / "b" / "x.txt"]


def _two(d: Path) -> list:
    for name in ("a", "b"):
        (d / f"{name}.txt").write_text("A fine first document is here.\n")
    return [d / "a.txt", d / "b.txt"]


def _pdf(d: Path) -> list:
    (d / "paper.pdf").write_bytes(b"%PDF-1.4")
    return [d / "paper.pdf"]


def _empty_dir(d: Path) -> list:
    (d / "empty").mkdir()
    return [d / "empty"]


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (_bad_json, [], "t.jsonl:2: not JSON"),
        (_no_field, [], "t.jsonl:1: no field 'text' (fields: body, id); name the text field"),
        (_not_text, [], "field 'text' holds int, not text"),
        (_binary, [], "b.txt: NUL byte at corpus line 1"),
        (_nothing_kept, [], "no sentence kept: 2 found"),
        (_twice_named, [], "two sources are named 'x'; name them apart as NAME=PATH"),
        (_pdf, [], "paper.pdf: not a document file"),
        (_empty_dir, [], "folder holds no document files"),
        (lambda d: [d / "missing.txt"], [], "no such file or directory (a Hub dataset goes in"),
        (lambda d: [], [], "no documents given"),
        (_nothing_kept, ["--weight", "other=1"], "--weight other: no such source (sources: s)"),
        (_two, ["--weight", "a=1"], "--weight given for a but not for b"),
        (_nothing_kept, ["--weight", "s"], "--weight 's': expected SOURCE=W"),
        (_nothing_kept, ["--weight", "s=0"], "a weight is a positive number"),
        (_nothing_kept, ["--min-words", "9", "--max-words", "5"], "--min-words 9 exceeds"),
        (_nothing_kept, ["--min-letters", "nan"], "is not a finite number"),
    ],
)
def test_bad_input_is_one_line(tmp_path, make, extra, message):
    inputs = make(tmp_path)
    out = tmp_path / "out"
    refused(["corpus", *inputs, *extra, "--out", out], message, untouched=[out, *inputs])


def test_foreign_folders_are_never_written(tmp_path, docs):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    refused(["corpus", *docs, "--out", foreign, "--overwrite"], "not empty and not a corpus",
            untouched=foreign)  # fmt: skip
    (foreign / "notes.txt").unlink()
    (foreign / STATS).write_text('{"lines": 5, "sources": {}}')  # as ../shared/data/corpus-large
    refused(["corpus", *docs, "--out", foreign, "--overwrite"], "not written by pipeline corpus",
            untouched=foreign)  # fmt: skip
    inside = tmp_path / "corpus"
    refused(["corpus", tmp_path, "--out", inside], "overlap; choose an --out outside",
            untouched=inside)  # fmt: skip
    a_file = tmp_path / "notes.md"
    a_file.write_text("mine")
    refused(["corpus", *docs, "--out", a_file], "exists and is not a directory", untouched=a_file)
    refused(["corpus", docs[0], "--out", docs[0]], "overlap", untouched=docs[0])
