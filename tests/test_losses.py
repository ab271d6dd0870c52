"""Stage 2's objective terms (stage2_train/losses.py) and their `pipeline train` options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stage2_train.config import TrainConfig
from stage2_train.losses import LossWeights, contrastive_loss, distill_loss, relational_loss
from tests.cli_helpers import refused
from tests.stage2_helpers import make_tiny_shards, train_cli


def _batch(rows: int = 16, dim: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = F.normalize(torch.randn(rows, dim, generator=generator), dim=1)
    pred = target + 0.3 * torch.randn(rows, dim, generator=generator)
    return pred, target


def test_relational_term_is_zero_when_the_student_is_the_teacher_up_to_scale() -> None:
    _, target = _batch()
    assert float(relational_loss(3.0 * target, target)) == pytest.approx(0.0, abs=1e-12)
    pred, _ = _batch(seed=1)
    assert float(relational_loss(pred, target)) > 1e-3


def test_relational_term_ignores_the_diagonal() -> None:
    """Only the off-diagonal similarities count: a batch of one has nothing to compare."""
    pred, target = _batch(rows=1)
    assert float(relational_loss(pred, target)) == 0.0
    pred, target = _batch(rows=2)
    cos_s = F.cosine_similarity(pred[0], pred[1], dim=0)
    cos_t = F.cosine_similarity(target[0], target[1], dim=0)
    assert float(relational_loss(pred, target)) == pytest.approx(float((cos_s - cos_t) ** 2))


def test_contrastive_term_is_lower_for_the_aligned_batch_than_for_a_shuffled_one() -> None:
    pred, target = _batch()
    aligned = contrastive_loss(pred, target, 0.05)
    shuffled = contrastive_loss(pred[torch.randperm(len(pred))], target, 0.05)
    assert float(aligned) < float(shuffled)
    assert float(aligned) < torch.log(torch.tensor(16.0))  # better than chance


@pytest.mark.parametrize("rows", [1, 2, 16])
@pytest.mark.parametrize(
    "weights",
    [LossWeights(), LossWeights(relational=1.0), LossWeights(contrastive=1.0, temperature=0.01)],
)
def test_gradients_are_finite(weights: LossWeights, rows: int) -> None:
    pred, target = _batch(rows=rows)
    pred.requires_grad_(True)
    distill_loss(pred, target, weights).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_zero_weights_leave_the_loss_exactly_as_before() -> None:
    """The two new terms at weight 0 change nothing: the same float as MSE + (1 − cosine)."""
    pred, target = _batch()
    before = F.mse_loss(pred, target) + (1.0 - F.cosine_similarity(pred, target, dim=1)).mean()
    now = distill_loss(pred, target, LossWeights(relational=0.0, contrastive=0.0))
    assert torch.equal(now, before)
    assert LossWeights().spec() == "1.0 × MSE + 1.0 × (1 − cosine)"


def test_off_terms_stay_out_of_the_run_identity() -> None:
    """A run recorded before the terms existed resumes: an off term is not in its identity."""
    default = TrainConfig(targets=Path("t"), out=Path("o")).identity()
    assert not {"relational_weight", "contrastive_weight", "contrastive_temperature"} & set(default)
    on = TrainConfig(targets=Path("t"), out=Path("o"), contrastive_weight=0.1).identity()
    assert on["contrastive_weight"] == 0.1 and on["contrastive_temperature"] == 0.05
    assert "relational_weight" not in on


# ------------------------------------------------------------------------------ in training


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory, tiny_teacher_dir) -> Path:
    return make_tiny_shards(tmp_path_factory.mktemp("losses") / "shards", tiny_teacher_dir)


@pytest.mark.parametrize(
    ("options", "spec"),
    [
        (["--relational-weight", "0.5"], "0.5 × relational"),
        (["--contrastive-weight", "0.2", "--temperature", "0.1"], "0.2 × InfoNCE"),
    ],
)
def test_training_with_each_term(tiny_shards, tmp_path, options, spec) -> None:
    out = tmp_path / "student"
    args = ["--max-steps", "6", "--val-every", "3", "--val-fraction", "0.1", *options]
    result = train_cli(tiny_shards, out, *args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "config.json").read_text())["training"]
    assert spec in summary["loss_spec"] and summary["steps"] == 6
    losses = [json.loads(x).get("loss") for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(x)) for x in losses if x is not None)
    recorded = json.loads((out / "train_config.json").read_text())
    assert recorded[options[0].removeprefix("--").replace("-", "_")] == float(options[1])
    # the weight is part of the run: another weight is another run
    other = [*args[:-1], str(2 * float(options[-1]))]
    refused(["train", "--targets", tiny_shards, "--out", out, "--hidden-size", "16",
             "--batch-size", "8", "--threads", "1", "--no-progress", *other],
            "another configuration", untouched=out)  # fmt: skip


@pytest.mark.parametrize(
    "option",
    [
        ["--relational-weight", "-1"],
        ["--contrastive-weight", "nan"],
        ["--temperature", "0"],
        ["--temperature", "inf"],
    ],
)
def test_bad_weights_are_refused(tiny_shards, tmp_path, option) -> None:
    out = tmp_path / "student"
    refused(["train", "--targets", tiny_shards, "--out", out, *option], option[0], untouched=out)
