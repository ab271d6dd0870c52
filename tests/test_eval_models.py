"""``eval`` takes what ``embed`` takes: a student folder, its ONNX export, a student's Hub id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import constants

from data.errors import PipelineError
from pipeline.cli import main
from stage2_train.onnx_export import export_onnx
from stage3_eval.encoders import STUDENT, TEACHER, load_encoder, model_kind
from tests.cli_helpers import refused
from tests.serving_helpers import train_tiny_student

REPO = "someone/tiny-student"
PAIRS = [
    ("the cat runs", "a cat runs fast", 4.0),
    ("the dog walks", "a red bird", 0.5),
    ("sun and moon", "the moon and the sun", 4.5),
    ("big house", "small car on the road", 1.0),
]


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, tiny_teacher_dir) -> Path:
    return train_tiny_student(tmp_path_factory.mktemp("eval-models"), tiny_teacher_dir)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, student_dir) -> Path:
    out = tmp_path_factory.mktemp("eval-onnx") / "export"
    export_onnx(student_dir, out)
    return out


@pytest.fixture
def sts_file(tmp_path) -> Path:
    path = tmp_path / "sts.tsv"
    rows = ["score\tsentence1\tsentence2"] + [f"{s}\t{a}\t{b}" for a, b, s in PAIRS]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def hub_cache(student_dir, tmp_path, monkeypatch) -> Path:
    """The student laid out as a downloaded Hub repository in an offline cache."""
    storage = tmp_path / "hub" / f"models--{REPO.replace('/', '--')}"
    shutil.copytree(student_dir, storage / "snapshots" / ("0" * 40))
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return storage


def sts_spearman(model: str | Path, sts_file: Path, out: Path) -> float:
    argv = ["eval", "sts", "--model", model, "--data", sts_file, "--out", out]
    result = CliRunner().invoke(main, [str(a) for a in argv])
    assert result.exit_code == 0, result.output
    entries = json.loads((out / "results.json").read_text())
    return next(e["value"] for e in entries if e["metric"] == "spearman")


def test_an_onnx_export_is_a_student_and_scores_as_its_student(
    student_dir, export_dir, sts_file, tmp_path
):
    assert model_kind(str(export_dir)) == STUDENT
    encoder = load_encoder(str(export_dir))
    assert encoder.parameters is None and encoder.precision == "fp32"
    torch_score = sts_spearman(student_dir, sts_file, tmp_path / "torch")
    onnx_score = sts_spearman(export_dir, sts_file, tmp_path / "onnx")
    assert onnx_score == pytest.approx(torch_score, abs=1e-6)


def test_a_students_hub_id_is_a_student(hub_cache, student_dir, sts_file, tmp_path):
    assert model_kind(REPO) == STUDENT
    assert sts_spearman(REPO, sts_file, tmp_path / "hub") == pytest.approx(
        sts_spearman(student_dir, sts_file, tmp_path / "local"), abs=1e-9
    )


def test_a_hub_id_that_is_not_cached_offline_stays_an_encoder_name(hub_cache):
    assert model_kind("someone/never-downloaded") == TEACHER


def test_an_onnx_export_cannot_be_fine_tuned_on_glue(export_dir, tmp_path):
    argv = ["eval", "glue", "--model", export_dir, "--data-dir", tmp_path, "--out", tmp_path / "g"]
    refused(argv, "cannot be fine-tuned", untouched=export_dir)


def test_bf16_is_refused_for_an_onnx_export(export_dir):
    with pytest.raises(PipelineError, match="float32"):
        load_encoder(str(export_dir), precision="bf16", require_precision=True)


def write_pairs(tmp_path: Path, score_column: str = "score"):
    import datasets

    rows = {"sentence1": [a for a, _, _ in PAIRS], "sentence2": [b for _, b, _ in PAIRS]}
    rows[score_column] = [s for _, _, s in PAIRS]
    return datasets.Dataset.from_dict(rows)


@pytest.mark.parametrize("form", ["parquet", "jsonl", "save_to_disk"])
def test_eval_sts_reads_pairs_from_datasets_sources(form, student_dir, sts_file, tmp_path):
    table = write_pairs(tmp_path, "label" if form == "jsonl" else "score")
    source = tmp_path / f"pairs.{form}"
    if form == "parquet":
        table.to_parquet(str(source))
    elif form == "jsonl":
        table.to_json(str(source), lines=True)
    else:
        table.save_to_disk(str(source))
    split = ["--split", "train"] if form != "save_to_disk" else []
    argv = [
        "eval",
        "sts",
        "--model",
        student_dir,
        "--data",
        source,
        *split,
        "--out",
        tmp_path / "d",
    ]
    result = CliRunner().invoke(main, [str(a) for a in argv])
    assert result.exit_code == 0, result.output
    entries = json.loads((tmp_path / "d" / "results.json").read_text())
    from_dataset = next(e["value"] for e in entries if e["metric"] == "spearman")
    assert from_dataset == pytest.approx(sts_spearman(student_dir, sts_file, tmp_path / "t"))


def test_a_dataset_without_the_sts_columns_is_one_line(student_dir, tmp_path):
    source = tmp_path / "pairs.parquet"
    write_pairs(tmp_path, "rating").to_parquet(str(source))
    argv = ["eval", "sts", "--model", student_dir, "--data", source, "--split", "train"]
    wanted = "needs the columns sentence1, sentence2 and one of score/label"
    refused([*argv, "--out", tmp_path / "o"], wanted)
