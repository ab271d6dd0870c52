"""Fine-tuning and prediction: one loop for every encoder, every head and task-specific KD.

The loss is the task's (cross-entropy, or MSE for STS-B) on labelled rows; with distillation
targets (a fine-tuned teacher's logits, Tang et al. 2019) it becomes
``alpha * label_loss + (1 - alpha) * MSE(outputs, targets)``, where augmented rows have no label
and learn from the targets alone. There is no model selection: training runs a fixed number of
epochs, so the dev sets that are reported are never looked at while training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from data.batching import (
    TEACHER_MAX_TOKENS,
    length_grouped,
    pad_batch,
    sized_batches,
    token_budget_batches,
)
from data.progress import progress_bar
from stage2_train.optim import adamw, step_schedule
from stage3_eval.glue.augment import NO_LABEL
from stage3_eval.glue.encoders import BILSTM_LR
from stage3_eval.glue.model import GlueModel


@dataclass
class FineTuneConfig:
    epochs: int = 3
    batch_size: int = 32
    lr: float = BILSTM_LR  # encoder learning rate (the CLI picks it by encoder kind)
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of the steps with a linear warm-up
    max_grad_norm: float = 1.0
    kd_alpha: float = 0.5  # weight of the label loss when distillation targets are given


@dataclass
class Tokenized:
    """Token ids of a split's sentences (``ids_b`` for pairs), tokenized once before training."""

    ids_a: list[list[int]]
    ids_b: list[list[int]] | None

    def __len__(self) -> int:
        return len(self.ids_a)

    def rows(self, batch: np.ndarray) -> tuple[list[list[int]], list[list[int]] | None]:
        ids_b = None if self.ids_b is None else [self.ids_b[i] for i in batch]
        return [self.ids_a[i] for i in batch], ids_b

    def lengths(self) -> list[int]:
        if self.ids_b is None:
            return [len(s) for s in self.ids_a]
        return [max(len(a), len(b)) for a, b in zip(self.ids_a, self.ids_b, strict=True)]

    def outputs(self, model: GlueModel, batch: np.ndarray) -> torch.Tensor:
        """The model's outputs for these rows: encoder, then head."""
        return model(*self.rows(batch))


def tokenize(encoder, text_a: list[str], text_b: list[str] | None) -> Tokenized:
    return Tokenized(encoder.tokenize(text_a), None if text_b is None else encoder.tokenize(text_b))


@dataclass
class FrozenVectors:
    """A split's sentence vectors from a frozen encoder, computed once (``frozen_vectors``).

    A frozen encoder runs in eval mode without gradients, so its vector for a text is the same
    at every epoch: training the head on these cached vectors gives what running the encoder on
    every batch gives (to float rounding: the batches are padded differently), at the cost of
    one pass instead of one per epoch. ``lengths`` stay the token counts, so batching is the
    same as for the ``Tokenized`` split.
    """

    vectors_a: torch.Tensor
    vectors_b: torch.Tensor | None
    token_lengths: list[int]

    def __len__(self) -> int:
        return len(self.vectors_a)

    def lengths(self) -> list[int]:
        return self.token_lengths

    def outputs(self, model: GlueModel, batch: np.ndarray) -> torch.Tensor:
        """The head's outputs for these rows; the encoder does not run."""
        index = torch.as_tensor(batch)
        vectors_b = None if self.vectors_b is None else self.vectors_b[index].to(model.device)
        return model.head(self.vectors_a[index].to(model.device), vectors_b)


@torch.no_grad()  # not inference_mode: the head's backward pass saves these vectors
def frozen_vectors(model: GlueModel, data: Tokenized, max_tokens: int = 2048) -> FrozenVectors:
    """Run ``model``'s frozen encoder once over a split, in eval mode (no dropout)."""
    model.encoder.eval()

    def encode(sequences: list[list[int]]) -> torch.Tensor:
        vectors: torch.Tensor | None = None
        lengths = [len(s) for s in sequences]
        for batch in token_budget_batches(lengths, max_tokens, max_rows=256):
            ids, mask = pad_batch([sequences[i] for i in batch], int(model.encoder.pad_id))
            result = model.encoder(ids.to(model.device), mask.to(model.device)).float().cpu()
            if vectors is None:
                vectors = torch.zeros(len(sequences), result.shape[1])
            vectors[torch.as_tensor(batch)] = result
        return vectors if vectors is not None else torch.zeros(0, 0)

    vectors_b = None if data.ids_b is None else encode(data.ids_b)
    return FrozenVectors(encode(data.ids_a), vectors_b, data.lengths())


