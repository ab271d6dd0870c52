"""`encode --reuse`: texts an earlier encoding by the same teacher holds skip the teacher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.test_encode import datasets_of, encode, run

OLD = ["a red fox", "the dog sleeps", "rain on the roof", "a quiet street at night"]
NEW = ["glosses of words", "a red fox", "an example sentence"]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(directory: Path) -> dict[str, tuple[list[float], list[int], int]]:
    rows = {}
    for data in datasets_of(directory).values():
        for text, vector, ids, line in zip(
            data["text"], data["embedding"], data["input_ids"], data["line"], strict=True
        ):
            rows[text] = (vector, ids, line)
    return rows


def test_reused_rows_are_the_stored_ones_and_the_rest_match_a_plain_encode(
    tmp_path, tiny_teacher_dir
) -> None:
    old = _write(tmp_path / "old.txt", OLD)
    new = _write(tmp_path / "new.txt", NEW)
    args = ("--shard-size", "3", "--precision", "fp32")
    assert encode(old, tmp_path / "a", tiny_teacher_dir, *args).exit_code == 0
    both = ("encode", old, new, "--teacher", tiny_teacher_dir, "--device", "cpu", *args)
    result = run(*both, "--out", tmp_path / "c", "--reuse", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "reusing the vectors of 4 distinct texts" in result.output
    assert run(*both, "--out", tmp_path / "d").exit_code == 0

    stored, reused, plain = (_rows(tmp_path / name) for name in ("a", "c", "d"))
    for text in OLD:
        assert reused[text][0] == stored[text][0]  # the stored vector, bit for bit
    for text, (vector, ids, line) in plain.items():
        assert reused[text][1:] == (ids, line)
        np.testing.assert_allclose(reused[text][0], vector, atol=2e-3)
    manifests = [json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("c", "d")]
    assert {k: v for k, v in manifests[0].items() if k != "shards"} == {
        k: v for k, v in manifests[1].items() if k != "shards"
    }
    counts = [record["reused"] for record in manifests[0]["shards"].values()]
    assert sum(counts) == len(OLD) + 1  # "a red fox" occurs again in the new file


def test_a_hash_collision_is_a_miss_not_another_texts_vector(
    tmp_path, tiny_teacher_dir, monkeypatch
) -> None:
    from stage1_encode import reuse

    monkeypatch.setattr(reuse, "text_key", len)  # "glosses of words" ~ "rain on the roof"
    old, new = _write(tmp_path / "old.txt", OLD), _write(tmp_path / "new.txt", NEW)
    assert encode(old, tmp_path / "a", tiny_teacher_dir).exit_code == 0
    result = encode(new, tmp_path / "b", tiny_teacher_dir, "--reuse", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert encode(new, tmp_path / "plain", tiny_teacher_dir).exit_code == 0
    (record,) = json.loads((tmp_path / "b" / "manifest.json").read_text())["shards"].values()
    assert record["reused"] == 1  # "a red fox" only
    reused, plain = _rows(tmp_path / "b"), _rows(tmp_path / "plain")
    collided = "glosses of words"
    np.testing.assert_allclose(reused[collided][0], plain[collided][0], atol=2e-3)


def test_dedup_with_reuse_needs_no_teacher_pass_for_known_texts(tmp_path, tiny_teacher_dir):
    corpus = _write(tmp_path / "c.txt", OLD + OLD[:2])
    assert encode(corpus, tmp_path / "a", tiny_teacher_dir).exit_code == 0
    result = encode(corpus, tmp_path / "b", tiny_teacher_dir, "--dedup", "--reuse", tmp_path / "a")
    assert result.exit_code == 0, result.output
    (record,) = json.loads((tmp_path / "b" / "manifest.json").read_text())["shards"].values()
    assert (record["rows"], record["duplicates"], record["reused"]) == (4, 2, 4)


def test_other_settings_or_the_output_itself_refused_in_one_line(tmp_path, tiny_teacher_dir):
    corpus = _write(tmp_path / "c.txt", OLD)
    assert encode(corpus, tmp_path / "a", tiny_teacher_dir, "--max-length", "64").exit_code == 0
    refused = encode(corpus, tmp_path / "b", tiny_teacher_dir, "--reuse", tmp_path / "a")
    assert refused.exit_code == 1
    assert "max_length is 64 there, 128 here" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()
    itself = encode(corpus, tmp_path / "a", tiny_teacher_dir, "--max-length", "64",
                    "--reuse", tmp_path / "a")  # fmt: skip
    assert itself.exit_code == 1 and "--out itself" in itself.output


def test_the_tokenizer_hash_ignores_earlier_calls_and_how_it_was_loaded(tiny_teacher_dir):
    import torch

    from stage1_encode.encode import _tokenizer_sha256
    from stage1_encode.teacher import Teacher

    teacher = Teacher(str(tiny_teacher_dir), device=torch.device("cpu"), precision="fp32")
    before = _tokenizer_sha256(teacher)
    teacher.encode(["a text long enough to pad the others", "short"])
    assert _tokenizer_sha256(teacher) == before
    offline = teacher.tokenizer.init_kwargs.get("local_files_only", False)
    teacher.tokenizer.init_kwargs["local_files_only"] = not offline  # as under HF_HUB_OFFLINE
    assert _tokenizer_sha256(teacher) == before
