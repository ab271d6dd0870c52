"""The environment refusing: a full disk, a read-only or forbidden output, a folder where a file
belongs, a corrupt compressed corpus, a teacher whose pickle must not be loaded.

Each case ends in exit code 1 and one ``Error:`` line, never a traceback or a crash, and leaves
no temporary file behind. Disk-full and read-only cases run on a real size-limited or read-only
tmpfs (mounting needs root; they skip where it is refused). A real full disk cannot be staged at
an exact byte, so two cases make ``shutil.disk_usage`` misreport the free space: one to trigger
the free-space check deterministically, the other to bypass it so the write itself hits the
real ENOSPC of the small tmpfs and the clean-up of a failed write is proved.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path

import pytest

from data import shards
from data.errors import PipelineError
from tests.cli_helpers import refused
from tests.conftest import build_tiny_teacher, tiny_corpus_lines
from tests.stage2_helpers import TINY_ARCH, make_tiny_shards, train_cli

DiskUsage = namedtuple("DiskUsage", "total used free")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` at ``mountpoint`` (read-only after ``populate`` if asked)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited or read-only tmpfs needs root (CAP_SYS_ADMIN)")
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def make_read_only(mountpoint: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mountpoint)], check=True)


def leftovers(folder: Path) -> list[str]:
    """Temporary files and folders of an interrupted write (``.NAME.tmp-PID``)."""
    return [str(p) for p in folder.rglob("*") if ".tmp" in p.name]


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    """The CLI in its own process: a crash (SIGSEGV) would show as a negative return code."""
    command = [sys.executable, "-m", "pipeline", *map(str, args)]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)


def assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "Error" in line]
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def fake_free_space(monkeypatch, free: int) -> None:
    """Make every free-space query answer ``free`` bytes (see the module docstring)."""
    monkeypatch.setattr(shutil, "disk_usage", lambda _: DiskUsage(2**40, 0, free))


def encode_args(corpus: Path, out: Path, teacher: Path, *extra: str) -> list:
    return ["encode", corpus, "--out", out, "--teacher", teacher, "--device", "cpu", *extra]


@pytest.fixture
def big_corpus(tmp_path) -> Path:
    """2,400 lines in one shard: far more than the small disks below hold."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(tiny_corpus_lines(60) * 40) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory, tiny_teacher_dir) -> Path:
    return make_tiny_shards(tmp_path_factory.mktemp("hostile-env") / "shards", tiny_teacher_dir)


@pytest.fixture(scope="module")
def student(tmp_path_factory, tiny_shards) -> Path:
    out = tmp_path_factory.mktemp("hostile-env-student") / "student"
    result = train_cli(tiny_shards, out, "--max-steps", "2", "--val-every", "100")
    assert result.exit_code == 0, result.output
    return out


# ------------------------------------------------------------------------------- disk full


def test_encode_on_a_full_disk_stops_before_the_shard_write(
    tmp_path, big_corpus, tiny_teacher_dir
) -> None:
    """HDF5 crashed (SIGSEGV) closing a shard whose write hit ENOSPC; now it never gets there."""
    with tmpfs(tmp_path / "disk", "64k") as disk:
        out = disk / "shards"
        args = encode_args(big_corpus, out, tiny_teacher_dir, "--shard-size", "5000")
        error = assert_one_error_line(run_cli(*args), "no space left on device", "shard-00000")
        assert "MiB free" in error
        assert not shards.list_shard_files(out) and not leftovers(disk)


def test_encode_write_hitting_a_full_disk_leaves_no_temporary(
    tmp_path, big_corpus, tiny_teacher_dir, monkeypatch
) -> None:
    """The check bypassed: the shard's own write fails on the real full tmpfs, cleanly."""
    with tmpfs(tmp_path / "disk", "64k") as disk:
        out = disk / "shards"
        fake_free_space(monkeypatch, 2**40)
        args = encode_args(big_corpus, out, tiny_teacher_dir, "--shard-size", "5000")
        refused(args, "no space left on device", "shard-00000", untouched=big_corpus)
        assert not shards.list_shard_files(out) and not leftovers(disk)


