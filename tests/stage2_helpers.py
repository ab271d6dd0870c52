"""Helpers for the stage-2 tests: tiny shard directories made by stage 1 from the tiny teacher."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import main
from tests.conftest import tiny_corpus_lines

TINY_ARCH = ("--hidden-size", "16", "--batch-size", "8", "--threads", "1", "--no-progress")


def make_tiny_shards(
    out: Path, teacher_dir: Path, lines: int = 160, shard_size: int = 40, repeats: int = 0
) -> Path:
    """Encode a tiny corpus with the tiny teacher (stage 1 is allowed in tests, not in stage 2).

    The corpus is written next to ``out`` as ``<out name>-corpus.txt``; its first ``repeats``
    lines come again at its end (exact duplicates).
    """
    from stage1_encode.encode import EncodeConfig, run_encode
    from stage1_encode.teacher import Teacher

    corpus = out.parent / f"{out.name}-corpus.txt"
    texts = tiny_corpus_lines(lines)
    corpus.write_text("\n".join(texts + texts[:repeats]) + "\n", encoding="utf-8")
    teacher = Teacher(str(teacher_dir), normalize=True)
    run_encode([corpus], teacher, EncodeConfig(out=out, shard_size=shard_size, progress=False))
    return out


def copy_shards(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def run_cli(*args: str | Path) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def train_cli(targets: Path, out: Path, *extra: str | Path) -> object:
    return run_cli("train", "--targets", targets, "--out", out, *TINY_ARCH, *extra)
