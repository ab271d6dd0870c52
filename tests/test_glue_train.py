"""The fine-tuning loop, heads, KD loss and fine-tuned model files, on tiny encoders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from data.errors import PipelineError
from data.glue import TASKS, load_task
from stage3_eval.glue.metrics import task_metrics
from stage3_eval.glue.model import GlueHead, GlueModel, load_finetuned, save_finetuned
from stage3_eval.glue.train import (
    NO_LABEL,
    FineTuneConfig,
    batch_loss,
    fine_tune,
    frozen_vectors,
    predict,
    tokenize,
    training_batches,
)
from tests.test_glue_data import single_thread, write_glue_dir  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


class BagOfWords(nn.Module):
    """The smallest encoder with the common face: tokenize, pad_id, dim, forward."""

    def __init__(self, dim: int = 16):
        super().__init__()
        from tests.conftest import WORDS

        self.vocab = {w: i + 2 for i, w in enumerate(WORDS)}
        self.pad_id = 0
        self.dim = dim
        self.embed = nn.Embedding(len(WORDS) + 2, dim)

    def tokenize(self, texts):
        return [[self.vocab.get(w, 1) for w in t.split()] or [1] for t in texts]

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        return (self.embed(input_ids) * mask).sum(1) / mask.sum(1)


@pytest.fixture(scope="module")
def glue_root(tmp_path_factory) -> Path:
    return write_glue_dir(tmp_path_factory.mktemp("glue"), rows=32)


def _tiny_teacher(folder: Path):
    from stage1_encode.teacher import Teacher

    return Teacher(str(folder), pooling="mean", normalize=False)


def _train_and_score(
    encoder, task_name: str, root: Path, epochs: int, lr: float, freeze: bool = False
):
    task = TASKS[task_name]
    data = load_task(task, root)
    torch.manual_seed(0)
    model = GlueModel(
        encoder, GlueHead(encoder.dim, task.num_outputs, task.is_pair, 32, 0.0), freeze
    )
    config = FineTuneConfig(epochs=epochs, batch_size=8, lr=lr, head_lr=1e-2, warmup=0.0)
    losses = fine_tune(
        model,
        tokenize(encoder, data.train.text_a, data.train.text_b),
        data.train.labels,
        config,
        regression=task.is_regression,
        seed=0,
    )
    dev = data.evals[0]
    outputs = predict(model, tokenize(encoder, dev.text_a, dev.text_b))
    return model, losses, task_metrics(task, dev.labels, outputs), outputs


def test_tiny_teacher_learns_a_single_sentence_task(glue_root, tiny_teacher_dir):
    _, losses, scores, _ = _train_and_score(
        _tiny_teacher(tiny_teacher_dir), "sst2", glue_root, epochs=6, lr=1e-2
    )
    assert losses[-1] < losses[0]
    assert scores["accuracy"] >= 0.8  # chance is 0.5


def test_pair_head_learns_on_a_local_encoder(glue_root):
    _, losses, scores, _ = _train_and_score(BagOfWords(), "rte", glue_root, epochs=15, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
    assert scores["accuracy"] >= 0.9


def test_regression_head_correlates(glue_root):
    _, _, scores, outputs = _train_and_score(BagOfWords(), "stsb", glue_root, epochs=15, lr=1e-2)
    assert outputs.shape == (32, 1)
    assert scores["pearson"] > 0.8


def test_frozen_encoder_is_unchanged(glue_root):
    encoder = BagOfWords()
    before = encoder.embed.weight.detach().clone()
    model, _, _, _ = _train_and_score(encoder, "mrpc", glue_root, epochs=2, lr=1e-2, freeze=True)
    assert torch.equal(before, encoder.embed.weight)
    assert model.freeze_encoder and not model.encoder.training


def test_pair_features_and_shapes():
    head = GlueHead(4, 3, pair=True, hidden=8, dropout=0.0)
    assert head.mlp[2].in_features == 16
    assert head(torch.ones(2, 4), torch.zeros(2, 4)).shape == (2, 3)
    with pytest.raises(ValueError):
        head(torch.ones(2, 4))
    assert GlueHead(4, 1, pair=False)(torch.ones(5, 4)).shape == (5, 1)


def test_kd_loss_ignores_missing_labels():
    outputs = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, NO_LABEL])
    pure_kd = batch_loss(outputs, labels, targets, regression=False, alpha=0.0)
    assert pure_kd.item() == pytest.approx(0.25)  # only row 0 differs, by 1 in one of 4 cells
    ce_row0 = torch.nn.functional.cross_entropy(outputs[:1], labels[:1])
    mixed = batch_loss(outputs, labels, targets, regression=False, alpha=0.5)
    assert mixed.item() == pytest.approx(0.5 * ce_row0.item() + 0.5 * 0.25)
    scores = torch.tensor([[1.0], [3.0]])
    no_score = batch_loss(scores, torch.tensor([float("nan"), 2.0]), None, True, 0.5)
    assert no_score.item() == pytest.approx(1.0)


def test_training_batches_cover_every_row_once():
    lengths = list(np.random.default_rng(1).integers(1, 60, size=203))
    batches = training_batches(lengths, 16, np.random.default_rng(0), pool=4)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(203))
    assert max(len(b) for b in batches) == 16
    spread = np.mean([np.ptp(np.asarray(lengths)[b]) for b in batches if len(b) == 16])
    assert spread < 20  # similar lengths within a batch (uniform batches spread ~55)


def test_finetuned_teacher_round_trips(glue_root, tiny_teacher_dir, tmp_path):
    model, _, _, outputs = _train_and_score(
        _tiny_teacher(tiny_teacher_dir), "mnli", glue_root, epochs=1, lr=1e-3
    )
    save_finetuned(model, tmp_path / "mnli", {"task": "mnli"})
    loaded, meta = load_finetuned(tmp_path / "mnli")
    assert meta["task"] == "mnli" and meta["encoder"]["kind"] == "teacher"
    dev = load_task(TASKS["mnli"], glue_root).evals[0]
    again = predict(loaded, tokenize(loaded.encoder, dev.text_a, dev.text_b))
    np.testing.assert_allclose(again, outputs, atol=1e-5)


def test_regression_head_starts_at_the_given_score():
    head = GlueHead(4, 1, pair=True, hidden=8, dropout=0.0)
    head.start_at(2.5)
    torch.nn.init.zeros_(head.mlp[-1].weight)  # leaves the output bias alone
    out = head(torch.randn(3, 4), torch.randn(3, 4))
    torch.testing.assert_close(out, torch.full((3, 1), 2.5))


@pytest.mark.parametrize(
    ("damaged", "content", "message"),
    [
        ("glue.json", b"{not json", "corrupt"),
        ("glue.json", b'{"task": "mnli"}', "corrupt"),
        ("glue.json", b'{"task": "mnli", "encoder": "teacher", "head": {}}', "corrupt"),
        ("glue.json", b'{"encoder": {"kind": "teacher", "pooling": "cls"}, "head": {}}', "corrupt"),
        ("head.safetensors", b"\x00garbage", "unreadable head weights"),
    ],
)
def test_damaged_finetuned_folder_is_a_clear_error(
    glue_root, tiny_teacher_dir, tmp_path, damaged, content, message
):
    encoder = _tiny_teacher(tiny_teacher_dir)
    model = GlueModel(encoder, GlueHead(encoder.dim, 3, pair=True, hidden=8))
    save_finetuned(model, tmp_path / "mnli", {"task": "mnli"})
    (tmp_path / "mnli" / damaged).write_bytes(content)
    with pytest.raises(PipelineError, match=message):
        load_finetuned(tmp_path / "mnli")


def test_finetuned_head_config_that_does_not_fit_is_a_clear_error(tiny_teacher_dir, tmp_path):
    encoder = _tiny_teacher(tiny_teacher_dir)
    model = GlueModel(encoder, GlueHead(encoder.dim, 3, pair=True, hidden=8))
    save_finetuned(model, tmp_path / "mnli", {"task": "mnli"})
    meta_path = tmp_path / "mnli" / "glue.json"
    meta = json.loads(meta_path.read_text())
    meta["head"] = {**meta["head"], "no_such_option": 1}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(PipelineError, match="unreadable head"):
        load_finetuned(tmp_path / "mnli")


# ------------------------------------------------------------------ frozen encoder, cached vectors


def _tiny_student(teacher_dir: Path):
    from stage1_encode.teacher import Teacher
    from stage2_train import Student, StudentConfig

    embeddings = Teacher(str(teacher_dir)).input_embeddings()
    torch.manual_seed(1)
    config = StudentConfig(hidden_size=8, output_dim=16, dropout=0.3)  # dropout: must stay off
    return Student.untrained(config, teacher_dir, embeddings)


def _frozen_probe(encoder, task_name: str, root: Path, cached: bool):
    """Train a head (dropout on) on a frozen encoder; count the encoder's forward calls."""
    task = TASKS[task_name]
    data = load_task(task, root)
    calls = []
    hook = encoder.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    torch.manual_seed(0)
    head = GlueHead(encoder.dim, task.num_outputs, task.is_pair, 32, 0.1)
    model = GlueModel(encoder, head, freeze_encoder=True)
    train = tokenize(encoder, data.train.text_a, data.train.text_b)
    config = FineTuneConfig(epochs=3, batch_size=8, head_lr=1e-2, warmup=0.0)
    losses = fine_tune(
        model,
        frozen_vectors(model, train) if cached else train,
        data.train.labels,
        config,
        regression=task.is_regression,
        seed=0,
    )
    dev = data.evals[0]
    outputs = predict(model, tokenize(encoder, dev.text_a, dev.text_b))
    hook.remove()
    return losses, outputs, sum(calls)


