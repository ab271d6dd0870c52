"""``pipeline push`` and ``Student.push_to_hub``: exactly the model's files go to the Hub, the
card says what the saved config says, and a folder that is not a student is refused.

There is no Hub here: ``huggingface_hub.HfApi``'s ``create_repo``, ``create_branch`` and
``create_commit`` are replaced by a recorder, so the tests see the very calls and file contents
that would be sent; what was sent is then laid out as the Hub cache holds a download and loaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from huggingface_hub import CommitInfo, HfApi, ModelCard, RepoUrl, constants
from huggingface_hub.errors import HfHubHTTPError

from pipeline.cli import main
from stage2_train import Student
from stage2_train.hub import MODEL_ID_PLACEHOLDER, ST_FILES
from stage2_train.onnx_export import export_onnx
from tests.cli_helpers import refused
from tests.serving_helpers import real_tokenizer_student, train_tiny_student
from tests.stage2_helpers import make_tiny_shards

REPO = "org/my-student"
MODEL_FILES = {
    "README.md",
    "config.json",
    "model.safetensors",
    *ST_FILES,
    "tokenizer/tokenizer.json",
    "tokenizer/tokenizer_config.json",
}
TEXTS = ["the cat runs", "a big red dog walked over the lazy fox in the rain"]


class HubRecorder:
    """Stands in for the Hub behind ``HfApi``: records each call and the bytes of each file."""

    def __init__(self, fail: Exception | None = None):
        self.calls: list[tuple[str, str, dict]] = []
        self.sent: dict[str, bytes] = {}
        self.fail = fail

    def create_repo(self, api: HfApi, repo_id: str, **kwargs) -> RepoUrl:
        self.calls.append(("create_repo", repo_id, {**kwargs, "token": api.token}))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_branch(self, api: HfApi, repo_id: str, **kwargs) -> None:
        self.calls.append(("create_branch", repo_id, kwargs))

    def create_commit(self, api: HfApi, repo_id: str, operations, **kwargs) -> CommitInfo:
        if self.fail is not None:
            raise self.fail
        self.calls.append(("create_commit", repo_id, kwargs))
        for op in operations:
            with op.as_file() as handle:
                self.sent[op.path_in_repo] = handle.read()
        oid = "0" * 40
        return CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/{oid}",
            commit_message=kwargs["commit_message"],
            commit_description="",
            oid=oid,
        )


@pytest.fixture
def hub(monkeypatch) -> HubRecorder:
    recorder = HubRecorder()
    for name in ("create_repo", "create_branch", "create_commit"):
        method = getattr(recorder, name)
        monkeypatch.setattr(HfApi, name, lambda api, *a, _m=method, **k: _m(api, *a, **k))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite runs offline
    monkeypatch.setenv("HF_TOKEN", "hf_from_environment")
    return recorder


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_teacher_dir) -> Path:
    """A training run's --out: the student plus checkpoints/ (trainer.pt), logs, its config."""
    return train_tiny_student(tmp_path_factory.mktemp("push"), tiny_teacher_dir)


@pytest.fixture
def run_dir(trained, tmp_path) -> Path:
    """A copy of the run with more that is not the model: notes, a log folder, a temporary."""
    run = shutil.copytree(trained, tmp_path / "run")
    (run / "notes.txt").write_text("mine\n")
    (run / "logs").mkdir()
    (run / "logs" / "slurm-1.out").write_text("log\n")
    (run / ".README.md.tmp-123").write_text("half")
    return run


