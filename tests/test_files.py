"""The shared file rules: atomic folders, and which output folders a command may claim."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.errors import PipelineError
from data.files import atomic_path, earlier_output, remove_outputs


def test_keep_existing_lets_the_first_writer_of_a_folder_win(tmp_path: Path) -> None:
    target = tmp_path / "tokenizer"
    for writer in ("first", "second"):
        with atomic_path(target, keep_existing=True) as tmp:
            tmp.mkdir()
            (tmp / "vocab.txt").write_text(writer)
    assert (target / "vocab.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer"]  # no temporary copy left


def test_an_output_folder_is_absent_empty_or_marked(tmp_path: Path) -> None:
    assert not earlier_output(tmp_path / "new", "run.json", "a run")
    assert not earlier_output(tmp_path, "run.json", "a run")  # empty
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("ours too")
    assert earlier_output(tmp_path, "run.json", "a run")


@pytest.mark.parametrize("dot_files_count", [True, False])
def test_anything_else_is_refused_naming_the_marker(tmp_path: Path, dot_files_count: bool) -> None:
    (tmp_path / "thesis.tex").write_text("mine")
    with pytest.raises(PipelineError, match=r"not empty and not a run \(no run.json\)"):
        earlier_output(tmp_path, "run.json", "a run", dot_files_count=dot_files_count)
    with pytest.raises(PipelineError, match="exists and is not a directory"):
        earlier_output(tmp_path / "thesis.tex", "run.json", "a run")


def test_dot_files_count_only_when_asked(tmp_path: Path) -> None:
    (tmp_path / ".lock").write_text("")
    assert not earlier_output(tmp_path, "run.json", "a run", dot_files_count=False)
    with pytest.raises(PipelineError, match="not empty"):
        earlier_output(tmp_path, "run.json", "a run")


def test_overwrite_removes_only_the_named_outputs(tmp_path: Path, capsys) -> None:
    (tmp_path / "checkpoints" / "step-1").mkdir(parents=True)
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "keep.txt").write_text("not ours")
    remove_outputs(tmp_path, [tmp_path / n for n in ("run.json", "checkpoints", "absent")])
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    assert "removing run.json, checkpoints from" in capsys.readouterr().err