def test_embedding_matrix_that_does_not_fit_is_refused(
    tmp_path, tiny_corpus, tiny_teacher_dir, monkeypatch
) -> None:
    out = tmp_path / "shards"
    fake_free_space(monkeypatch, 1000)
    refused(
        encode_args(tiny_corpus, out, tiny_teacher_dir),
        "no space left on device for the teacher's embedding matrix",
        untouched=tiny_corpus,
    )
    assert not (out / shards.INPUT_EMBEDDINGS).exists() and not leftovers(out)


def test_embedding_matrix_write_on_a_full_disk_is_one_line(
    tmp_path, tiny_corpus, monkeypatch
) -> None:
    """Was a SafetensorError traceback: the matrix is now serialized first, written by Python."""
    teacher = build_tiny_teacher(tmp_path / "wide-teacher", hidden=256)  # an 80 KiB matrix
    with tmpfs(tmp_path / "disk", "48k") as disk:
        fake_free_space(monkeypatch, 2**40)
        out = disk / "shards"
        refused(
            encode_args(tiny_corpus, out, teacher),
            shards.INPUT_EMBEDDINGS,
            "no space left on device",
            untouched=tiny_corpus,
        )
        assert not (out / shards.INPUT_EMBEDDINGS).exists() and not leftovers(disk)


def test_train_on_a_full_disk_leaves_no_temporary_checkpoint(tmp_path, tiny_shards) -> None:
    with tmpfs(tmp_path / "disk", "40k") as disk:
        out = disk / "student"
        args = ["train", "--targets", tiny_shards, "--out", out, *TINY_ARCH, "--max-steps", "2"]
        assert_one_error_line(run_cli(*args), "no space left on device for checkpoint")
        assert not leftovers(disk)


def test_checkpoint_write_hitting_a_full_disk_leaves_no_temporary(
    tmp_path, tiny_shards, monkeypatch
) -> None:
    """Was a traceback and a temporary checkpoint folder left until the next run."""
    with tmpfs(tmp_path / "disk", "40k") as disk:
        fake_free_space(monkeypatch, 2**40)  # the write itself meets the full disk
        out = disk / "student"
        refused(
            ["train", "--targets", tiny_shards, "--out", out, *TINY_ARCH, "--max-steps", "2"],
            "step-00000002",
            "no space left on device",
            untouched=tiny_shards,
        )
        assert not leftovers(disk)


def test_checkpoint_that_does_not_fit_is_refused_before_writing(
    tmp_path, tiny_shards, monkeypatch
) -> None:
    out = tmp_path / "student"
    fake_free_space(monkeypatch, 1000)
    refused(
        ["train", "--targets", tiny_shards, "--out", out, *TINY_ARCH, "--max-steps", "2"],
        "no space left on device for checkpoint step-00000002",
        untouched=tiny_shards,
    )
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())


def test_student_save_on_a_full_disk_is_one_error_and_no_temporary(
    tmp_path, student, monkeypatch
) -> None:
    from stage2_train import Student

    model = Student.from_pretrained(student)
    with tmpfs(tmp_path / "disk", "16k") as disk:
        fake_free_space(monkeypatch, 2**40)  # the write itself meets the full disk
        with pytest.raises(PipelineError, match="no space left on device") as caught:
            model.save_pretrained(disk / "copy")
        assert "\n" not in str(caught.value)
        assert not leftovers(disk)


def test_stale_temporary_checkpoint_of_a_killed_run_is_removed(tmp_path, tiny_shards) -> None:
    out = tmp_path / "student"
    args = ("--max-steps", "2", "--val-every", "100")
    assert train_cli(tiny_shards, out, *args).exit_code == 0
    stale = out / "checkpoints" / ".step-00000001.tmp-999999"  # a run killed mid-write
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    result = train_cli(tiny_shards, out, *args)  # resumes at the last step, checkpoints again
    assert result.exit_code == 0, result.output
    assert not stale.exists()


# ------------------------------------------------------------------- read-only, permissions


