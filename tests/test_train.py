"""Stage 2 end to end on tiny shards: contract 2, streaming plan, resume, bad input, no teacher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from safetensors.torch import load_file

from data import shards
from data.files import sha256_file
from data.shards import ShardStore, is_validation
from data.stream import plan_epoch, scan_shards, steps_per_epoch
from stage2_train import Student
from stage2_train.optim import lr_factor
from tests.stage2_helpers import TINY_ARCH, copy_shards, make_tiny_shards, run_cli, train_cli

PIPELINE = str(Path(sys.executable).with_name("pipeline"))


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory, tiny_teacher_dir) -> Path:
    return make_tiny_shards(tmp_path_factory.mktemp("train") / "shards", tiny_teacher_dir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_shards) -> Path:
    out = tmp_path_factory.mktemp("trained") / "student"
    result = train_cli(
        tiny_shards,
        out,
        "--max-steps",
        "30",
        "--val-every",
        "10",
        "--checkpoint-every",
        "10",
        "--val-fraction",
        "0.1",
    )
    assert result.exit_code == 0, result.output
    return out


# ----------------------------------------------------------------------------- the data plan


def test_plan_covers_each_training_row_once_and_never_validation(tiny_shards) -> None:
    index, val = scan_shards(ShardStore(tiny_shards), 0.1, 1000)
    plan = plan_epoch(index, seed=3, epoch=0, batch_size=8)
    pairs = np.concatenate(plan)
    assert len(pairs) == len({tuple(p) for p in pairs.tolist()})  # no row twice
    expected = sum(len(s.train_rows) for s in index)
    assert len(pairs) == expected and len(val) > 0
    for shard_id, shard in enumerate(index):
        with h5py.File(shard.path, "r") as handle:
            held_out = is_validation(handle["line"][()], 0.1)
        rows = pairs[pairs[:, 0] == shard_id, 1]
        assert not held_out[rows].any()
    assert all(len(b) <= 8 for b in plan)


def test_plan_is_deterministic_and_ranks_are_disjoint(tiny_shards) -> None:
    index, _ = scan_shards(ShardStore(tiny_shards), 0.1, 1000)
    a = plan_epoch(index, seed=1, epoch=2, batch_size=8)
    b = plan_epoch(index, seed=1, epoch=2, batch_size=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c = plan_epoch(index, seed=1, epoch=3, batch_size=8)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=False))
    shards0 = set(np.concatenate(plan_epoch(index, seed=1, epoch=0, rank=0, world=2))[:, 0])
    shards1 = set(np.concatenate(plan_epoch(index, seed=1, epoch=0, rank=1, world=2))[:, 0])
    assert shards0 and shards1 and not shards0 & shards1
    assert steps_per_epoch(index, 2, seed=1, epoch=0) >= 1


def test_lr_schedule_warms_up_then_decays_to_zero() -> None:
    assert lr_factor(0.0, 0.1) == 0.0
    assert lr_factor(0.05, 0.1) == pytest.approx(0.5)
    assert lr_factor(0.1, 0.1) == pytest.approx(1.0)
    assert lr_factor(0.55, 0.1) == pytest.approx(0.5)
    assert lr_factor(1.0, 0.1) == 0.0


# ------------------------------------------------------------------------ training and export


def test_training_writes_contract_2_metrics_and_card(trained, tiny_shards) -> None:
    names = {p.name for p in trained.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer", "README.md", "metrics.jsonl"} <= names
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r][:3] == [20, 40, 60][:0] or records
    steps = [r["step"] for r in records]
    assert steps == sorted(steps) and steps[-1] == 30
    assert any("val_cosine" in r and "val_mse" in r for r in records)
    assert all({"loss", "lr", "sentences_per_s"} <= set(r) for r in records if "loss" in r)
    config = json.loads((trained / "config.json").read_text())
    summary = config["training"]
    assert summary["steps"] == 30 and summary["parameters"] > 0
    manifest = json.loads((tiny_shards / "manifest.json").read_text())
    assert config["teacher"]["weights_sha256"] == manifest["teacher"]["weights_sha256"]
    card = (trained / "README.md").read_text()
    assert f"{summary['parameters']:,}" in card and "validation cosine" in card
    student = Student.from_pretrained(trained)
    vectors = student.encode(["the cat runs", "a dog"])
    assert vectors.shape == (2, manifest["teacher"]["hidden_size"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_training_learns(tiny_shards, tmp_path) -> None:
    out = tmp_path / "s"
    result = train_cli(
        tiny_shards,
        out,
        "--max-steps",
        "60",
        "--val-every",
        "60",
        "--val-fraction",
        "0.1",
        "--lr",
        "0.01",
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]


def test_embed_command_writes_npy(trained, tmp_path) -> None:
    from tests.stage2_helpers import run_cli

    texts = tmp_path / "texts.txt"
    texts.write_text("the cat runs\n\na big dog\n")
    result = run_cli("embed", "--model", trained, texts)  # float32 by default
    assert result.exit_code == 0, result.output
    vectors = np.load(tmp_path / "texts.npy")
    expected = Student.from_pretrained(trained).encode(["the cat runs", "a big dog"])
    np.testing.assert_array_equal(vectors, expected)
    int8 = run_cli("embed", "--model", trained, texts, "--out", tmp_path / "q.npy", "--int8")
    assert int8.exit_code == 0, int8.output
    quantized = np.load(tmp_path / "q.npy")
    assert quantized.shape == expected.shape
    assert (quantized * expected).sum(1).min() > 0.99  # int8 stays close to the float model
    bad = run_cli("embed", "--model", tmp_path, texts)
    assert bad.exit_code == 1 and "model.safetensors" in bad.output


def test_training_never_loads_the_teacher(tiny_shards, tmp_path, monkeypatch) -> None:
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("stage 2 tried to load a transformers model")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", refuse)
    result = train_cli(tiny_shards, tmp_path / "s", "--max-steps", "3")
    assert result.exit_code == 0, result.output
    code = (
        "import sys, stage2_train.train, pipeline.train_cmd; "
        "assert 'stage1_encode' not in sys.modules, 'stage 2 imported stage 1'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------ resume


def _weights(path: Path) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in load_file(str(path / "model.safetensors")).items()}


def test_resume_after_sigkill_matches_an_uninterrupted_run(tiny_shards, tmp_path) -> None:
    args = [
        "train",
        "--targets",
        str(tiny_shards),
        *TINY_ARCH,
        "--max-steps",
        "400",
        "--checkpoint-every",
        "5",
        "--val-every",
        "1000",
        "--dropout",
        "0.1",
        "--seed",
        "7",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    subprocess.run(
        [PIPELINE, *args, "--out", str(straight)], check=True, env=env, capture_output=True
    )

    proc = subprocess.Popen(
        [PIPELINE, *args, "--out", str(resumed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = resumed / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if checkpoints.is_dir() and any(p.name.startswith("step-") for p in checkpoints.iterdir()):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (resumed / "model.safetensors").exists()
    done = subprocess.run(
        [PIPELINE, *args, "--out", str(resumed)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "resuming from step-" in done.stderr
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-5, rtol=0, err_msg=key)
    steps = [json.loads(x)["step"] for x in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps)), "resumed run duplicated metric lines"


# --------------------------------------------------------------------------------- bad input


def _fails(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_missing_and_empty_shard_dirs(tmp_path) -> None:
    _fails(train_cli(tmp_path / "nope", tmp_path / "o"), "no such shard directory")
    (tmp_path / "empty").mkdir()
    _fails(train_cli(tmp_path / "empty", tmp_path / "o"), "not a shard directory")
    assert not (tmp_path / "o").exists()


def test_first_shards_trains_and_probes_while_stage1_is_unfinished(tiny_shards, tmp_path) -> None:
    partial = copy_shards(tiny_shards, tmp_path / "partial")
    record = json.loads((partial / "manifest.json").read_text())
    for path in shards.list_shard_files(partial)[2:]:  # not yet encoded: no file, no record
        path.unlink()
        del record["shards"][path.name]
    (partial / "manifest.json").write_text(json.dumps(record))
    _fails(train_cli(partial, tmp_path / "o"), "2 shard(s) missing", "finish `pipeline encode`")
    _fails(train_cli(partial, tmp_path / "o", "--first-shards", "3"), "lower --first-shards")
    assert not (tmp_path / "o").exists()

    out = tmp_path / "student"
    result = train_cli(
        partial, out, "--first-shards", "2", "--max-steps", "2", "--val-fraction", "0.2"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "config.json").read_text())["training"]
    assert (summary["corpus_rows"], summary["shards_used"], summary["shards_total"]) == (80, 2, 4)
    probe = run_cli(
        "eval", "probe", "--model", out, "--targets", partial, "--first-shards", "2",
        "--out", tmp_path / "results",
    )  # fmt: skip
    assert probe.exit_code == 0, probe.output
    entries = json.loads((tmp_path / "results" / "results.json").read_text())
    assert {e["extra"]["shards_used"] for e in entries if e["task"] == "knn-probe"} == {2}


def test_truncated_shard_is_refused(tiny_shards, tmp_path) -> None:
    broken = copy_shards(tiny_shards, tmp_path / "broken")
    victim = shards.list_shard_files(broken)[1]
    victim.write_bytes(victim.read_bytes()[:500])
    _fails(train_cli(broken, tmp_path / "o"), victim.name, "corrupt")
    assert not (tmp_path / "o").exists()


def _rewrite_shard(directory: Path, edit) -> Path:
    """Edit a shard in place and re-record its checksum, as a consistent but wrong shard."""
    path = shards.list_shard_files(directory)[0]
    with h5py.File(path, "r+") as handle:
        edit(handle)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["shards"][path.name]["sha256"] = sha256_file(path)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_nan_targets_are_refused(tiny_shards, tmp_path) -> None:
    broken = copy_shards(tiny_shards, tmp_path / "nan")

    def poison(handle):
        data = handle["embedding"][()]
        data[3, 0] = np.nan
        handle["embedding"][...] = data

    path = _rewrite_shard(broken, poison)
    _fails(train_cli(broken, tmp_path / "o"), path.name, "NaN", "row 3")


def test_shard_of_another_teacher_is_refused(tiny_shards, tmp_path) -> None:
    broken = copy_shards(tiny_shards, tmp_path / "mixed")

    def other_teacher(handle):
        teacher = json.loads(handle.attrs["teacher"])
        handle.attrs["teacher"] = json.dumps({**teacher, "weights_sha256": "0" * 64})

    path = _rewrite_shard(broken, other_teacher)
    _fails(
        train_cli(broken, tmp_path / "o"), path.name, "teacher.weights_sha256", "another encoding"
    )


def test_manifest_dimension_mismatch_is_refused(tiny_shards, tmp_path) -> None:
    broken = copy_shards(tiny_shards, tmp_path / "dim")
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["teacher"]["hidden_size"] = 999
    (broken / "manifest.json").write_text(json.dumps(manifest))
    _fails(train_cli(broken, tmp_path / "o"), "width", "999")


def test_output_of_another_configuration_is_left_alone(trained, tiny_shards) -> None:
    before = {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()}
    _fails(
        train_cli(
            tiny_shards, trained, "--max-steps", "30", "--val-fraction", "0.1", "--lr", "0.5"
        ),
        "another configuration",
        "lr",
    )
    after = {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()}
    assert before == after


def test_foreign_output_dir_is_refused(tiny_shards, tmp_path) -> None:
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "notes.txt").write_text("mine")
    _fails(train_cli(tiny_shards, tmp_path / "o"), "not empty")
    assert (tmp_path / "o" / "notes.txt").read_text() == "mine"


def test_more_processes_than_shards_is_refused(tiny_shards) -> None:
    index, _ = scan_shards(ShardStore(tiny_shards), 0.1, 10)
    with pytest.raises(shards.PipelineError, match="only 4 shard"):
        steps_per_epoch(index, 5, seed=0, epoch=0)
