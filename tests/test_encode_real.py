"""Stage 1 with the real embedded teacher on real corpus lines, and kill-and-resume."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from data import shards


def _corpus_slice(corpus_dir: Path, tmp_path: Path, count: int) -> Path:
    with gzip.open(corpus_dir / "nltk_brown.txt.gz", "rt", encoding="utf-8") as handle:
        lines = list(islice(handle, count))
    path = tmp_path / "brown.txt"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _sentence_transformers_reference(model_dir: str, texts: list[str]) -> np.ndarray:
    """What sentence-transformers computes for all-MiniLM-L6-v2, written out by hand."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


def _run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pipeline", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_vectors_equal_sentence_transformers(
    tmp_path, corpus_dir, embedded_teacher_dir, precision
) -> None:
    """float32 equals sentence-transformers to 1e-5; bf16 keeps every cosine to it >= 0.9999."""
    from data.precision import cpu_has_native_bf16

    if precision == "bf16" and not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bfloat16")
    corpus = _corpus_slice(corpus_dir, tmp_path, 300)
    out = tmp_path / "shards"
    args = ("--dtype", "float32", "--shard-size", "128", "--precision", precision)
    result = _run_cli("encode", corpus, "--out", out, *args)
    assert result.returncode == 0, result.stderr
    store = shards.ShardStore(out)
    assert store.manifest["teacher"]["pooling"] == "mean" and store.normalized
    assert store.manifest["teacher"]["precision"] == precision
    stored = np.concatenate([shards.read_shard(p).embedding for p in store.paths])
    texts = [t for p in store.paths for t in shards.read_shard(p).text]
    reference = _sentence_transformers_reference(embedded_teacher_dir, texts)
    if precision == "fp32":
        np.testing.assert_allclose(stored, reference, atol=1e-5)
    else:
        assert (stored * reference).sum(1).min() >= 0.9999  # both unit length


def _datasets(directory: Path) -> dict[str, list]:
    found = {}
    for path in shards.list_shard_files(directory):
        with h5py.File(path, "r") as handle:
            found[path.name] = [
                handle["embedding"][()].tobytes(),
                [row.tobytes() for row in handle["input_ids"][()]],
                list(handle["text"][()]),
                handle["line"][()].tobytes(),
            ]
    return found


def _count_shards(directory: Path) -> int:
    return len(shards.list_shard_files(directory)) if directory.exists() else 0


def test_sigkill_then_rerun_equals_uninterrupted(tmp_path, corpus_dir, embedded_teacher_dir):
    corpus = _corpus_slice(corpus_dir, tmp_path, 600)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    args = ("--shard-size", "60", "--device", "cpu")
    assert _run_cli("encode", corpus, "--out", clean, *args).returncode == 0

    command = [sys.executable, "-m", "pipeline", "encode", str(corpus), "--out", str(killed), *args]
    process = subprocess.Popen(
        command,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and _count_shards(killed) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = len(shards.list_shard_files(killed))
    assert 2 <= written < 10, "the kill should land mid-run"

    resumed = _run_cli("encode", corpus, "--out", killed, *args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipping {written} complete shard(s)" in resumed.stdout
    assert _datasets(killed) == _datasets(clean)
    assert not [p for p in killed.iterdir() if ".tmp" in p.name]
    assert _run_cli("shards", "verify", killed).returncode == 0


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_pooling_option_overrides_declared(tmp_path, embedded_teacher_dir, pooling) -> None:
    from stage1_encode.teacher import Teacher

    teacher = Teacher(embedded_teacher_dir, pooling=pooling, normalize=False)
    vectors = teacher.encode(["a short sentence", "another, rather longer sentence here"])
    assert vectors.shape == (2, 384)
    assert (np.abs(np.linalg.norm(vectors, axis=1) - 1) > 1e-3).all()
