"""Stage 1 end to end on a tiny random teacher: contract, order, resume, array split, errors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from data import shards
from pipeline.cli import main
from stage1_encode.teacher import Teacher


def run(*args: str | Path) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def encode(corpus: Path, out: Path, teacher: Path, *extra: str | Path) -> object:
    return run("encode", corpus, "--out", out, "--teacher", teacher, "--device", "cpu", *extra)


def datasets_of(directory: Path) -> dict[str, dict[str, list]]:
    found = {}
    for path in shards.list_shard_files(directory):
        with h5py.File(path, "r") as handle:
            found[path.name] = {
                "embedding": handle["embedding"][()].tolist(),
                "input_ids": [row.tolist() for row in handle["input_ids"][()]],
                "text": [t.decode() for t in handle["text"][()]],
                "line": handle["line"][()].tolist(),
            }
    return found


def test_contract_and_vectors_in_corpus_order(tmp_path, tiny_corpus, tiny_teacher_dir) -> None:
    out = tmp_path / "shards"
    result = encode(
        tiny_corpus, out, tiny_teacher_dir, "--shard-size", "25", "--dtype", "float32",
        "--precision", "fp32",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "sentences/s" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_shards"] == 3 and sorted(manifest["shards"]) == [
        "shard-00000-of-00003.h5",
        "shard-00001-of-00003.h5",
        "shard-00002-of-00003.h5",
    ]
    assert manifest["teacher"]["pooling"] == "mean" and manifest["corpus"]["lines"] == 60
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    assert (out / "teacher_input_embeddings.safetensors").is_file()

    texts = tiny_corpus.read_text().splitlines()
    teacher = Teacher(str(tiny_teacher_dir))
    one_by_one = np.concatenate([teacher.encode([t]) for t in texts])
    data = datasets_of(out)
    stored = np.concatenate([np.array(d["embedding"]) for d in data.values()])
    np.testing.assert_allclose(stored, one_by_one, atol=1e-5)
    assert [t for d in data.values() for t in d["text"]] == texts
    assert [n for d in data.values() for n in d["line"]] == list(range(60))
    with h5py.File(out / "shard-00000-of-00003.h5") as handle:
        assert json.loads(handle.attrs["teacher"])["hidden_size"] == 32


def test_rerun_skips_complete_shards(tmp_path, tiny_corpus, tiny_teacher_dir) -> None:
    out = tmp_path / "shards"
    encode(tiny_corpus, out, tiny_teacher_dir, "--shard-size", "25")
    first = out / "shard-00000-of-00003.h5"
    stamp = first.stat().st_mtime_ns
    first_bytes = first.read_bytes()
    (out / "shard-00001-of-00003.h5").unlink()
    result = encode(tiny_corpus, out, tiny_teacher_dir, "--shard-size", "25")
    assert result.exit_code == 0 and "skipping 2 complete shard(s)" in result.output
    assert first.stat().st_mtime_ns == stamp and first.read_bytes() == first_bytes
    assert run("shards", "verify", out).exit_code == 0


def test_array_tasks_equal_one_process(tmp_path, tiny_corpus, tiny_teacher_dir) -> None:
    single, split = tmp_path / "single", tmp_path / "split"
    encode(tiny_corpus, single, tiny_teacher_dir, "--shard-size", "7")
    for index in range(3):
        result = encode(
            tiny_corpus,
            split,
            tiny_teacher_dir,
            "--shard-size",
            "7",
            "--num-shards",
            "3",
            "--shard-index",
            str(index),
        )
        assert result.exit_code == 0, result.output
        partial = run("shards", "verify", split)
        assert (partial.exit_code == 0) == (index == 2)
    assert datasets_of(split) == datasets_of(single)
    assert len(datasets_of(single)) == 9


def test_slurm_environment_selects_the_task(tmp_path, tiny_corpus, tiny_teacher_dir) -> None:
    out = tmp_path / "s"
    env = {"SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "3"}
    result = CliRunner(env=env).invoke(
        main,
        [
            "encode",
            str(tiny_corpus),
            "--out",
            str(out),
            "--teacher",
            str(tiny_teacher_dir),
            "--shard-size",
            "7",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [p.name[6:11] for p in shards.list_shard_files(out)] == ["00001", "00004", "00007"]


def test_dedup_truncation_and_blank_counts(tmp_path, tiny_teacher_dir) -> None:
    corpus = tmp_path / "c.txt"
    long = " ".join(["the cat"] * 40)
    corpus.write_text(f"a red fox\n\na red fox\n{long}\nthe dog\n", encoding="utf-8")
    out = tmp_path / "s"
    result = encode(corpus, out, tiny_teacher_dir, "--dedup", "--max-length", "16")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "manifest.json").read_text())["shards"]["shard-00000-of-00001.h5"]
    counts = [record[key] for key in ("rows", "duplicates", "blank", "truncated")]
    assert counts == [3, 1, 1, 1]
    data = datasets_of(out)["shard-00000-of-00001.h5"]
    assert data["line"] == [0, 3, 4] and max(len(ids) for ids in data["input_ids"]) == 16
    info = run("shards", "info", out)
    assert "1 duplicates" in info.output and "1 truncated" in info.output


def test_other_configuration_refused_unless_overwrite(tmp_path, tiny_corpus, tiny_teacher_dir):
    out = tmp_path / "s"
    encode(tiny_corpus, out, tiny_teacher_dir)
    before = (out / "shard-00000-of-00001.h5").read_bytes()
    refused = encode(tiny_corpus, out, tiny_teacher_dir, "--max-length", "64")
    assert refused.exit_code == 1 and "max_length" in refused.output
    assert (out / "shard-00000-of-00001.h5").read_bytes() == before
    again = encode(tiny_corpus, out, tiny_teacher_dir, "--max-length", "64", "--overwrite")
    assert again.exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher"]["max_length"] == 64


def _binary(d: Path) -> Path:
    (d / "b.txt").write_bytes(bytes(range(256)) * 4)
    return d / "b.txt"


def _empty(d: Path) -> Path:
    (d / "e.txt").write_text("\n  \n\n", encoding="utf-8")
    return d / "e.txt"


def _no_text_dir(d: Path) -> Path:
    (d / "dir").mkdir()
    (d / "dir" / "x.csv").write_text("a,b\n", encoding="utf-8")
    return d / "dir"


@pytest.mark.parametrize(
    ("make_corpus", "message"),
    [
        (lambda d: d / "nope.txt", "no such file"),
        (_no_text_dir, "no .txt"),
        (_empty, "empty corpus"),
        (_binary, "binary"),
    ],
)
def test_bad_corpus_is_one_line_error(tmp_path, tiny_teacher_dir, make_corpus, message) -> None:
    out = tmp_path / "out"
    result = encode(make_corpus(tmp_path), out, tiny_teacher_dir)
    assert result.exit_code == 1 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists() or not shards.list_shard_files(out)


def test_unknown_teacher_and_unwritable_out(tmp_path, tiny_corpus, tiny_teacher_dir) -> None:
    result = encode(tiny_corpus, tmp_path / "o", tmp_path / "no-such-teacher")
    assert result.exit_code == 1 and "no such folder" in result.output
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    result = encode(tiny_corpus, blocker / "sub", tiny_teacher_dir)
    assert result.exit_code == 1 and "not writable" in result.output


def test_shard_dir_of_another_teacher_is_refused(tmp_path, tiny_corpus, tiny_teacher_dir):
    from tests.conftest import build_tiny_teacher

    other = build_tiny_teacher(tmp_path / "other", hidden=16)
    out = tmp_path / "s"
    encode(tiny_corpus, out, tiny_teacher_dir)
    result = encode(tiny_corpus, out, other)
    assert result.exit_code == 1 and "another run (teacher." in result.output


def test_verify_fails_on_missing_shard(tmp_path, tiny_corpus, tiny_teacher_dir) -> None:
    out = tmp_path / "s"
    encode(tiny_corpus, out, tiny_teacher_dir, "--shard-size", "20")
    (out / "shard-00002-of-00003.h5").unlink()
    result = run("shards", "verify", out)
    assert result.exit_code == 1 and "missing: shard-00002-of-00003.h5" in result.output
