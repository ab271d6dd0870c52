"""Semantic search: index building (streaming, atomic, no-op when complete) and queries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from data.errors import PipelineError
from pipeline.cli import main
from stage1_encode.teacher import Teacher
from stage3_eval.encoders import Encoder
from stage3_eval.search import SearchIndex, build_index_dir
from tests.test_probe import distinct_lines


@pytest.fixture(scope="module")
def encoder(tiny_teacher_dir) -> Encoder:
    return Encoder(str(tiny_teacher_dir), "teacher", Teacher(str(tiny_teacher_dir)))


@pytest.fixture
def corpus(tmp_path) -> Path:
    lines = distinct_lines(250, seed=5)
    path = tmp_path / "corpus.txt"
    # a blank line in the middle: corpus line numbers must still be reported correctly
    path.write_text("\n".join([*lines[:100], "", *lines[100:]]) + "\n", encoding="utf-8")
    return path


def corpus_texts(corpus: Path) -> list[tuple[int, str]]:
    lines = corpus.read_text(encoding="utf-8").splitlines()
    return [(number, text) for number, text in enumerate(lines) if text]


def test_exact_search_matches_brute_force(encoder, corpus, tmp_path):
    summary = build_index_dir(encoder, [corpus], tmp_path / "index", chunk=64)
    assert summary.built and summary.rows == 250
    index = SearchIndex(tmp_path / "index")
    queries = ["the quick brown fox", "a small red bird sees the river"]
    results = index.search(encoder, queries, k=5)

    numbered = corpus_texts(corpus)
    vectors = encoder.model.encode([t for _, t in numbered]).astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    asked = encoder.model.encode(queries).astype(np.float64)
    asked /= np.linalg.norm(asked, axis=1, keepdims=True)
    sims = asked @ vectors.T
    for row, hits in enumerate(results):
        best = np.argsort(-sims[row], kind="stable")[:5]
        assert [h.text for h in hits] == [numbered[i][1] for i in best]
        assert [h.line for h in hits] == [numbered[i][0] for i in best]
        np.testing.assert_allclose([h.score for h in hits], sims[row, best], atol=1e-5)
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]


def test_a_text_finds_itself_first_with_every_index_kind(encoder, corpus, tmp_path):
    text = corpus_texts(corpus)[150][1]
    for kind in ("exact", "ivf", "hnsw"):
        build_index_dir(encoder, [corpus], tmp_path / kind, kind=kind)
        hit = SearchIndex(tmp_path / kind).search(encoder, [text], k=3)[0][0]
        assert (hit.text, hit.line) == (text, 151)
        assert hit.score == pytest.approx(1.0, abs=1e-4)


def test_rebuilding_is_a_no_op_and_another_model_needs_overwrite(encoder, corpus, tmp_path):
    out = tmp_path / "index"
    build_index_dir(encoder, [corpus], out)
    stamp = (out / "index.faiss").stat().st_mtime_ns
    again = build_index_dir(encoder, [corpus], out)
    assert not again.built and again.rows == 250
    assert (out / "index.faiss").stat().st_mtime_ns == stamp
    with pytest.raises(PipelineError, match="holds another index"):
        build_index_dir(encoder, [corpus], out, kind="hnsw")
    assert build_index_dir(encoder, [corpus], out, kind="hnsw", overwrite=True).built
    assert not list(tmp_path.glob(".index.tmp-*"))
    speed = json.loads((out / "results.json").read_text())[0]
    assert (speed["task"], speed["metric"]) == ("index", "sentences_per_second")


def test_cli_index_then_search(tiny_teacher_dir, corpus, tmp_path):
    runner = CliRunner()
    out = tmp_path / "index"
    built = runner.invoke(
        main, ["index", "--model", str(tiny_teacher_dir), "--corpus", str(corpus), "-o", str(out)]
    )
    assert built.exit_code == 0, built.output
    assert "indexed 250 texts" in built.output
    query = corpus_texts(corpus)[7][1]
    found = runner.invoke(main, ["search", "--index", str(out), query, "-k", "3"])
    assert found.exit_code == 0, found.output
    lines = found.output.splitlines()
    assert lines[0] == f"query: {query}"
    assert lines[1].split(maxsplit=2) == ["1", "1.0000", query]
    assert len(lines) == 4
    as_json = runner.invoke(main, ["search", "--index", str(out), "--json"], input=query + "\n")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["hits"][0]["text"] == query


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["search", "--index", str(tmp_path), "query"])
    assert missing.exit_code == 1 and "not an index directory" in missing.output
    no_corpus = runner.invoke(
        main, ["index", "--model", "teacher", "--corpus", str(tmp_path / "x.txt"), "-o", "o"]
    )
    assert no_corpus.exit_code == 1 and "no such file or directory" in no_corpus.output
