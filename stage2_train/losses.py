"""Stage 2's objective: the student's sentence vectors against the cached teacher vectors.

Every term works on one batch of student vectors and the same rows' stored teacher vectors, so
the teacher is never run. The pointwise terms (MSE, 1 − cosine) pull each student vector onto its
teacher vector; the two in-batch terms look at the batch as a whole:

* relational: MSE between the student's and the teacher's in-batch cosine-similarity matrices,
  off-diagonal entries only (the diagonal is 1 for both). It asks the student to rank and space
  sentences as the teacher does, which is what STS and retrieval use, without asking for the
  exact coordinates.
* contrastive (InfoNCE): each student vector must pick its own teacher vector out of the batch's
  teacher vectors, with softmax over cosine / temperature. It pushes apart the sentences the
  pointwise terms leave close together.

Under DDP each rank computes these on its own batch: the in-batch terms never see the other
ranks' rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    """The weight of every term; a term with weight 0 is not computed at all."""

    mse: float = 1.0
    cos: float = 1.0
    relational: float = 0.0
    contrastive: float = 0.0
    temperature: float = 0.05  # of the contrastive term

    def spec(self) -> str:
        """The objective in words, as the run's summary records it (``loss_spec``)."""
        text = f"{self.mse} × MSE + {self.cos} × (1 − cosine)"
        if self.relational:
            text += f" + {self.relational} × relational (MSE of in-batch cosine matrices)"
        if self.contrastive:
            text += f" + {self.contrastive} × InfoNCE (in-batch, temperature {self.temperature})"
        return text


def relational_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between the off-diagonal in-batch cosine similarities of student and teacher."""
    rows = len(pred)
    if rows < 2:  # no pair to compare
        return pred.sum() * 0.0
    student = F.normalize(pred, dim=1)
    teacher = F.normalize(target, dim=1)
    off_diagonal = ~torch.eye(rows, dtype=torch.bool, device=pred.device)
    return F.mse_loss((student @ student.T)[off_diagonal], (teacher @ teacher.T)[off_diagonal])


def contrastive_loss(pred: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE: row i of the student against every teacher vector of the batch, positive i."""
    logits = F.normalize(pred, dim=1) @ F.normalize(target, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(pred), device=pred.device))


def distill_loss(pred: torch.Tensor, target: torch.Tensor, weights: LossWeights) -> torch.Tensor:
    """The weighted sum of the terms whose weight is not zero."""
    loss = pred.new_zeros(())
    if weights.mse:
        loss = loss + weights.mse * F.mse_loss(pred, target)
    if weights.cos:
        loss = loss + weights.cos * (1.0 - F.cosine_similarity(pred, target, dim=1)).mean()
    if weights.relational:
        loss = loss + weights.relational * relational_loss(pred, target)
    if weights.contrastive:
        loss = loss + weights.contrastive * contrastive_loss(pred, target, weights.temperature)
    return loss