@pytest.fixture
def read_only_disk(tmp_path) -> Iterator[Path]:
    with tmpfs(tmp_path / "ro", "1m") as disk:
        (disk / "existing").mkdir()
        make_read_only(disk)
        yield disk


def test_train_into_a_read_only_folder(read_only_disk, tiny_shards) -> None:
    refused(
        ["train", "--targets", tiny_shards, "--out", read_only_disk / "existing" / "student"],
        "read-only file system",
        untouched=[read_only_disk, tiny_shards],
    )


def test_encode_into_a_read_only_folder(read_only_disk, tiny_corpus, tiny_teacher_dir) -> None:
    refused(
        encode_args(tiny_corpus, read_only_disk / "shards", tiny_teacher_dir),
        str(read_only_disk / "shards"),
        untouched=[read_only_disk, tiny_corpus],
    )


def test_embed_into_a_read_only_folder(read_only_disk, student, tiny_corpus) -> None:
    refused(
        ["embed", tiny_corpus, "--model", student, "--out", read_only_disk / "vectors.npy"],
        "read-only file system",
        untouched=[read_only_disk, tiny_corpus],
    )


def test_wordnet_into_a_read_only_folder(read_only_disk, wordnet_dir) -> None:
    refused(
        ["data", "wordnet", "--out", read_only_disk / "corpus.txt", "--wordnet-dir", wordnet_dir],
        "read-only file system",
        untouched=[read_only_disk, wordnet_dir],
    )


def test_wordnet_out_is_a_folder(tmp_path, wordnet_dir) -> None:
    folder = tmp_path / "corpora"
    (folder / "keep.txt").parent.mkdir()
    (folder / "keep.txt").write_text("mine\n")
    refused(
        ["data", "wordnet", "--out", folder, "--wordnet-dir", wordnet_dir],
        "is a folder",
        untouched=[folder, wordnet_dir],
    )


def test_wordnet_into_a_folder_the_user_may_not_write(tmp_path, wordnet_dir) -> None:
    """Root ignores permissions, so the CLI runs as ``nobody`` (setpriv) for this case."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run a command as nobody")
    shared = tmp_path_outside_private_tmp()
    try:
        shutil.copytree(wordnet_dir, shared / "wordnet")
        (shared / "locked").mkdir(mode=0o755)
        for path in (shared, *shared.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        command = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        command += [sys.executable, "-m", "pipeline", "data", "wordnet"]
        command += ["--out", str(shared / "locked" / "c.txt"), "--wordnet-dir"]
        command += [str(shared / "wordnet")]
        env = {**ENV, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HOME": "/tmp"}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        if "Permission denied" in result.stderr and "python" in result.stderr.split(":")[0]:
            pytest.skip("nobody cannot run this interpreter")
        assert_one_error_line(result, "permission denied", str(shared / "locked"))
        assert list((shared / "locked").iterdir()) == []
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def tmp_path_outside_private_tmp() -> Path:
    """pytest's tmp_path lies under a 0700 folder that ``nobody`` cannot enter."""
    folder = Path(tempfile.mkdtemp(prefix="hostile-env-"))
    folder.chmod(0o755)
    return folder


# ---------------------------------------------------------------------- corrupt input


