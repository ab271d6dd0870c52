"""STS readers and the zero-shot STS evaluation, checked against a direct computation."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import rankdata

from data.errors import PipelineError
from data.sts import read_sts
from pipeline.cli import main
from stage1_encode.teacher import Teacher
from stage3_eval.encoders import Encoder
from stage3_eval.sts import evaluate_sts
from tests.conftest import WORDS

GLUE_HEADER = (
    "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
)


def pair_rows(count: int = 40) -> list[tuple[str, str, float]]:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(count):
        first = " ".join(rng.choice(WORDS, size=5 + i % 4))
        second = " ".join(rng.choice(WORDS, size=4 + i % 5))
        rows.append((first, second, round(float(rng.uniform(0, 5)), 3)))
    return rows


def write_glue(path: Path, rows) -> Path:
    lines = [GLUE_HEADER] + [
        f"{i}\tmain-news\tx\t2012\t{i:04d}\tnone\tnone\t{a}\t{b}\t{s:.3f}"
        for i, (a, b, s) in enumerate(rows)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_plain(path: Path, rows) -> Path:
    path.write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows), encoding="utf-8")
    return path


def test_glue_and_plain_layouts_read_the_same_pairs(tmp_path):
    rows = pair_rows()
    glue = read_sts(write_glue(tmp_path / "STS-B" / "dev.tsv", rows))
    plain = read_sts(write_plain(tmp_path / "pairs.tsv", rows))
    for pairs in (glue, plain):
        assert pairs.sentence1 == [a for a, _, _ in rows]
        assert pairs.sentence2 == [b for _, b, _ in rows]
        np.testing.assert_allclose(pairs.scores, [s for _, _, s in rows], atol=1e-3)
    assert glue.name == "STS-B-dev"
    assert plain.name == "pairs"


def test_plain_header_line_is_skipped_and_gzip_is_read(tmp_path):
    path = tmp_path / "pairs.tsv.gz"
    path.write_bytes(gzip.compress(b"sentence_a\tsentence_b\tgold\nx y\tx z\t4.5\nu\tv\t1\n"))
    pairs = read_sts(path)
    assert (pairs.sentence1, pairs.sentence2) == (["x y", "u"], ["x z", "v"])
    assert pairs.scores.tolist() == [4.5, 1.0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a\tb\t1.0\nc\td\tfive\n", "pairs.tsv:2: score 'five' is not a number"),
        ("a\tb\n", "pairs.tsv:1: expected sentence1<TAB>sentence2<TAB>score"),
        ("index\tsentence1\tsentence2\nx\ta\tb\n", "header has no ['score'] column"),
        ("", "empty STS file"),
        (GLUE_HEADER + "\n0\tg\tf\ty\to\ts\ts\tonly one\n", "pairs.tsv:2: 8 tab-separated fields"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "pairs.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PipelineError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_sts(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="no such STS file"):
        read_sts(tmp_path / "nope.tsv")


def test_scores_match_a_direct_computation(tmp_path, tiny_teacher_dir):
    pairs = read_sts(write_plain(tmp_path / "pairs.tsv", pair_rows()))
    encoder = Encoder("tiny", "teacher", Teacher(str(tiny_teacher_dir)))
    score = evaluate_sts(encoder, pairs)

    unique = list(dict.fromkeys(pairs.sentence1 + pairs.sentence2))
    vectors = dict(zip(unique, encoder.model.encode(unique).astype(np.float64), strict=True))
    a = np.stack([vectors[t] for t in pairs.sentence1])
    b = np.stack([vectors[t] for t in pairs.sentence2])
    cosines = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    pearson = np.corrcoef(cosines, pairs.scores)[0, 1]
    spearman = np.corrcoef(rankdata(cosines), rankdata(pairs.scores))[0, 1]
    assert score.pearson == pytest.approx(pearson, abs=1e-5)
    assert score.spearman == pytest.approx(spearman, abs=1e-5)
    assert score.pairs == len(pairs)
    assert score.sentences == len(set(pairs.sentence1 + pairs.sentence2))


def test_cli_writes_results_for_each_model_and_file(tmp_path, tiny_teacher_dir):
    rows = pair_rows()
    glue = write_glue(tmp_path / "STS-B" / "dev.tsv", rows)
    plain = write_plain(tmp_path / "pairs.tsv", rows[:20])
    out = tmp_path / "results"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "sts",
            "--model",
            str(tiny_teacher_dir),
            "--data",
            str(glue),
            "--data",
            str(plain),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    entries = json.loads((out / "results.json").read_text())
    got = {(e["task"], e["metric"]) for e in entries}
    assert {
        ("sts:STS-B-dev", "spearman"),
        ("sts:STS-B-dev", "pearson"),
        ("sts:pairs", "spearman"),
        ("encode-speed", "sentences_per_second"),
    } <= got
    spearman = next(
        e for e in entries if e["task"] == "sts:STS-B-dev" and e["metric"] == "spearman"
    )
    assert -1 <= spearman["value"] <= 1
    assert spearman["extra"]["kind"] == "teacher"
    assert "STS-B-dev" in result.output and (out / "results.md").is_file()


def test_cli_bad_file_fails_before_loading_a_model(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("a\tb\t1\na\tb\tnan-ish\n", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "sts",
            "--model",
            "/no/such/model",
            "--data",
            str(path),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 1
    assert "pairs.tsv:2: score 'nan-ish' is not a number" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_embedded_teacher_on_real_sts_b_dev(glue_dir, embedded_teacher_dir, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "sts",
            "--model",
            "teacher",
            "--data",
            str(glue_dir / "STS-B" / "dev.tsv"),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    entries = json.loads((tmp_path / "results.json").read_text())
    spearman = next(e["value"] for e in entries if e["metric"] == "spearman")
    assert spearman == pytest.approx(0.867, abs=0.005)  # the teacher's published STS-B dev figure


def test_training_validation_reports_what_eval_sts_reports(tmp_path, tiny_teacher_dir):
    """`pipeline train --sts-dev F` logs the Spearman `pipeline eval sts --data F` measures."""
    from tests.stage2_helpers import make_tiny_shards, train_cli

    rows = pair_rows()
    # Pairs of one sentence twice have cosines within rounding of 1: their order (so Spearman)
    # depends on how the vectors are computed, which is what must not differ between the two.
    rows += [(first, first, score) for first, _, score in rows]
    sts = write_glue(tmp_path / "STS-B" / "dev.tsv", rows)
    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir, lines=80)
    student = tmp_path / "student"
    trained = train_cli(shards, student, "--max-steps", "6", "--sts-dev", sts)
    assert trained.exit_code == 0, trained.output
    logged = json.loads((student / "metrics.jsonl").read_text().splitlines()[-1])["sts_spearman"]
    summary = json.loads((student / "config.json").read_text())["training"]["sts_dev"]
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        main, ["eval", "sts", "--model", str(student), "--data", str(sts), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    entries = json.loads((out / "results.json").read_text())
    measured = next(e["value"] for e in entries if e["metric"] == "spearman")
    assert logged == summary["spearman"] == measured