def training_batches(
    lengths: list[int], batch_size: int, rng: np.random.Generator, pool: int = 50
) -> list[np.ndarray]:
    """Shuffled batches of similar-length rows, length-grouped in windows of ``pool`` batches."""
    order = rng.permutation(len(lengths))
    group = partial(sized_batches, batch_size=batch_size)
    chunks = length_grouped(order, np.asarray(lengths)[order], batch_size * pool, group)
    batches = [batch for chunk in chunks for batch in chunk]
    return [batches[i] for i in rng.permutation(len(batches))]


def _optimizer(model: GlueModel, config: FineTuneConfig) -> torch.optim.Optimizer:
    groups = [{"params": list(model.head.parameters()), "lr": config.head_lr}]
    if not model.freeze_encoder:
        encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
        groups.append({"params": encoder_params, "lr": config.lr})
    return adamw(groups, weight_decay=config.weight_decay)


def batch_loss(
    outputs: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None,
    regression: bool,
    alpha: float,
) -> torch.Tensor:
    """Label loss on labelled rows, plus the MSE to the teacher's outputs when given."""
    if regression:
        labelled = ~torch.isnan(labels)
        label_loss = (
            F.mse_loss(outputs[labelled].squeeze(-1), labels[labelled])
            if labelled.any()
            else outputs.sum() * 0.0
        )
    else:
        labelled = labels != NO_LABEL
        label_loss = (
            F.cross_entropy(outputs[labelled], labels[labelled])
            if labelled.any()
            else outputs.sum() * 0.0
        )
    if targets is None:
        return label_loss
    return alpha * label_loss + (1.0 - alpha) * F.mse_loss(outputs, targets)


def fine_tune(
    model: GlueModel,
    data: Tokenized | FrozenVectors,
    labels: np.ndarray,
    config: FineTuneConfig,
    *,
    regression: bool,
    seed: int,
    targets: np.ndarray | None = None,
    desc: str = "fine-tune",
) -> list[float]:
    """Train ``model`` in place; returns the mean loss of each epoch.

    ``labels`` hold class ids (``NO_LABEL`` for unlabelled rows) or scores (NaN if unlabelled).
    """
    rng = np.random.default_rng(seed)
    steps_per_epoch = -(-len(data) // config.batch_size)
    optimizer = _optimizer(model, config)
    scheduler = step_schedule(optimizer, config.epochs * steps_per_epoch, config.warmup)
    label_tensor = torch.as_tensor(labels, dtype=torch.float32 if regression else torch.long)
    target_tensor = None if targets is None else torch.as_tensor(targets, dtype=torch.float32)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    epoch_losses: list[float] = []
    model.train()
    with progress_bar(
        total=config.epochs * len(data), desc=desc, unit="ex", unit_scale=True, leave=False
    ) as bar:
        for _ in range(config.epochs):
            total, seen = 0.0, 0
            for batch in training_batches(data.lengths(), config.batch_size, rng):
                outputs = data.outputs(model, batch)
                index = torch.as_tensor(batch)
                batch_targets = (
                    None if target_tensor is None else target_tensor[index].to(outputs.device)
                )
                loss = batch_loss(
                    outputs,
                    label_tensor[index].to(outputs.device),
                    batch_targets,
                    regression,
                    config.kd_alpha,
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(batch)
                seen += len(batch)
                bar.update(len(batch))
                bar.set_postfix(loss=f"{total / seen:.4f}")
            epoch_losses.append(total / max(seen, 1))
    model.eval()
    return epoch_losses


@torch.inference_mode()
def predict(
    model: GlueModel,
    data: Tokenized | FrozenVectors,
    max_tokens: int = TEACHER_MAX_TOKENS,
    desc: str = "predict",
) -> np.ndarray:
    """Raw outputs ``[N, num_outputs]`` in input order (length-sorted batches inside)."""
    model.eval()
    outputs: np.ndarray | None = None
    with progress_bar(total=len(data), desc=desc, unit="ex", unit_scale=True, leave=False) as bar:
        for batch in token_budget_batches(data.lengths(), max_tokens, max_rows=256):
            result = data.outputs(model, batch).float().cpu().numpy()
            if outputs is None:
                outputs = np.zeros((len(data), result.shape[1]), dtype=np.float32)
            outputs[batch] = result
            bar.update(len(batch))
    if outputs is None:
        return np.zeros((0, model.head.config["num_outputs"]), dtype=np.float32)
    return outputs
