"""Malformed input across every command: one clear line, exit 1, no traceback, nothing written.

Each refused case runs the real CLI in-process and checks four things: the exit code is 1, the
failure is a handled ``click`` exit (an escaped exception would be a traceback for the user), the
error is a single ``Error:`` line naming the problem, and the command's output path does not
exist afterwards (or is byte-for-byte unchanged). CRLF and BOM files and a 10 MB line are
accepted and handled correctly.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from data import shards
from data.files import sha256_file
from pipeline.cli import main
from tests.cli_helpers import refused
from tests.conftest import WORDS, build_tiny_teacher, tiny_corpus_lines
from tests.stage2_helpers import copy_shards, make_tiny_shards, train_cli


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory, tiny_teacher_dir) -> Path:
    return make_tiny_shards(tmp_path_factory.mktemp("malformed") / "shards", tiny_teacher_dir)


@pytest.fixture(scope="module")
def student(tmp_path_factory, tiny_shards) -> Path:
    out = tmp_path_factory.mktemp("malformed-student") / "student"
    result = train_cli(tiny_shards, out, "--max-steps", "3", "--val-every", "100")
    assert result.exit_code == 0, result.output
    return out


def _encode(corpus, out, teacher, *extra) -> list:
    return ["encode", corpus, "--out", out, "--teacher", teacher, "--device", "cpu", *extra]


# --------------------------------------------------------------------------------- encode


def test_missing_file(tmp_path, tiny_teacher_dir) -> None:
    out = tmp_path / "out"
    refused(
        _encode(tmp_path / "nope.txt", out, tiny_teacher_dir),
        "nope.txt",
        "no such file",
        untouched=out,
    )


def test_directory_with_no_text(tmp_path, tiny_teacher_dir) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "table.csv").write_text("a,b\n")
    out = tmp_path / "out"
    refused(_encode(tmp_path / "d", out, tiny_teacher_dir), "no .txt or .txt.gz", untouched=out)


def test_empty_corpus(tmp_path, tiny_teacher_dir) -> None:
    corpus = tmp_path / "blank.txt"
    corpus.write_text("\n  \n\t\n")
    out = tmp_path / "out"
    refused(_encode(corpus, out, tiny_teacher_dir), "empty corpus", untouched=out)


def test_binary_file(tmp_path, tiny_teacher_dir) -> None:
    corpus = tmp_path / "model.txt"
    corpus.write_bytes(bytes(range(256)) * 4)
    out = tmp_path / "out"
    refused(_encode(corpus, out, tiny_teacher_dir), "binary", untouched=out)


def test_gz_that_is_not_gzip(tmp_path, tiny_teacher_dir) -> None:
    corpus = tmp_path / "corpus.txt.gz"
    corpus.write_text("plain text pretending\n")
    out = tmp_path / "out"
    refused(_encode(corpus, out, tiny_teacher_dir), "corpus.txt.gz", "cannot read", untouched=out)


def test_invalid_utf8_under_strict_writes_nothing(tmp_path, tiny_teacher_dir) -> None:
    lines = [line.encode() for line in tiny_corpus_lines(30)]
    lines[21] = b"the caf\xe9 is open"  # Latin-1, late in the file: after the first shard
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    refused(
        _encode(corpus, out, tiny_teacher_dir, "--strict", "--shard-size", "10"),
        "invalid UTF-8 at corpus line 22",
        "--strict",
        untouched=out,
    )
    # Without --strict the byte is replaced and counted.
    result = CliRunner().invoke(main, [str(a) for a in _encode(corpus, out, tiny_teacher_dir)])
    assert result.exit_code == 0, result.output
    records = json.loads((out / "manifest.json").read_text())["shards"].values()
    assert sum(r["invalid_utf8"] for r in records) == 1


def test_unknown_teacher(tmp_path, tiny_corpus) -> None:
    out = tmp_path / "out"
    refused(
        _encode(tiny_corpus, out, "no-such-org/no-such-encoder"),
        "cannot load teacher no-such-org/no-such-encoder",
        untouched=out,
    )
    refused(_encode(tiny_corpus, out, tmp_path / "no-teacher"), "no such folder", untouched=out)


def test_unwritable_output(tmp_path, tiny_corpus, tiny_teacher_dir) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    refused(
        _encode(tiny_corpus, blocker / "shards", tiny_teacher_dir),
        "not writable",
        untouched=blocker,
    )
    refused(_encode(tiny_corpus, blocker, tiny_teacher_dir), "not a directory", untouched=blocker)


def test_shard_dir_of_another_teacher(tmp_path, tiny_shards) -> None:
    other = build_tiny_teacher(tmp_path / "other-teacher", hidden=48)
    mixed = copy_shards(tiny_shards, tmp_path / "mixed")
    corpus = tiny_shards.parent / f"{tiny_shards.name}-corpus.txt"
    refused(
        _encode(corpus, mixed, other, "--shard-size", "40", "--normalize"),
        "holds shards of another run",
        "teacher.",
        untouched=mixed,
    )


def test_shard_index_out_of_range(tmp_path, tiny_corpus, tiny_teacher_dir) -> None:
    out = tmp_path / "out"
    refused(
        _encode(tiny_corpus, out, tiny_teacher_dir, "--num-shards", "3", "--shard-index", "3"),
        "--shard-index 3",
        untouched=out,
    )


# ------------------------------------------------------------------------- shards, train


def test_truncated_shard_refused_by_probe(tmp_path, tiny_shards, student) -> None:
    broken = copy_shards(tiny_shards, tmp_path / "broken")
    victim = shards.list_shard_files(broken)[3]
    victim.write_bytes(victim.read_bytes()[:1000])
    out = tmp_path / "results"
    refused(
        ["eval", "probe", "--model", student, "--targets", broken, "--out", out],
        victim.name,
        "checksum mismatch",
        untouched=out,
    )


def _poison(directory: Path) -> Path:
    """Write a NaN into one teacher vector and re-record the checksum: only the values are bad."""
    path = shards.list_shard_files(directory)[1]
    with h5py.File(path, "r+") as handle:
        data = handle["embedding"][()]
        data[5, 2] = np.nan
        handle["embedding"][...] = data
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["shards"][path.name]["sha256"] = sha256_file(path)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_nan_targets(tmp_path, tiny_shards, student) -> None:
    poisoned = copy_shards(tiny_shards, tmp_path / "nan")
    path = _poison(poisoned)
    out = tmp_path / "results"
    refused(
        [
            "eval",
            "probe",
            "--model",
            student,
            "--targets",
            poisoned,
            "--out",
            out,
            "--validation-fraction",
            "0.5",
        ],
        path.name,
        "NaN",
        "row 5",
        untouched=out,
    )
    refused(
        ["train", "--targets", poisoned, "--out", tmp_path / "s", "--threads", "1"],
        path.name,
        "NaN",
        untouched=tmp_path / "s",
    )


def test_corrupt_manifest(tmp_path, tiny_shards) -> None:
    broken = copy_shards(tiny_shards, tmp_path / "broken")
    (broken / "manifest.json").write_text('{"format_version": 1, "shards": ')
    refused(["shards", "verify", broken], "corrupt manifest")
    refused(
        ["train", "--targets", broken, "--out", tmp_path / "s"],
        "corrupt manifest",
        untouched=tmp_path / "s",
    )


# ---------------------------------------------------------------------------------- eval


def _glue_dir(root: Path, header: str) -> Path:
    task = root / "glue" / "SST-2"
    task.mkdir(parents=True)
    for split in ("train", "dev"):
        (task / f"{split}.tsv").write_text(f"{header}\nthe cat runs\t1\na sad dog\t0\n")
    return root / "glue"


def test_unknown_glue_task(tmp_path, student) -> None:
    data = _glue_dir(tmp_path, "sentence\tlabel")
    out = tmp_path / "glue-out"
    refused(
        [
            "eval",
            "glue",
            "--model",
            student,
            "--tasks",
            "sst2,sst3",
            "--data-dir",
            data,
            "--out",
            out,
        ],
        "unknown GLUE task 'sst3'",
        untouched=out,
    )


def test_glue_file_with_wrong_columns(tmp_path, student) -> None:
    data = _glue_dir(tmp_path, "text\tpolarity")
    out = tmp_path / "glue-out"
    refused(
        [
            "eval",
            "glue",
            "--model",
            student,
            "--tasks",
            "sst2",
            "--data-dir",
            data,
            "--out",
            out,
            "--device",
            "cpu",
        ],
        "train.tsv",
        "no column 'sentence'",
        untouched=out,
    )


def test_sts_file_with_wrong_columns(tmp_path, student) -> None:
    data = tmp_path / "sts.tsv"
    data.write_text("only one\tcolumn pair\n")
    out = tmp_path / "results"
    refused(
        ["eval", "sts", "--model", student, "--data", data, "--out", out],
        "sts.tsv:1",
        untouched=out,
    )


# ------------------------------------------------------------------------- student files


def _damaged_student(student: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "student"
    shutil.copytree(student, copy)
    return copy


def test_student_dir_with_missing_weights(tmp_path, student) -> None:
    damaged = _damaged_student(student, tmp_path)
    (damaged / "model.safetensors").unlink()
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat runs\n")
    out = tmp_path / "texts.npy"
    refused(
        ["embed", "--model", damaged, texts, "--out", out], "no model.safetensors", untouched=out
    )
    (damaged / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")  # a pickle
    refused(
        ["embed", "--model", damaged, texts, "--out", out],
        "found pytorch_model.bin: only safetensors",
        untouched=out,
    )


def test_weights_file_that_is_not_safetensors(tmp_path, student) -> None:
    damaged = _damaged_student(student, tmp_path)
    (damaged / "model.safetensors").write_bytes(b"PK\x03\x04" + bytes(2000))  # a torch zip
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat runs\n")
    out = tmp_path / "texts.npy"
    refused(
        ["embed", "--model", damaged, texts, "--out", out], "not a safetensors file", untouched=out
    )
    results = tmp_path / "results"
    sts = tmp_path / "sts.tsv"
    sts.write_text("the cat runs\ta cat runs\t4.5\na dog\tthe sun\t0.5\n")
    refused(
        ["eval", "sts", "--model", damaged, "--data", sts, "--out", results],
        "not a safetensors file",
        untouched=results,
    )


def test_missing_search_index(tmp_path) -> None:
    refused(["search", "--index", tmp_path / "no-index", "the cat"], "not an index directory")


# ---------------------------------------------------------------- accepted, handled right


def _encoded_rows(out: Path) -> tuple[list[str], np.ndarray]:
    data = [shards.read_shard(p) for p in shards.list_shard_files(out)]
    return [t for d in data for t in d.text], np.concatenate([d.embedding for d in data])


def test_crlf_and_bom_files_encode_like_plain_ones(tmp_path, tiny_teacher_dir, student) -> None:
    lines = tiny_corpus_lines(20)
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(lines) + "\n", encoding="utf-8")
    windows = tmp_path / "windows.txt"
    windows.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    gz = tmp_path / "windows.txt.gz"
    gz.write_bytes(gzip.compress(windows.read_bytes()))
    results = {}
    for name in (plain, windows, gz):
        out = tmp_path / f"out-{name.name}"
        result = CliRunner().invoke(main, [str(a) for a in _encode(name, out, tiny_teacher_dir)])
        assert result.exit_code == 0, result.output
        results[name.name] = _encoded_rows(out)
    for name in (windows.name, gz.name):
        texts, vectors = results[name]
        assert texts == lines  # no BOM on the first text, no CR on any
        np.testing.assert_array_equal(vectors, results[plain.name][1])
    out = tmp_path / "vectors.npy"
    for source in (plain, windows):
        result = CliRunner().invoke(
            main, ["embed", "--model", str(student), str(source), "--out", str(out), "--fp32"]
        )
        assert result.exit_code == 0, result.output
        results[f"embed-{source.name}"] = np.load(out)
    np.testing.assert_array_equal(results["embed-windows.txt"], results["embed-plain.txt"])


@pytest.mark.slow
def test_a_10_megabyte_line_is_truncated_and_counted(tmp_path, tiny_teacher_dir) -> None:
    rng = random.Random(0)
    huge = " ".join(rng.choice(WORDS) for _ in range(2_600_000))[: 10 * 2**20]
    corpus = tmp_path / "huge.txt"
    corpus.write_text(f"the cat runs\n{huge}\na small dog\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, [str(a) for a in _encode(corpus, out, tiny_teacher_dir, "--max-length", "32")]
    )
    assert result.exit_code == 0, result.output
    records = list(json.loads((out / "manifest.json").read_text())["shards"].values())
    assert sum(r["rows"] for r in records) == 3 and sum(r["truncated"] for r in records) == 1
    data = shards.read_shard(shards.list_shard_files(out)[0])
    assert len(data.input_ids[1]) == 32 and data.text[1] == huge  # stored whole, encoded cut
