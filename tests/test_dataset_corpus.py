"""`pipeline encode --dataset`: a parquet file written from the shared corpus gives the same
shards as the same lines in a text file, split across array jobs, resumed or re-run."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data import shards
from data.dataset_corpus import DatasetCorpus
from data.files import sha256_file
from tests.serving_helpers import real_lines
from tests.test_encode import datasets_of, run

ROWS = 120


@pytest.fixture(scope="module")
def lines(corpus_dir) -> list[str]:
    texts = [" ".join(t.split()[:12]) for t in real_lines(ROWS)]
    texts[5] = texts[40] = "   "  # blank rows keep their row numbers
    return texts


@pytest.fixture(scope="module")
def parquet(tmp_path_factory, lines) -> Path:
    path = tmp_path_factory.mktemp("dataset") / "corpus.parquet"
    pq.write_table(pa.table({"text": lines, "id": list(range(len(lines)))}), path)
    return path


def encode_dataset(dataset: Path, out: Path, teacher: Path, *extra: str) -> object:
    args = ("encode", "--dataset", dataset, "--split", "train", "--column", "text", "--out", out)
    result = run(*args, "--teacher", teacher, "--device", "cpu", "--shard-size", "25", *extra)
    assert result.exit_code == 0, result.output
    return result


def test_dataset_shards_equal_the_text_file_shards(tmp_path, parquet, lines, tiny_teacher_dir):
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run("encode", text, "--out", tmp_path / "from-text", "--teacher", tiny_teacher_dir,
        "--device", "cpu", "--shard-size", "25")  # fmt: skip
    encode_dataset(parquet, tmp_path / "from-dataset", tiny_teacher_dir)
    found = datasets_of(tmp_path / "from-dataset")
    assert found == datasets_of(tmp_path / "from-text") and len(found) == 5
    assert 5 not in found["shard-00000-of-00005.h5"]["line"]
    corpus = shards.read_manifest(tmp_path / "from-dataset")["corpus"]
    assert corpus["lines"] == ROWS and corpus["paths"] == [str(parquet)]
    assert corpus["dataset"] == {
        "name": str(parquet),
        "config": None,
        "split": "train",
        "column": "text",
        "builder": "parquet",
        "source": "local",
    }
    assert len(corpus["sha256"]) == 64
    info = run("shards", "info", tmp_path / "from-dataset")
    assert f"dataset {parquet} split train column text, {ROWS} lines" in info.output


def test_array_jobs_resume_and_reruns_are_byte_identical(tmp_path, parquet, tiny_teacher_dir):
    single, split = tmp_path / "single", tmp_path / "split"
    encode_dataset(parquet, single, tiny_teacher_dir)
    for index in range(2):
        encode_dataset(parquet, split, tiny_teacher_dir, "--num-shards", "2", "--shard-index",
                       str(index))  # fmt: skip
    checksums = {p.name: sha256_file(p) for p in shards.list_shard_files(single)}
    assert {p.name: sha256_file(p) for p in shards.list_shard_files(split)} == checksums
    (single / "shard-00002-of-00005.h5").unlink()
    result = encode_dataset(parquet, single, tiny_teacher_dir)
    assert "1 shard(s) written, 4 already complete" in result.output
    assert {p.name: sha256_file(p) for p in shards.list_shard_files(single)} == checksums


def test_other_formats_read_the_same_rows(tmp_path, lines, parquet) -> None:
    import datasets

    expected = list(DatasetCorpus(str(parquet), "train").iter_lines())
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("".join(json.dumps({"body": t}) + "\n" for t in lines), encoding="utf-8")
    assert list(DatasetCorpus(str(jsonl), "train", "body").iter_lines()) == expected
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": lines}).save_to_disk(str(saved))
    assert list(DatasetCorpus(str(saved), "train").iter_lines()) == expected
    first = DatasetCorpus(str(parquet), "train").fingerprint()
    assert DatasetCorpus(str(jsonl), "train", "body").fingerprint().sha256 == first.sha256