def push(*args: str | Path) -> str:
    result = CliRunner().invoke(main, ["push", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


# ------------------------------------------------------------------------ what is sent


def test_push_sends_exactly_the_model_files(hub, run_dir) -> None:
    assert {"trainer.pt", "metrics.jsonl", "train_config.json"} <= {
        p.name for p in run_dir.rglob("*")
    }
    output = push("--model", run_dir, REPO)
    assert [call[0] for call in hub.calls] == ["create_repo", "create_commit"]
    assert hub.calls[0] == (
        "create_repo", REPO, {"private": None, "exist_ok": True, "token": None}
    )  # fmt: skip
    assert hub.calls[1][2] == {"commit_message": "Upload SRA-Distill student", "revision": None}
    assert set(hub.sent) == MODEL_FILES
    for name, payload in hub.sent.items():
        if name != "README.md":
            assert payload == (run_dir / name).read_bytes(), name
    size = sum(len(payload) for payload in hub.sent.values())
    assert f"pushed {len(MODEL_FILES)} files ({size / 1e6:.1f} MB)" in output
    assert f"https://huggingface.co/{REPO}/commit/" in output
    assert "kept here: 7 (checkpoints/, logs/, metrics.jsonl, notes.txt, train_config.json)" in (
        output
    )


def test_the_card_sent_loads_the_repository_id(hub, run_dir) -> None:
    push("--model", run_dir, REPO)
    local = (run_dir / "README.md").read_text(encoding="utf-8")
    card = hub.sent["README.md"].decode("utf-8")
    assert MODEL_ID_PLACEHOLDER in local and MODEL_ID_PLACEHOLDER not in card
    assert card == local.replace(MODEL_ID_PLACEHOLDER, REPO)
    assert f'Student.from_pretrained("{REPO}")' in card
    assert f'SentenceTransformer("{REPO}", trust_remote_code=True)' in card
    assert "model.similarity(embeddings, embeddings)" in card


def test_what_is_sent_loads_back_by_repository_id(hub, run_dir, tmp_path, monkeypatch) -> None:
    push("--model", run_dir, REPO)
    cache = tmp_path / "hub-cache"
    storage = cache / f"models--{REPO.replace('/', '--')}"
    for name, payload in hub.sent.items():  # the Hub cache's layout of a downloaded commit
        path = storage / "snapshots" / ("0" * 40) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = Student.from_pretrained(REPO)
    np.testing.assert_array_equal(
        loaded.encode(TEXTS), Student.from_pretrained(run_dir).encode(TEXTS)
    )
    assert loaded.summary == json.loads((run_dir / "config.json").read_text())["training"]


def test_private_revision_message_and_token_reach_the_hub(hub, run_dir) -> None:
    push(
        "--model", run_dir, REPO, "--private", "--revision", "v1",
        "--commit-message", "student v1", "--token", "hf_given",
    )  # fmt: skip
    assert hub.calls[0] == (
        "create_repo", REPO, {"private": True, "exist_ok": True, "token": "hf_given"}
    )  # fmt: skip
    assert hub.calls[1] == ("create_branch", REPO, {"branch": "v1", "exist_ok": True})
    assert hub.calls[2][2] == {"commit_message": "student v1", "revision": "v1"}


def test_the_token_saved_by_hf_auth_login_is_enough(hub, run_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text("hf_saved")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
    push("--model", run_dir, REPO)
    assert set(hub.sent) == MODEL_FILES


def test_push_to_hub_keeps_the_training_summary(hub, run_dir) -> None:
    student = Student.from_pretrained(run_dir)
    result = student.push_to_hub(REPO, commit_message="from Python")
    assert set(result.files) == set(hub.sent) == MODEL_FILES and result.left_out == []
    assert result.size == sum(len(payload) for payload in hub.sent.values())
    assert hub.calls[1][2] == {"commit_message": "from Python", "revision": None}
    sent = json.loads(hub.sent["config.json"])
    assert sent == json.loads((run_dir / "config.json").read_text())
    assert "validation cosine to teacher" in hub.sent["README.md"].decode()


# ------------------------------------------------------------------------------ the card


def test_a_resaved_card_states_the_saved_max_length(run_dir) -> None:
    assert "- max length: 128 tokens" in (run_dir / "README.md").read_text()
    student = Student.from_pretrained(run_dir)
    student.config.max_length = 64
    student.save_pretrained(run_dir)
    card = (run_dir / "README.md").read_text()
    assert "- max length: 64 tokens" in card and "128 tokens" not in card
    assert json.loads((run_dir / "sentence_transformers_student.json").read_text()) == {
        "max_seq_length": 64
    }
    config = json.loads((run_dir / "config.json").read_text())
    assert config["max_length"] == 64 and config["training"]["steps"] == 12
    assert "validation cosine to teacher" in card  # the summary survives the re-save


def test_card_of_the_embedded_teacher_records_language_and_citations(
    tmp_path, embedded_teacher_dir
) -> None:
    out = real_tokenizer_student(embedded_teacher_dir, tmp_path / "s")
    card = ModelCard.load(out / "README.md")
    assert card.data.language == ["en"]  # recorded from the teacher's own card
    teacher = json.loads((out / "config.json").read_text())["teacher"]
    assert teacher["language"] == ["en"] and teacher["library_name"] == "sentence-transformers"
    assert "pip install sra-distill" in card.text
    assert "arXiv" in card.text and "eprint = {2004.03097}" in card.text
    assert "Huang, Junhong and Wang, Baoxun" in card.text
    assert "eprint = {1908.10084}" in card.text and "Reimers, Nils and Gurevych" in card.text
    assert "## Training" not in card.text  # never trained: no summary, no n/a sections


def test_card_of_an_unknown_teacher_guesses_no_language(trained) -> None:
    card = ModelCard.load(trained / "README.md")
    assert card.data.language is None and "1908.10084" not in card.text
    assert "2004.03097" in card.text


# -------------------------------------------------------------------------------- refused


def test_push_refuses_what_is_not_a_student(hub, tmp_path, tiny_teacher_dir) -> None:
    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir, lines=40)
    refused(["push", "--model", shards, REPO], "not a student folder", untouched=shards)
    refused(["push", "--model", tiny_teacher_dir, REPO], "not a student folder")
    refused(["push", "--model", tmp_path / "nowhere", REPO], "no such folder")
    assert hub.calls == []


def test_push_refuses_an_onnx_export(hub, trained, tmp_path) -> None:
    export = tmp_path / "export"
    export_onnx(trained, export)
    refused(["push", "--model", export, REPO], "is an ONNX export", untouched=export)
    assert hub.calls == []


def test_push_refuses_a_student_without_its_card(hub, run_dir) -> None:
    (run_dir / "README.md").unlink()
    (run_dir / "modules.json").unlink()
    refused(
        ["push", "--model", run_dir, REPO],
        "no README.md, modules.json; write them with Student.from_pretrained(DIR)",
        untouched=run_dir,
    )
    assert hub.calls == []


def test_push_refuses_a_bad_repository_id_offline_or_no_token(
    hub, run_dir, tmp_path, monkeypatch
) -> None:
    refused(["push", "--model", run_dir, "not a repo!"], "not a Hub repository id")
    monkeypatch.chdir(tmp_path)
    refused(["push", "--model", run_dir, "run"], "is also a local path")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    refused(["push", "--model", run_dir, REPO], "HF_HUB_OFFLINE is set")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    refused(["push", "--model", run_dir, REPO], "no Hugging Face token", untouched=run_dir)
    assert hub.calls == []


def test_a_hub_refusal_is_one_line(hub, run_dir) -> None:
    request = httpx.Request("POST", f"https://huggingface.co/api/models/{REPO}/commit/main")
    hub.fail = HfHubHTTPError(
        "403 Forbidden: you cannot write to org\nmore detail",
        response=httpx.Response(403, request=request),
    )
    line = refused(["push", "--model", run_dir, REPO], untouched=run_dir)
    assert line == (
        f"Error: {REPO}: cannot push to the Hugging Face Hub (403 Forbidden: you cannot write "
        "to org)"
    )
