"""The fine-tuned model: any sentence encoder plus a GLUE head, and how it is saved and reloaded.

The encoder is anything with ``forward(input_ids, attention_mask) -> [B, dim]`` (the student, the
teacher, an untrained student), so every model in a comparison gets exactly the same head.
Sentence pairs go through the encoder separately (siamese), as the paper's student must: it only
ever sees one sentence at a time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from data import files
from data.batching import pad_batch
from data.errors import PipelineError
from data.manifest import TEACHER_REBUILD_KEYS

# A fine-tuned folder: the encoder (a student directory or a Hugging Face model), the head's
# weights, and glue.json (task, encoder kind, head shape), written last.
HEAD_FILE = "head.safetensors"
META_FILE = "glue.json"
ENCODER_DIR = "encoder"
HEAD_HIDDEN = 512  # units of the head's hidden layer
HEAD_DROPOUT = 0.1


def is_finetuned_dir(folder: Path) -> bool:
    """A folder ``save_finetuned`` completed: it has ``glue.json``, which is written last."""
    return (Path(folder) / META_FILE).is_file()


class GlueHead(nn.Module):
    """One-hidden-layer MLP on ``u`` (single sentence) or on ``[u; v; |u-v|; u*v]`` (pairs).

    A LayerNorm first puts every encoder's features on one scale: the student's and the
    teacher's vectors are L2-normalised (entries near 0.05), a scratch model's are not.
    """

    def __init__(
        self,
        dim: int,
        num_outputs: int,
        pair: bool,
        hidden: int = HEAD_HIDDEN,
        dropout: float = HEAD_DROPOUT,
    ):
        super().__init__()
        self.pair = pair
        self.config = {
            "dim": dim,
            "num_outputs": num_outputs,
            "pair": pair,
            "hidden": hidden,
            "dropout": dropout,
        }
        width = 4 * dim if pair else dim
        self.mlp = nn.Sequential(
            nn.LayerNorm(width),
            nn.Dropout(dropout),
            nn.Linear(width, hidden),
            nn.Tanh(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_outputs),
        )

    def start_at(self, value: float) -> None:
        """Set the output bias, e.g. to the mean STS-B score: a regression head that starts at
        0 spends its first hundreds of steps only moving its bias to the 0-5 scale."""
        with torch.no_grad():
            self.mlp[-1].bias.fill_(value)

    def forward(self, u: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
        if self.pair:
            if v is None:
                raise ValueError("a pair head needs two sentence vectors")
            u = torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
        return self.mlp(u)


class GlueModel(nn.Module):
    """Encoder + head. With ``freeze_encoder`` only the head learns (the encoder runs no-grad)."""

    def __init__(self, encoder: nn.Module, head: GlueHead, freeze_encoder: bool = False):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            encoder.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    def train(self, mode: bool = True) -> GlueModel:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()  # a frozen encoder keeps its dropout off too
        return self

    def forward(self, ids_a: list[list[int]], ids_b: list[list[int]] | None = None) -> torch.Tensor:
        """Outputs ``[B, num_outputs]`` for tokenized sentences (and their pair partners)."""
        sequences = ids_a if ids_b is None else [*ids_a, *ids_b]
        input_ids, mask = pad_batch(sequences, int(self.encoder.pad_id))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            vectors = self.encoder(input_ids.to(self.device), mask.to(self.device))
        if ids_b is None:
            return self.head(vectors)
        return self.head(vectors[: len(ids_a)], vectors[len(ids_a) :])


def encoder_kind(encoder: nn.Module) -> str:
    """``teacher`` for a Hugging Face encoder (stage 1's Teacher), else ``student``."""
    from stage1_encode.teacher import Teacher

    return "teacher" if isinstance(encoder, Teacher) else "student"


def save_finetuned(model: GlueModel, folder: Path, meta: dict[str, Any]) -> None:
    """Write encoder, head and how to rebuild them to ``folder`` (safetensors + JSON, no pickle).

    ``glue.json`` is written last: a folder that has it holds a whole model.
    """
    with files.os_errors(folder, "cannot create"):
        folder.mkdir(parents=True, exist_ok=True)
    encoder = model.encoder
    kind = encoder_kind(encoder)
    encoder_meta: dict[str, Any] = {}
    with files.atomic_path(folder / ENCODER_DIR) as tmp:
        if kind == "teacher":
            files.save_pretrained(tmp, encoder.model, encoder.tokenizer)
            encoder_meta = {key: getattr(encoder, key) for key in TEACHER_REBUILD_KEYS}
        else:
            encoder.save_pretrained(tmp)
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    files.write_bytes(folder / HEAD_FILE, save(head))
    payload = {**meta, "encoder": {"kind": kind, **encoder_meta}, "head": model.head.config}
    files.write_text(folder / META_FILE, json.dumps(payload, indent=2) + "\n")


def read_finetuned_meta(folder: Path) -> dict[str, Any]:
    """The checked ``glue.json`` of a :func:`save_finetuned` folder, without loading weights."""
    meta_path = folder / META_FILE
    if not is_finetuned_dir(folder):
        raise PipelineError(
            f"{folder}: not a fine-tuned GLUE model (no {META_FILE}); "
            "make one with pipeline eval glue --save-finetuned"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        encoder, outputs = meta["encoder"], meta["head"]["num_outputs"]
        needed = TEACHER_REBUILD_KEYS if encoder["kind"] == "teacher" else ()
        missing = [key for key in needed if key not in encoder]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise PipelineError(f"{meta_path}: corrupt ({type(exc).__name__}: {exc})") from None
    if missing or not isinstance(outputs, int):
        problem = f"no encoder {missing[0]!r}" if missing else f"num_outputs {outputs!r}"
        raise PipelineError(f"{meta_path}: corrupt ({problem})")
    return meta


def load_finetuned(folder: Path, device: torch.device | str = "cpu") -> tuple[GlueModel, dict]:
    """A model written by :func:`save_finetuned`, in eval mode, and its metadata."""
    meta = read_finetuned_meta(folder)
    spec, head_args = meta["encoder"], meta["head"]
    teacher_args = (
        {key: spec[key] for key in TEACHER_REBUILD_KEYS} if spec["kind"] == "teacher" else None
    )
    if teacher_args is not None:
        from stage1_encode.teacher import Teacher

        encoder: nn.Module = Teacher(str(folder / ENCODER_DIR), **teacher_args)
    else:
        from stage2_train import Student

        encoder = Student.from_pretrained(folder / ENCODER_DIR)
    head_path = folder / HEAD_FILE
    try:
        head = GlueHead(**head_args)
        head.load_state_dict(load_file(str(head_path)))
    except (SafetensorError, OSError, RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PipelineError(f"{head_path}: unreadable head weights ({first})") from None
    model = GlueModel(encoder, head).to(torch.device(device))
    return model.eval(), meta
