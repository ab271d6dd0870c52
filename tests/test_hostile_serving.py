"""Bad input to the serving commands and to `encode --dataset`: one `Error:` line, exit 1, and
no output file or folder written (or changed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stage2_train.onnx_export import export_onnx
from tests.cli_helpers import refused
from tests.conftest import tiny_corpus_lines
from tests.serving_helpers import train_tiny_student


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, tiny_teacher_dir) -> Path:
    return train_tiny_student(tmp_path_factory.mktemp("hostile-serving"), tiny_teacher_dir)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, student_dir) -> Path:
    out = tmp_path_factory.mktemp("hostile-onnx") / "export"
    export_onnx(student_dir, out)
    return out


@pytest.fixture
def texts(tmp_path) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(tiny_corpus_lines(5)) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------- export


def test_export_of_a_folder_that_is_not_a_student(tmp_path, student_dir) -> None:
    shard_like = tmp_path / "not-student"
    shard_like.mkdir()
    (shard_like / "manifest.json").write_text("{}")
    out = tmp_path / "export"
    refused(["export", "onnx", "--model", shard_like, "--out", out], "no model.safetensors",
            untouched=[out, shard_like])  # fmt: skip
    refused(["export", "onnx", "--model", tmp_path / "nowhere", "--out", out],
            "no such student directory", untouched=out)  # fmt: skip


def test_export_never_replaces_a_folder_that_is_not_an_export(tmp_path, student_dir) -> None:
    refused(["export", "onnx", "--model", student_dir, "--out", student_dir],
            "is not an ONNX export", untouched=student_dir)  # fmt: skip
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    refused(["export", "onnx", "--model", student_dir, "--out", notes], "is not an ONNX export",
            untouched=notes)  # fmt: skip


# ---------------------------------------------------------------------------------- embed


def test_embed_on_a_corrupted_onnx_graph(tmp_path, export_dir, texts) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(export_dir, broken)
    graph = broken / "model.onnx"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 3])
    out = tmp_path / "v.npy"
    refused(["embed", texts, "--model", broken, "--out", out], "model.onnx",
            "ONNX Runtime cannot load it", untouched=[out, broken])  # fmt: skip
    graph.write_bytes(b"not a protobuf at all")
    refused(["embed", texts, "--model", broken, "--out", out], "ONNX Runtime cannot load it",
            untouched=out)  # fmt: skip


def test_embed_on_an_export_with_a_corrupt_description(tmp_path, export_dir, texts) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(export_dir, broken)
    (broken / "onnx_export.json").write_text(json.dumps({"format": "sra-distill-onnx"}))
    out = tmp_path / "v.npy"
    refused(["embed", texts, "--model", broken, "--out", out], "not an ONNX export description",
            untouched=out)  # fmt: skip


def test_hub_id_offline_and_not_cached(tmp_path, texts, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "v.npy"
    refused(["embed", texts, "--model", "someone/never-downloaded", "--out", out],
            "no Hub repository 'someone/never-downloaded'", "cache", untouched=out)  # fmt: skip
    refused(["export", "onnx", "--model", "someone/never-downloaded", "--out", tmp_path / "x"],
            "no Hub repository", untouched=tmp_path / "x")  # fmt: skip


# ------------------------------------------------------------------------- encode --dataset


def _parquet(path: Path, **columns: list) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def _encode(dataset: Path, out: Path, teacher: Path, *extra: str) -> list:
    return ["encode", "--dataset", dataset, "--out", out, "--teacher", teacher,
            "--device", "cpu", *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("columns", "extra", "fragments"),
    [
        ({"body": ["a dog", "a cat"]}, (), ("no column 'text'", "columns: body")),
        ({"text": [1, 2, 3]}, (), ("column 'text' holds int64, not text",)),
        ({"text": ["a", "b"], "n": [1, 2]}, ("--column", "n"), ("holds int64, not text",)),
        ({"text": pa.array([], pa.string())}, (), ("empty split",)),
        ({"text": ["", "   ", None]}, (), ("empty split",)),
        ({"text": ["a dog"]}, ("--split", "test"), ("split 'test'",)),
    ],
    ids=["missing-column", "int-column", "chosen-int-column", "no-rows", "blank-rows", "no-split"],
)
def test_bad_dataset_is_refused(tmp_path, tiny_teacher_dir, columns, extra, fragments) -> None:
    dataset = _parquet(tmp_path / "d.parquet", **columns)
    out = tmp_path / "shards"
    refused(_encode(dataset, out, tiny_teacher_dir, *extra), *fragments, untouched=out)


def test_dataset_and_corpus_files_together_or_an_unknown_format(tmp_path, tiny_teacher_dir):
    dataset = _parquet(tmp_path / "d.parquet", text=["a dog"])
    out = tmp_path / "shards"
    both = ["encode", tmp_path / "d.parquet", *_encode(dataset, out, tiny_teacher_dir)[1:]]
    refused(both, "either CORPUS files or --dataset", untouched=out)
    odd = tmp_path / "corpus.xlsx"
    odd.write_bytes(b"PK\x03\x04")
    refused(_encode(odd, out, tiny_teacher_dir), "not a dataset file", untouched=out)
    refused(_encode(tmp_path / "missing.parquet", out, tiny_teacher_dir), "missing.parquet",
            untouched=out)  # fmt: skip
    hub_name = "someone/never-downloaded-corpus"  # HF_HUB_OFFLINE=1 (conftest): not reachable
    refused(_encode(hub_name, out, tiny_teacher_dir), hub_name, "cannot read split 'train'",
            untouched=out)  # fmt: skip