@pytest.mark.parametrize("task_name", ["sst2", "mrpc"])
def test_cached_frozen_probe_equals_running_the_encoder_every_batch(
    glue_root, tiny_teacher_dir, task_name
):
    """Same losses and dev outputs (to float rounding) whether the frozen encoder runs on every
    batch of every epoch or once per text; the cached path encodes each text once."""
    encoder = _tiny_student(tiny_teacher_dir)
    losses, outputs, calls = _frozen_probe(encoder, task_name, glue_root, cached=False)
    cached_losses, cached_outputs, cached_calls = _frozen_probe(
        encoder, task_name, glue_root, cached=True
    )
    np.testing.assert_allclose(cached_losses, losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cached_outputs, outputs, rtol=1e-4, atol=1e-5)
    pair = 2 if TASKS[task_name].is_pair else 1
    train_texts, dev_texts = 32 * pair, 32 * pair
    assert calls == 3 * train_texts + dev_texts  # every epoch re-encodes the train set
    assert cached_calls == train_texts + dev_texts


def test_frozen_vectors_are_those_of_the_encoder_in_eval_mode(glue_root, tiny_teacher_dir):
    encoder = _tiny_student(tiny_teacher_dir).train()  # dropout 0.3 would be on
    data = load_task(TASKS["mrpc"], glue_root)
    model = GlueModel(encoder, GlueHead(encoder.dim, 2, True, 8, 0.0), freeze_encoder=True)
    cached = frozen_vectors(model, tokenize(encoder, data.train.text_a, data.train.text_b))
    assert not encoder.training and len(cached) == 32 and cached.vectors_b is not None
    expected = encoder.encode(data.train.text_b[:4], convert_to_tensor=True)
    torch.testing.assert_close(cached.vectors_b[:4], expected.cpu(), rtol=1e-5, atol=1e-6)
    assert not cached.vectors_a.requires_grad and cached.lengths() == [
        max(len(a), len(b))
        for a, b in zip(
            encoder.tokenize(data.train.text_a), encoder.tokenize(data.train.text_b), strict=True
        )
    ]