def _gzip_corpus(path: Path, lines: int = 4000) -> bytes:
    payload = "\n".join(tiny_corpus_lines(60) * (lines // 60)).encode("utf-8")
    path.write_bytes(gzip.compress(payload))
    return path.read_bytes()


def test_gz_corpus_with_flipped_bytes(tmp_path, tiny_teacher_dir) -> None:
    """A damaged deflate stream raised ``zlib.error``, which escaped as a traceback."""
    corpus = tmp_path / "corpus.txt.gz"
    data = bytearray(_gzip_corpus(corpus))
    for offset in range(40, 60):
        data[offset] ^= 0xFF
    corpus.write_bytes(bytes(data))
    out = tmp_path / "shards"
    refused(
        encode_args(corpus, out, tiny_teacher_dir),
        str(corpus),
        "corrupt compressed data",
        untouched=[out, corpus],
    )


def test_gz_corpus_cut_short(tmp_path, tiny_teacher_dir) -> None:
    corpus = tmp_path / "corpus.txt.gz"
    data = _gzip_corpus(corpus)
    corpus.write_bytes(data[: len(data) // 2])
    out = tmp_path / "shards"
    refused(
        encode_args(corpus, out, tiny_teacher_dir),
        str(corpus),
        "corrupt compressed data",
        untouched=[out, corpus],
    )


# --------------------------------------------------------------------------- teacher weights


class _Payload:
    """Unpickling this runs ``touch MARKER``: what a hostile checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile_teacher(tmp_path: Path, tiny_teacher_dir: Path, keep_safetensors: bool) -> Path:
    import pickle

    folder = tmp_path / "teacher"
    shutil.copytree(tiny_teacher_dir, folder)
    if not keep_safetensors:
        (folder / "model.safetensors").unlink()
    with (folder / "pytorch_model.bin").open("wb") as handle:
        pickle.dump({"weight": _Payload(tmp_path / "PWNED")}, handle)
    return folder


def test_hostile_pickle_is_refused_in_one_line_naming_the_file(
    tmp_path, tiny_corpus, tiny_teacher_dir
) -> None:
    teacher = _hostile_teacher(tmp_path, tiny_teacher_dir, keep_safetensors=False)
    out = tmp_path / "shards"
    refused(
        encode_args(tiny_corpus, out, teacher),
        str(teacher / "pytorch_model.bin"),
        "weights-only loader",
        untouched=[out, teacher],
    )
    assert not (tmp_path / "PWNED").exists()


def test_safetensors_are_preferred_over_a_pickle(tmp_path, tiny_corpus, tiny_teacher_dir) -> None:
    from click.testing import CliRunner

    from pipeline.cli import main

    teacher = _hostile_teacher(tmp_path, tiny_teacher_dir, keep_safetensors=True)
    out = tmp_path / "shards"
    result = CliRunner().invoke(main, [str(a) for a in encode_args(tiny_corpus, out, teacher)])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "PWNED").exists()
    recorded = json.loads((out / shards.MANIFEST).read_text())["teacher"]["weights_sha256"]
    assert recorded == hashlib.sha256((teacher / "model.safetensors").read_bytes()).hexdigest()


@pytest.fixture
def wordnet_dir(tmp_path) -> Path:
    folder = tmp_path / "wordnet"
    folder.mkdir()
    for pos in ("noun", "verb", "adj", "adv"):
        line = f'00001740 03 n 01 entity 0 000 | a {pos} gloss; "an example"  \n'
        (folder / f"data.{pos}").write_text(line, encoding="utf-8")
    return folder


def test_finetuned_teacher_save_on_a_full_disk_is_one_line(tmp_path, tiny_teacher_dir) -> None:
    """Hugging Face's safetensors writer raised ``SafetensorError`` (a plain Exception) here."""
    from stage1_encode.teacher import Teacher
    from stage3_eval.glue.model import ENCODER_DIR, GlueHead, GlueModel, save_finetuned

    encoder = Teacher(str(tiny_teacher_dir))
    model = GlueModel(encoder, GlueHead(encoder.dim, 3, pair=True, hidden=8))
    with tmpfs(tmp_path / "disk", "32k") as disk:
        with pytest.raises(PipelineError, match="no space left on device") as caught:
            save_finetuned(model, disk / "mnli", {"task": "mnli"})
        assert str(disk / "mnli" / ENCODER_DIR) in str(caught.value)
        assert "\n" not in str(caught.value)
        assert not leftovers(disk) and not (disk / "mnli" / "glue.json").exists()


def test_truncated_teacher_safetensors_is_one_line(tmp_path, tiny_corpus, tiny_teacher_dir) -> None:
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    weights = teacher / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    out = tmp_path / "shards"
    refused(
        encode_args(tiny_corpus, out, teacher),
        str(weights),
        "unreadable weights",
        untouched=[out, teacher],
    )
