"""The README's workflow says what it did: skipped blank lines, trivial recalls, a time budget
the epochs cut short, and evaluation results that ``pipeline report`` finds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.embed_cmd import PROGRESS_FROM
from tests.cli_helpers import refused
from tests.serving_helpers import train_tiny_student
from tests.stage2_helpers import make_tiny_shards, train_cli


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, tiny_teacher_dir) -> Path:
    return train_tiny_student(tmp_path_factory.mktemp("workflow"), tiny_teacher_dir)


def invoke(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_embed_says_how_many_blank_lines_it_skipped(student_dir, tmp_path):
    text = tmp_path / "texts.txt"
    text.write_text("the cat\n\nthe dog runs\n   \nsun\n", encoding="utf-8")
    output = invoke("embed", text, "--model", student_dir, "--out", tmp_path / "v.npy")
    assert "embedded 3 texts" in output and "2 blank line(s) skipped" in output
    clean = tmp_path / "clean.txt"
    clean.write_text("the cat\nsun\n", encoding="utf-8")
    assert "skipped" not in invoke("embed", clean, "--model", student_dir)


def test_probe_says_when_k_covers_every_row(student_dir, tmp_path):
    shards = student_dir.parent / "shards"
    output = invoke("eval", "probe", "--model", student_dir, "--targets", shards,
                    "--validation-fraction", "0.05", "--out", tmp_path / "p")  # fmt: skip
    rows = int(output.split(" rows")[0].rsplit(" ", 1)[-1])
    assert rows <= 11 and "trivially 1" in output


def test_a_time_budget_cut_short_by_the_epochs_says_so(tmp_path, tiny_teacher_dir):
    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir)
    result = train_cli(shards, tmp_path / "s", "--time-budget", "5", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert "note: --epochs 1 ended the run after" in result.output
    assert "of the 5-minute --time-budget" in result.output


def test_the_readme_eval_lines_land_where_report_looks(student_dir, tmp_path):
    sts = tmp_path / "sts.tsv"
    rows = ["the cat\ta cat runs\t4.0", "the dog\ta red bird\t0.5", "sun\tthe moon\t2.0"]
    sts.write_text("sentence1\tsentence2\tscore\n" + "\n".join(rows) + "\n", encoding="utf-8")
    runs = tmp_path / "runs"
    student = runs / "student"
    shutil.copytree(student_dir, student)
    invoke("eval", "sts", "--model", student, "--data", sts, "--out", runs / "eval")
    output = invoke("report", runs)
    assert "STS: sts Spearman" in output, output


def test_embed_refuses_what_an_onnx_export_cannot_do(student_dir, tmp_path):
    from stage2_train.onnx_export import export_onnx

    export = tmp_path / "onnx"
    export_onnx(student_dir, export)
    text = tmp_path / "t.txt"
    text.write_text("the cat\n", encoding="utf-8")
    out = tmp_path / "v.npy"
    refused(["embed", text, "--model", export, "--precision", "bf16", "--out", out],
            "runs in float32", untouched=out)  # fmt: skip
    refused(["embed", text, "--model", export, "--device", "cuda", "--out", out],
            "runs in float32", untouched=out)  # fmt: skip
    assert "(fp32)" in invoke("embed", text, "--model", export, "--out", out)


def test_embed_shows_progress_on_long_input(student_dir, tmp_path):
    text = tmp_path / "long.txt"
    text.write_text("the cat runs\n" * PROGRESS_FROM, encoding="utf-8")
    result = CliRunner().invoke(main, ["embed", str(text), "--model", str(student_dir)])
    assert result.exit_code == 0, result.output
    assert "encode:" in result.output
