"""Progress outside a terminal is plain lines (no carriage-return redraws), and a time-boxed
training run's bar counts the box's seconds, not epochs."""

from __future__ import annotations

import io
import re

import pytest
from tqdm import tqdm

from data.progress import INTERVAL_ENV, LineProgress, progress_bar
from tests.stage2_helpers import make_tiny_shards, run_cli


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_file_gets_plain_lines_with_rate_and_eta(monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "0")
    stream = io.StringIO()
    with progress_bar(total=4, desc="encode", unit="sent", file=stream) as bar:
        assert isinstance(bar, LineProgress)
        for _ in range(4):
            bar.update(1)
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("encode: 1/4 sent (25%), ") and "sent/s" in lines[0]
    assert "ETA " in lines[0]
    assert lines[-1].startswith("encode: done, 4/4 sent (100%)")


def test_lines_come_at_the_interval_not_at_every_update(monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "3600")
    stream = io.StringIO()
    for _ in progress_bar(range(1000), desc="read shards", unit="shard", file=stream):
        pass
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("read shards: done, 1,000/1,000 shard (100%)"), (
        lines
    )


def test_a_terminal_gets_a_tqdm_bar_and_disabled_means_silent():
    assert isinstance(progress_bar(total=3, desc="x", file=Terminal()), tqdm)
    stream = io.StringIO()
    with progress_bar(total=3, desc="x", file=stream, enabled=False) as bar:
        bar.update(3)
    assert stream.getvalue() == ""


def test_encode_in_a_batch_job_logs_lines(tmp_path, tiny_teacher_dir, tiny_corpus, monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "0")
    result = run_cli(
        "encode", tiny_corpus, "--out", tmp_path / "shards", "--teacher", tiny_teacher_dir,
        "--device", "cpu", "--shard-size", "20",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output
    assert re.search(r"^encode: done, 60/60 sent \(100%\)", result.output, re.M), result.output


def test_a_time_boxed_training_bar_counts_the_box(tmp_path, tiny_teacher_dir, monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "0.5")
    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir)
    result = run_cli(
        "train", "--targets", shards, "--out", tmp_path / "student", "--hidden-size", "16",
        "--batch-size", "8", "--threads", "1", "--epochs", "1000", "--time-budget", "0.05",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output
    bar = [line for line in result.output.splitlines() if line.startswith("train: ")]
    assert bar and all(re.match(r"train: (done, )?\d+/3 s \(\d+%\)", line) for line in bar), bar
    assert bar[-1].startswith("train: done, 3/3 s (100%)"), bar
    assert "step=" in result.output  # the steps ride along as a postfix


def test_a_failure_is_not_logged_as_done(monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "3600")
    stream = io.StringIO()
    with pytest.raises(RuntimeError), progress_bar(total=9, desc="index", file=stream) as bar:
        bar.update(3)
        raise RuntimeError("disk full")
    assert stream.getvalue() == ""
