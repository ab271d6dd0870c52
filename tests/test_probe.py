"""The kNN probe: recall@k and mean cosine checked against a brute-force numpy computation."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from data.errors import PipelineError
from data.shards import ShardStore, is_validation
from pipeline.cli import main
from stage1_encode.encode import EncodeConfig, run_encode
from stage1_encode.teacher import Teacher
from stage3_eval.encoders import Encoder
from stage3_eval.probe import held_out_rows, knn_recall, run_probe
from tests.conftest import WORDS

FRACTION = 0.3


def distinct_lines(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lines: dict[str, None] = {}
    while len(lines) < count:
        lines[" ".join(rng.choice(WORDS, size=int(rng.integers(3, 12))))] = None
    return list(lines)


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory, tiny_teacher_dir) -> Path:
    root = tmp_path_factory.mktemp("probe")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(distinct_lines(300)) + "\n", encoding="utf-8")
    cfg = EncodeConfig(out=root / "shards", shard_size=120, progress=False)
    run_encode([corpus], Teacher(str(tiny_teacher_dir)), cfg)
    return root / "shards"


def brute_force_neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    unit = vectors.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def brute_force_recall(model: np.ndarray, teacher: np.ndarray, k: int) -> float:
    found, truth = brute_force_neighbours(model, k), brute_force_neighbours(teacher, k)
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def read_validation(shard_dir: Path) -> tuple[list[str], np.ndarray]:
    texts, vectors = [], []
    for path in sorted(shard_dir.glob("shard-*.h5")):
        with h5py.File(path) as handle:
            keep = is_validation(handle["line"][()], FRACTION)
            texts += [t.decode() for t, k in zip(handle["text"][()], keep, strict=True) if k]
            vectors.append(handle["embedding"][()][keep].astype(np.float64))
    return texts, np.concatenate(vectors)


def test_held_out_rows_are_the_validation_rows_of_every_shard(shard_dir):
    held = held_out_rows(ShardStore(shard_dir), FRACTION)
    texts, vectors = read_validation(shard_dir)
    assert held.texts == texts
    np.testing.assert_allclose(held.targets, vectors)
    assert 60 < len(texts) < 120  # ~30% of 300 rows, from all three shards
    assert len(held_out_rows(ShardStore(shard_dir), FRACTION, max_rows=25).texts) == 25


def test_probe_matches_brute_force(shard_dir, tiny_teacher_dir):
    # The model under test: the same tiny BERT cut to 8 tokens, so it disagrees with the
    # targets in the shards on long texts and recall is neither 0 nor 1.
    encoder = Encoder("short", "teacher", Teacher(str(tiny_teacher_dir), max_length=8))
    held = held_out_rows(ShardStore(shard_dir), FRACTION)
    score = run_probe(encoder, held, ks=(1, 5, 10))

    texts, teacher = read_validation(shard_dir)
    model = encoder.model.encode(texts).astype(np.float64)
    for k in (1, 5, 10):
        assert score.recall[k] == pytest.approx(brute_force_recall(model, teacher, k), abs=1e-12)
    assert 0 < score.recall[10] < 1
    model /= np.linalg.norm(model, axis=1, keepdims=True)
    teacher /= np.linalg.norm(teacher, axis=1, keepdims=True)
    cosine = np.mean(np.sum(model * teacher, axis=1))
    assert score.mean_cosine == pytest.approx(cosine, abs=1e-5)
    assert score.rows == len(texts)


def test_identical_vectors_give_perfect_recall_and_approximate_indexes_stay_close():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(500, 16)).astype(np.float32)
    assert knn_recall(teacher, teacher, (1, 10)) == {1: 1.0, 10: 1.0}
    noisy = teacher + 0.3 * rng.normal(size=teacher.shape).astype(np.float32)
    exact = knn_recall(noisy, teacher, (10,))[10]
    assert exact == pytest.approx(brute_force_recall(noisy, teacher, 10), abs=1e-12)
    for kind in ("hnsw", "ivf"):
        approximate = knn_recall(noisy, teacher, (10,), index_kind=kind)[10]
        assert approximate == pytest.approx(exact, abs=0.05)


def test_dimension_mismatch_skips_cosine_but_keeps_recall():
    rng = np.random.default_rng(1)
    teacher = rng.normal(size=(50, 8)).astype(np.float32)
    wider = np.concatenate([teacher, np.zeros((50, 4), np.float32)], axis=1)
    assert knn_recall(wider, teacher, (1, 10)) == {1: 1.0, 10: 1.0}
    from stage3_eval.probe import mean_cosine

    assert mean_cosine(wider, teacher) is None


def test_cli_probe_writes_results(shard_dir, tiny_teacher_dir, tmp_path):
    out = tmp_path / "results"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "probe",
            "--model",
            str(tiny_teacher_dir),
            "--targets",
            str(shard_dir),
            "--validation-fraction",
            str(FRACTION),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    entries = {(e["task"], e["metric"]): e for e in json.loads((out / "results.json").read_text())}
    # The teacher against its own float16-stored vectors: the neighbourhoods are the same.
    assert entries[("knn-probe", "recall@10")]["value"] > 0.95
    assert entries[("knn-probe", "mean_cosine")]["value"] > 0.999
    assert entries[("knn-probe", "recall@1")]["extra"]["validation_fraction"] == FRACTION
    assert entries[("encode-speed", "sentences_per_second")]["value"] > 0


def test_too_few_validation_rows_is_a_clear_error(shard_dir):
    with pytest.raises(PipelineError, match="validation row"):
        held_out_rows(ShardStore(shard_dir), 1e-6)


def test_cli_probe_on_a_missing_shard_dir_fails_cleanly(tmp_path):
    result = CliRunner().invoke(
        main, ["eval", "probe", "--model", "teacher", "--targets", str(tmp_path / "none")]
    )
    assert result.exit_code == 1
    assert "no such shard directory" in result.output


@pytest.fixture(scope="module")
def student_dir(shard_dir, tmp_path_factory) -> Path:
    """A small untrained student saved as a Contract-2 directory (word-piece init from shards)."""
    import torch
    from safetensors.torch import load_file

    from stage2_train import Student, StudentConfig

    torch.manual_seed(0)  # its random weights must not depend on which tests ran before
    store = ShardStore(shard_dir)
    (embeddings,) = load_file(str(store.input_embeddings_path)).values()
    config = StudentConfig(hidden_size=16, output_dim=store.dim, normalize=store.normalized)
    student = Student.untrained(config, store.tokenizer_dir, embeddings)
    out = tmp_path_factory.mktemp("student") / "student"
    student.save_pretrained(out)
    return out


def test_student_probe_through_the_cli_matches_brute_force(shard_dir, student_dir, tmp_path):
    from stage2_train import Student

    result = CliRunner().invoke(
        main,
        [
            "eval",
            "probe",
            "--model",
            str(student_dir),
            "--targets",
            str(shard_dir),
            "--validation-fraction",
            str(FRACTION),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    entries = {
        (e["task"], e["metric"]): e for e in json.loads((tmp_path / "results.json").read_text())
    }
    texts, teacher = read_validation(shard_dir)
    model = Student.from_pretrained(student_dir).encode(texts).astype(np.float64)
    for k in (1, 10):
        expected = brute_force_recall(model, teacher, k)
        assert entries[("knn-probe", f"recall@{k}")]["value"] == pytest.approx(expected, abs=1e-12)
    assert entries[("knn-probe", "recall@1")]["extra"]["kind"] == "student"
