"""Issue 32, stage 1 and shards: what the third hostile round found in `encode` and the shard
store, each case as it was reproduced, plus the same failure classes found nearby.

Refusals run the real CLI through ``refused``: exit 1, one ``Error:`` line, no traceback, and
the named folders and inputs byte-identical. A shard must prove its place (line range, index),
its precision, its token ids and finite vectors wherever it is read: resume, verify, train.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save_file

from data import shards
from data.errors import PipelineError
from data.files import sha256_file
from pipeline.cli import main
from tests.cli_helpers import refused, snapshot
from tests.conftest import tiny_corpus_lines
from tests.stage1_helpers import encode_command
from tests.stage2_helpers import TINY_ARCH, copy_shards, make_tiny_shards

SHARD = shards.shard_name(1, 4)
FIRST = shards.shard_name(0, 4)


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory, tiny_teacher_dir) -> Path:
    return make_tiny_shards(tmp_path_factory.mktemp("round3") / "shards", tiny_teacher_dir)


def _corpus_of(shard_dir: Path) -> Path:
    return shard_dir.parent / f"{shard_dir.name}-corpus.txt"


def _encode_args(corpus: Path, out: Path, teacher: Path, *extra: str | Path) -> list:
    """`encode` as make_tiny_shards ran it, so that its directory resumes."""
    return ["encode", corpus, "--out", out, "--teacher", teacher, "--device", "cpu",
            "--normalize", "--precision", "fp32", *extra]  # fmt: skip


def _run(args: list, env: dict | None = None) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert "Traceback" not in result.output, result.output
    return result


def _manifest(directory: Path) -> dict:
    return json.loads((directory / shards.MANIFEST).read_text())


def _save_manifest(directory: Path, manifest: dict) -> None:
    (directory / shards.MANIFEST).write_text(json.dumps(manifest))


def _rewrite(shard_dir: Path, edit: Callable[[h5py.File], None], name: str = SHARD) -> None:
    """Change one shard in place and re-record its checksum, as a foreign shard recorded by a
    resumed encode (before this round) would look."""
    path = shard_dir / name
    with h5py.File(path, "r+") as handle:
        edit(handle)
    manifest = _manifest(shard_dir)
    manifest["shards"][name]["sha256"] = sha256_file(path)
    _save_manifest(shard_dir, manifest)


def _array_env(task: int, count: int = 2) -> dict:
    return {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count)}


def _shard_bytes(directory: Path, names: list[str]) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in names}


# ------------------------------------------------- 1. --overwrite in an array task


def test_array_task_overwrite_keeps_the_other_tasks_shards(
    tiny_teacher_dir, tiny_corpus, tmp_path
) -> None:
    out = tmp_path / "arr"
    args = _encode_args(tiny_corpus, out, tiny_teacher_dir, "--shard-size", "15")
    assert _run(args, _array_env(0)).exit_code == 0
    task0 = _shard_bytes(out, [shards.shard_name(i, 4) for i in (0, 2)])
    again = _run([*args, "--overwrite"], _array_env(1))
    assert again.exit_code == 0, again.output
    assert _shard_bytes(out, list(task0)) == task0
    assert _run(["shards", "verify", out]).exit_code == 0


def test_an_array_rerun_with_new_options_replaces_the_old_run_once(
    tiny_teacher_dir, tiny_corpus, tmp_path
) -> None:
    """The ordinary way to redo a run: every task of the new array gets --overwrite; the first
    removes the old run, a later one only its own shards, never the first one's new work."""
    out = tmp_path / "arr"
    old = _encode_args(tiny_corpus, out, tiny_teacher_dir, "--shard-size", "15")
    for task in (0, 1):
        assert _run(old, _array_env(task)).exit_code == 0
    new = [*old, "--max-length", "64", "--overwrite"]
    first = _run(new, _array_env(0))
    assert first.exit_code == 0, first.output
    task0 = _shard_bytes(out, [shards.shard_name(i, 4) for i in (0, 2)])
    second = _run(new, _array_env(1))
    assert second.exit_code == 0, second.output
    assert "--overwrite: removing" not in second.stderr  # the first task removed the old run
    assert _shard_bytes(out, list(task0)) == task0
    assert _run(["shards", "verify", out]).exit_code == 0
    assert _manifest(out)["teacher"]["max_length"] == 64


