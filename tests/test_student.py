"""The student model: shapes, packing, pooling variants, save/load round trip, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from data.errors import PipelineError
from stage2_train import Student, StudentConfig
from stage2_train.hub import ST_FILES
from tests.stage2_helpers import make_tiny_shards


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory, tiny_teacher_dir):
    return make_tiny_shards(tmp_path_factory.mktemp("student") / "shards", tiny_teacher_dir)


def _embeddings(shards) -> torch.Tensor:
    return load_file(str(shards / "teacher_input_embeddings.safetensors"))["weight"]


def _student(shards, **overrides) -> Student:
    torch.manual_seed(0)
    config = StudentConfig(hidden_size=8, output_dim=12, **overrides)
    return Student.untrained(config, shards / "tokenizer", _embeddings(shards))


TEXTS = ["the cat runs", "a big red dog walked over the lazy fox in the rain", "sun"]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"pooling": "max"},
        {"pooling": "mean", "head": "mlp"},
        {"pooling": "attention", "num_layers": 2},
        {"num_layers": 3, "connection": "dense", "embed_proj": 6},
        {"num_layers": 2, "connection": "residual", "normalize": False},
    ],
)
def test_forward_shape_norm_and_gradients(tiny_shards, overrides) -> None:
    student = _student(tiny_shards, **overrides)
    ids = student.tokenize(TEXTS)
    from data.batching import pad_batch

    input_ids, mask = pad_batch(ids, student.pad_id)
    out = student(input_ids, mask)
    assert out.shape == (3, 12) and student.dim == 12
    norms = out.norm(dim=1)
    if student.config.normalize:
        assert torch.allclose(norms, torch.ones(3), atol=1e-5)
    out.sum().backward()
    assert student.embed.weight.grad is not None and student.embed.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in student.lstms.parameters())


@pytest.mark.parametrize("pooling", ["max", "mean", "max_mean", "attention"])
def test_padding_does_not_change_a_sentence_vector(tiny_shards, pooling) -> None:
    student = _student(tiny_shards, pooling=pooling, num_layers=2).eval()
    alone = np.concatenate([student.encode([t]) for t in TEXTS])
    together = student.encode(TEXTS, batch_size=3)
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_untrained_copies_teacher_embeddings_and_fills_config(tiny_shards) -> None:
    student = _student(tiny_shards)
    matrix = _embeddings(tiny_shards)
    assert torch.equal(student.embed.weight.detach(), matrix.float())
    assert student.config.vocab_size == matrix.shape[0]
    assert student.config.embed_dim == matrix.shape[1]
    with pytest.raises(PipelineError, match="vocab_size"):
        Student.untrained(StudentConfig(vocab_size=7), tiny_shards / "tokenizer", matrix)


def test_tokenize_truncates_with_special_tokens(tiny_shards) -> None:
    student = _student(tiny_shards, max_length=5)
    ids = student.tokenize(["the cat runs over the lazy dog and the fox", "sun"])
    assert len(ids[0]) == 5 and len(ids[1]) == 3
    cls_id, sep_id = student.tokenizer.cls_token_id, student.tokenizer.sep_token_id
    assert ids[0][0] == cls_id and ids[0][-1] == sep_id


def test_save_and_load_round_trip(tiny_shards, tmp_path) -> None:
    student = _student(tiny_shards, pooling="attention", head="mlp")
    student.save_pretrained(tmp_path / "s", summary={"steps": 3}, card="# card\n")
    assert {p.name for p in (tmp_path / "s").iterdir()} == {
        "config.json",
        "model.safetensors",
        "tokenizer",
        "README.md",
        *ST_FILES,
    }
    saved = json.loads((tmp_path / "s" / "config.json").read_text())
    assert saved["training"] == {"steps": 3} and saved["pooling"] == "attention"
    loaded = Student.from_pretrained(tmp_path / "s")
    assert loaded.config == student.config
    vectors = loaded.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 12)
    np.testing.assert_array_equal(vectors, student.encode(TEXTS))
    assert StudentConfig.from_dict(student.config.to_dict()) == student.config


def test_from_pretrained_errors(tiny_shards, tmp_path) -> None:
    with pytest.raises(PipelineError, match="no such student directory"):
        Student.from_pretrained(tmp_path / "missing")
    folder = tmp_path / "pickled"
    _student(tiny_shards).save_pretrained(folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(PipelineError, match="only safetensors"):
        Student.from_pretrained(folder)
    other = tmp_path / "other"
    _student(tiny_shards).save_pretrained(other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "hidden_size": 9}))
    with pytest.raises(PipelineError, match="do not fit"):
        Student.from_pretrained(other)


def test_bad_config_values_are_refused() -> None:
    with pytest.raises(PipelineError, match="pooling"):
        StudentConfig(pooling="cls")
