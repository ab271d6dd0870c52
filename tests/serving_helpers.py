"""Students for the serving tests: a tiny one trained by the CLI (so its folder is what users
get, card and summary included) and an untrained one on the real teacher's tokenizer."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import torch
from safetensors.torch import load_file

from stage2_train import Student, StudentConfig
from tests.conftest import CORPUS_DIR
from tests.stage2_helpers import make_tiny_shards, train_cli


def train_tiny_student(root: Path, teacher_dir: Path) -> Path:
    shards = make_tiny_shards(root / "shards", teacher_dir)
    out = root / "student"
    result = train_cli(shards, out, "--max-steps", "12", "--val-every", "6")
    assert result.exit_code == 0, result.output
    return out


def real_lines(count: int) -> list[str]:
    """``count`` lines (over 20 characters) of the shared corpus, an equal share from each file."""
    files = sorted(CORPUS_DIR.glob("*.txt.gz"))
    share = -(-count // len(files))
    lines: list[str] = []
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            texts = (line.strip() for line in handle)
            lines.extend(itertools.islice((t for t in texts if len(t) > 20), share))
    return lines[:count]


def real_tokenizer_student(teacher_dir: str | Path, out: Path) -> Path:
    """A randomly initialised default-size student on the embedded teacher's tokenizer and
    word pieces, saved to ``out``: real token ids and lengths without minutes of training."""
    weights = load_file(str(Path(teacher_dir) / "model.safetensors"))
    embeddings = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))
    torch.manual_seed(0)
    config = StudentConfig(output_dim=384, teacher={"name_or_path": str(teacher_dir)})
    Student.untrained(config, teacher_dir, embeddings).save_pretrained(out)
    return out