@pytest.mark.slow
def test_two_array_tasks_overwriting_at_once_lose_nothing(tiny_teacher_dir, tmp_path) -> None:
    """The issue's second run: both tasks of a re-submitted array start together."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_corpus_lines(60) * 10) + "\n")  # 600 lines, 12 shards
    out = tmp_path / "arr"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    old = encode_command(corpus, out, tiny_teacher_dir, 50)
    subprocess.run(old, env=env, check=True, capture_output=True)
    new = [*old, "--max-length", "64", "--overwrite"]
    running = [
        subprocess.Popen(new, env={**env, **_array_env(task)}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for task in (0, 1)
    ]  # fmt: skip
    for proc in running:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
    assert _run(["shards", "verify", out]).exit_code == 0
    assert len(shards.list_shard_files(out)) == 12
    assert _manifest(out)["teacher"]["max_length"] == 64


# ------------------------------------------------- 3. a shard proves its line range


@pytest.mark.parametrize(
    ("legacy", "fragments"),
    [
        (False, ("shard_index attribute says 0",)),
        (True, ("corpus lines 1..", "not shard 1's 41..80")),  # a shard without shard_index
    ],
)
def test_a_copy_of_shard_0_under_a_missing_name_is_refused_on_resume(
    tiny_shards, tiny_teacher_dir, tmp_path, legacy, fragments
) -> None:
    target = copy_shards(tiny_shards, tmp_path / "shards")
    manifest = _manifest(target)
    del manifest["shards"][SHARD]
    _save_manifest(target, manifest)
    shutil.copy(target / FIRST, target / SHARD)
    if legacy:
        with h5py.File(target / SHARD, "r+") as handle:
            del handle.attrs[shards.INDEX_ATTR]
    corpus = _corpus_of(tiny_shards)
    args = _encode_args(corpus, target, tiny_teacher_dir, "--shard-size", "40")
    refused(args, SHARD, "a copy of another shard", *fragments, untouched=[target, corpus])


def test_a_recorded_copy_of_another_shard_is_refused_by_verify_and_train(
    tiny_shards, tmp_path
) -> None:
    target = copy_shards(tiny_shards, tmp_path / "shards")
    shutil.copy(target / FIRST, target / SHARD)
    manifest = _manifest(target)
    manifest["shards"][SHARD] = {**manifest["shards"][FIRST], "file": SHARD}
    _save_manifest(target, manifest)
    out = tmp_path / "o"
    for args in (
        ["shards", "verify", target],
        ["train", "--targets", target, "--out", out, *TINY_ARCH],
    ):
        refused(args, SHARD, "a copy of another shard", untouched=[target, out])


def test_a_shard_whose_index_attribute_names_another_is_refused(tiny_shards, tmp_path) -> None:
    """An empty shard has no lines to prove its place; its recorded index does."""
    target = copy_shards(tiny_shards, tmp_path / "shards")
    _rewrite(target, lambda h: h.attrs.__setitem__(shards.INDEX_ATTR, 0))
    refused(["shards", "verify", target], SHARD, "shard_index", untouched=target)


# ------------------------------------------------- 5. NaN vectors: verify and --reuse


def _nan_row(handle: h5py.File) -> None:
    handle["embedding"][3, 0] = np.nan


def test_nan_vectors_are_refused_by_verify_and_by_reuse(
    tiny_shards, tiny_teacher_dir, tmp_path
) -> None:
    poisoned = copy_shards(tiny_shards, tmp_path / "poisoned")
    _rewrite(poisoned, _nan_row)
    refused(["shards", "verify", poisoned], SHARD, "NaN or infinite", untouched=poisoned)
    corpus, out = _corpus_of(tiny_shards), tmp_path / "new"
    args = _encode_args(corpus, out, tiny_teacher_dir, "--shard-size", "40", "--reuse", poisoned)
    refused(args, "--reuse", SHARD, "NaN or infinite", untouched=[poisoned, out, corpus])


def test_a_vector_that_overflows_float16_is_refused_before_it_is_written(tmp_path) -> None:
    data = shards.ShardData(
        embedding=np.array([[1.0, 2.0], [1e6, 0.0]], dtype=np.float32),
        input_ids=[np.array([2, 3]), np.array([2, 3])],
        text=["a", "b"],
        line=np.array([0, 1]),
    )
    with pytest.raises(PipelineError, match=r"corpus line 2.*overflows float16"):
        shards.write_shard(tmp_path, shards.shard_name(0, 1), data, {}, "float16")
    assert snapshot(tmp_path) == {}


# ------------------------------------------------- 8. precision recorded per shard


def test_a_shard_of_another_precision_is_refused(tiny_shards, tmp_path) -> None:
    target = copy_shards(tiny_shards, tmp_path / "shards")

    def as_bf16(handle: h5py.File) -> None:
        handle.attrs["teacher"] = json.dumps({**json.loads(handle.attrs["teacher"]),
                                              "precision": "bf16"})  # fmt: skip

    _rewrite(target, as_bf16)
    out = tmp_path / "o"
    for args in (
        ["shards", "verify", target],
        ["train", "--targets", target, "--out", out, *TINY_ARCH],
    ):
        refused(args, SHARD, "teacher.precision", untouched=[target, out])


# ------------------------------------------------- token ids outside the vocabulary


@pytest.mark.parametrize("token", [10_000_000, -7])
def test_a_token_id_outside_the_vocabulary_is_refused(tiny_shards, tmp_path, token) -> None:
    target = copy_shards(tiny_shards, tmp_path / "shards")
    _rewrite(target, lambda h: h["input_ids"].__setitem__(2, np.array([2, token, 3], np.int32)))
    out = tmp_path / "o"
    for args in (
        ["shards", "verify", target],
        ["train", "--targets", target, "--out", out, *TINY_ARCH],
    ):
        refused(args, SHARD, f"token id {token} at row 2", untouched=[target, out])


def test_a_word_piece_matrix_short_of_the_vocabulary_is_refused(tiny_shards, tmp_path) -> None:
    target = copy_shards(tiny_shards, tmp_path / "shards")
    save_file({"weight": np.zeros((7, 32), np.float32)}, str(target / shards.INPUT_EMBEDDINGS))
    out = tmp_path / "o"
    for args in (
        ["shards", "verify", target],
        ["train", "--targets", target, "--out", out, *TINY_ARCH],
    ):
        refused(args, shards.INPUT_EMBEDDINGS, "(7, 32)", untouched=[target, out])


def test_an_edited_shard_count_is_refused(tiny_shards, tmp_path) -> None:
    target = copy_shards(tiny_shards, tmp_path / "shards")
    manifest = _manifest(target)
    manifest["num_shards"] = 5  # verify looked for five shards, a made-up count for millions
    _save_manifest(target, manifest)
    refused(["shards", "verify", target], "manifest.json", "num_shards", untouched=target)


# ------------------------------------------------- the corpus: NUL bytes, devices


def test_a_nul_byte_past_the_first_block_is_refused_before_anything_is_written(
    tiny_teacher_dir, tmp_path
) -> None:
    lines = tiny_corpus_lines(400)  # well past the 8 KiB the binary check reads
    lines[300] = "a line with a \x00 inside"
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert corpus.stat().st_size > 8192 and b"\x00" not in corpus.read_bytes()[:8192]
    out = tmp_path / "out"
    args = _encode_args(corpus, out, tiny_teacher_dir, "--shard-size", "100")
    refused(args, str(corpus), "NUL byte at corpus line 301", untouched=[out, corpus])


def test_a_nul_in_a_dataset_row_is_refused_before_anything_is_written(
    tiny_teacher_dir, tmp_path
) -> None:
    rows = tmp_path / "c.jsonl"
    texts = ["a red fox", "the \x00 dog", "rain"]
    rows.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    out = tmp_path / "out"
    args = ["encode", "--dataset", rows, "--out", out, "--teacher", tiny_teacher_dir]
    refused([*args, "--device", "cpu"], "NUL character in row 2", untouched=[out, rows])


def test_a_device_as_corpus_says_what_it_is(tiny_teacher_dir, tmp_path) -> None:
    out = tmp_path / "out"
    args = ["encode", "/dev/null", "--out", out, "--teacher", tiny_teacher_dir]
    refused(args, "/dev/null", "not a regular file", untouched=out)


# ------------------------------------------------- the SLURM environment


def test_a_slurm_variable_that_is_not_a_number_is_one_line(tiny_teacher_dir, tiny_corpus, tmp_path):
    out = tmp_path / "out"
    args = _encode_args(tiny_corpus, out, tiny_teacher_dir)
    env = {"SLURM_ARRAY_TASK_ID": "3a", "SLURM_ARRAY_TASK_COUNT": "4"}
    refused(args, "SLURM_ARRAY_TASK_ID='3a'", env=env, untouched=[out, tiny_corpus])


def test_a_stepped_slurm_array_numbers_its_tasks_in_steps(
    tiny_teacher_dir, tiny_corpus, tmp_path
) -> None:
    """`--array=0-2:2` runs tasks 0 and 2; task 2 is the second of two, not the third."""
    out = tmp_path / "out"
    args = _encode_args(tiny_corpus, out, tiny_teacher_dir, "--shard-size", "15")
    env = {**_array_env(2), "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "2"}
    result = _run(args, env)
    assert result.exit_code == 0, result.output
    assert [p.name for p in shards.list_shard_files(out)] == [
        shards.shard_name(1, 4),
        shards.shard_name(3, 4),
    ]
