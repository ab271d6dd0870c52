"""Security properties: no pickle is loaded, no remote code runs, no network when offline.

Each property is checked by making the forbidden thing impossible (patched to raise) or visible
(a marker file the forbidden code would write) and then running the real commands.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pipeline.cli import main
from tests.conftest import tiny_corpus_lines
from tests.stage2_helpers import TINY_ARCH


def _invoke(*args) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def _clean_failure(result, *fragments: str) -> None:
    assert isinstance(result.exception, SystemExit), f"escaped {result.exception!r}"
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if "Error" in line]
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


# ------------------------------------------------------------------------------ no pickle


class PickleLoadedError(AssertionError):
    pass


def _refuse(*args, **kwargs):
    raise PickleLoadedError("a pickle was loaded")


def test_encode_train_resume_embed_load_no_pickle(tmp_path, tiny_teacher_dir, monkeypatch):
    """The whole pipeline with every pickle entry point patched to raise.

    torch.load is allowed only with weights_only=True (its own restricted unpickler, which
    accepts tensors and plain containers, never arbitrary classes).
    """
    real_torch_load = torch.load
    torch_loads = []

    def checked_torch_load(*args, **kwargs):
        assert kwargs.get("weights_only") is True, "torch.load without weights_only=True"
        torch_loads.append(args[0])
        return real_torch_load(*args, **kwargs)

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, _refuse)
    monkeypatch.setattr(torch, "load", checked_torch_load)
    with pytest.raises(PickleLoadedError):  # the patch is live
        pickle.loads(pickle.dumps(1))

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_corpus_lines(120)) + "\n")
    shards_dir, student = tmp_path / "shards", tmp_path / "student"
    steps = (
        *TINY_ARCH,
        "--checkpoint-every",
        "4",
        "--val-every",
        "4",
    )
    result = _invoke(
        "encode",
        corpus,
        "--out",
        shards_dir,
        "--teacher",
        tiny_teacher_dir,
        "--shard-size",
        "40",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    result = _invoke("train", "--targets", shards_dir, "--out", student, *steps, "--max-steps", "6")
    assert result.exit_code == 0, result.output
    # Drop the final checkpoint so the re-run resumes from step 4 and loads trainer.pt.
    shutil.rmtree(student / "checkpoints" / "step-00000006")
    result = _invoke("train", "--targets", shards_dir, "--out", student, *steps, "--max-steps", "6")
    assert result.exit_code == 0 and "resuming from step-00000004" in result.output
    assert [Path(p).name for p in torch_loads] == ["trainer.pt"]
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat runs\na big dog\n")
    result = _invoke("embed", "--model", student, texts, "--out", tmp_path / "v.npy", "--fp32")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "v.npy", allow_pickle=False).shape == (2, 32)


def test_a_pickle_checkpoint_is_never_unpickled(tmp_path, tiny_teacher_dir, monkeypatch):
    """trainer.pt replaced by a pickle of a class: weights_only refuses it, training falls back."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_corpus_lines(120)) + "\n")
    shards_dir, student = tmp_path / "shards", tmp_path / "student"
    assert (
        _invoke(
            "encode",
            corpus,
            "--out",
            shards_dir,
            "--teacher",
            tiny_teacher_dir,
            "--shard-size",
            "40",
        ).exit_code
        == 0
    )
    steps = (
        *TINY_ARCH,
        "--checkpoint-every",
        "4",
        "--val-every",
        "100",
        "--max-steps",
        "8",
    )
    assert _invoke("train", "--targets", shards_dir, "--out", student, *steps).exit_code == 0
    marker = tmp_path / "pwned"
    latest = student / "checkpoints" / "step-00000008"
    torch.save({"optimizer": _Exploit(str(marker))}, latest / "trainer.pt")
    result = _invoke("train", "--targets", shards_dir, "--out", student, *steps)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "resuming from step-00000004" in result.output
    assert not marker.exists(), "a pickled object was executed"


class _Exploit:
    """Unpickling this object would create a file: the classic pickle payload, made harmless."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


# ----------------------------------------------------------------------- trust_remote_code


def _teacher_with_custom_code(tiny_teacher_dir: Path, folder: Path, marker: Path) -> Path:
    """The tiny teacher, re-declared as a custom architecture whose code writes ``marker``."""
    shutil.copytree(tiny_teacher_dir, folder)
    payload = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    (folder / "configuration_custom.py").write_text(
        payload + "from transformers import BertConfig\n\n"
        "class CustomConfig(BertConfig):\n    model_type = 'custom-bert'\n"
    )
    (folder / "modeling_custom.py").write_text(
        payload + "from transformers import BertModel\n"
        "from .configuration_custom import CustomConfig\n\n"
        "class CustomModel(BertModel):\n    config_class = CustomConfig\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "custom-bert"
    config["auto_map"] = {
        "AutoConfig": "configuration_custom.CustomConfig",
        "AutoModel": "modeling_custom.CustomModel",
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_remote_code_never_runs_without_the_flag(
    tmp_path, tiny_teacher_dir, tiny_corpus, monkeypatch
) -> None:
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    marker = tmp_path / "custom-code-ran"
    teacher = _teacher_with_custom_code(tiny_teacher_dir, tmp_path / "custom", marker)
    out = tmp_path / "shards"
    result = _invoke("encode", tiny_corpus, "--out", out, "--teacher", teacher)
    _clean_failure(result, "cannot load teacher", "custom")
    assert not marker.exists(), "the teacher's own code ran without --trust-remote-code"
    assert not out.exists()
    # Control: with the flag the same folder's code does run, so the check above can fail.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "encode",
            str(tiny_corpus),
            "--out",
            str(tmp_path / "trusted"),
            "--teacher",
            str(teacher),
            "--trust-remote-code",
        ],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert marker.exists()


# ------------------------------------------------------------------------------ offline


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Every way out of the machine records the attempt and fails."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args and isinstance(args[0], socket.socket) else args)
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_offline_hub_names_fail_without_a_connection_attempt(
    tmp_path, tiny_corpus, no_network
) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    with pytest.raises(OSError):  # the patch is live
        socket.create_connection(("example.org", 80))
    no_network.clear()
    out = tmp_path / "shards"
    result = _invoke("encode", tiny_corpus, "--out", out, "--teacher", "someone/some-encoder")
    _clean_failure(result, "cannot load teacher someone/some-encoder")
    sts = tmp_path / "sts.tsv"
    sts.write_text("a cat\tthe cat\t4.0\na dog\ta sun\t1.0\n")
    result = _invoke(
        "eval",
        "sts",
        "--model",
        "someone/some-encoder",
        "--data",
        sts,
        "--out",
        tmp_path / "results",
    )
    _clean_failure(result, "someone/some-encoder")
    assert no_network == [], f"connection attempted: {no_network}"
    assert not out.exists() and not (tmp_path / "results").exists()
