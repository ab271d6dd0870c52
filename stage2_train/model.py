"""The student: teacher word-piece embeddings → BiLSTM layers → pooling over time → projection.

After Wu et al. 2020, the student approximates the teacher's *sentence vector*, so it has the
teacher's tokenizer, starts from the teacher's word-piece embeddings and outputs vectors of the
teacher's width (L2-normalised when the teacher's are). Batches run padded through
``bidirectional_lstm``, which is exact at every real token and lets the CPU use its fused RNN
kernels; batches are length-sorted everywhere, so little padding is computed, and padding
positions are masked out of the pooling.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from data import files
from data.errors import PipelineError
from stage2_train.bilstm import bidirectional_lstm
from stage2_train.config import StudentConfig
from stage2_train.export import model_card
from stage2_train.hub import (
    DEFAULT_COMMIT_MESSAGE,
    PushResult,
    card_with_header,
    portable,
    push_folder,
    resolve_student_dir,
    sentence_transformers_files,
)
from stage2_train.layout import CARD_FILE, CONFIG_FILE, TOKENIZER_DIR, WEIGHTS_FILE
from stage2_train.tokenizer import load_tokenizer
from stage2_train.vectors import SentenceEncoding


def require_finite(path: Path, tensors: dict[str, torch.Tensor], fix: str) -> None:
    """Refuse weights holding NaN or infinity: every vector computed from them would be NaN,
    and a NaN row written with exit 0 is a wrong answer. A tensor's sum is finite when all its
    values are (NaN and infinity propagate), so only a non-finite sum, rare, pays for the exact
    element-wise test that tells a damaged weight from an overflowing sum."""
    for name, tensor in tensors.items():
        if not tensor.is_floating_point() or bool(torch.isfinite(tensor.sum())):
            continue
        if not bool(torch.isfinite(tensor).all()):
            raise PipelineError(f"{path}: weight {name} holds NaN or infinite values; {fix}")


class Student(SentenceEncoding, nn.Module):
    """A BiLSTM sentence encoder that reproduces a teacher's sentence vectors.

    A ``torch.nn.Module``: ``forward(input_ids, attention_mask) -> [B, dim]`` is differentiable,
    so stage 3 fine-tunes it end to end; ``encode(texts)`` is the fast inference path.
    """

    def __init__(self, config: StudentConfig, tokenizer: Any):
        super().__init__()
        if config.vocab_size <= 0 or config.embed_dim <= 0:
            raise PipelineError("student config: vocab_size and embed_dim must be set")
        self.config = config
        self.tokenizer = tokenizer
        self.summary: dict[str, Any] | None = None  # the training summary it was loaded with
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=None)
        self.embed_proj = None
        if config.embed_proj:
            self.embed_proj = nn.Linear(config.embed_dim, config.embed_proj, bias=False)
        self.dropout = nn.Dropout(config.dropout)
        self.lstms = nn.ModuleList()
        width = config.input_width
        for _ in range(config.num_layers):
            self.lstms.append(
                nn.LSTM(width, config.hidden_size, batch_first=True, bidirectional=True)
            )
            step = 2 * config.hidden_size
            width = width + step if config.connection == "dense" else step
        self.attention = (
            nn.Linear(config.feature_width, 1) if config.pooling == "attention" else None
        )
        self.head = self._build_head(config)

    @staticmethod
    def _build_head(config: StudentConfig) -> nn.Module:
        if config.head == "mlp":
            return nn.Sequential(
                nn.Linear(config.pooled_width, config.output_dim),
                nn.GELU(),
                nn.Linear(config.output_dim, config.output_dim),
            )
        return nn.Linear(config.pooled_width, config.output_dim)

    # ----------------------------------------------------------------- construction and files

    @classmethod
    def untrained(
        cls, config: StudentConfig, tokenizer_dir: str | Path, input_embeddings: torch.Tensor
    ) -> Student:
        """A fresh student whose word-piece embeddings start as a copy of the teacher's."""
        vocab, width = input_embeddings.shape
        for name, want, got in (
            ("vocab_size", config.vocab_size, vocab),
            ("embed_dim", config.embed_dim, width),
        ):
            if want and want != got:
                raise PipelineError(f"student config {name}={want} but the embeddings have {got}")
        tokenizer = load_tokenizer(tokenizer_dir)
        pad_id = int(tokenizer.pad_token_id or 0)
        config = StudentConfig.from_dict(
            {**config.to_dict(), "vocab_size": vocab, "embed_dim": width, "pad_id": pad_id}
        )
        student = cls(config, tokenizer)
        with torch.no_grad():
            student.embed.weight.copy_(input_embeddings.float())
        return student

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, revision: str | None = None) -> Student:
        """Load a student folder written by ``save_pretrained`` (Contract 2), or a Hub
        repository holding one (``org/name``, at ``revision``; the Hub cache is honoured)."""
        directory = resolve_student_dir(name_or_path, revision)
        weights = directory / WEIGHTS_FILE
        if not weights.is_file():
            other = [p.name for p in [*directory.glob("*.bin"), *directory.glob("*.pt")]]
            hint = f" (found {other[0]}: only safetensors weights are loaded)" if other else ""
            raise PipelineError(f"{directory}: no {WEIGHTS_FILE}{hint}")
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise PipelineError(f"{directory}: no {CONFIG_FILE}; not a student directory")
        try:
            payload = json.loads(config_path.read_text(encoding="utf-8"))
            config = StudentConfig.from_dict(payload)
        except (ValueError, TypeError) as exc:  # not JSON, not UTF-8
            raise PipelineError(f"{config_path}: corrupt config ({exc})") from None
        except PipelineError as exc:  # values out of range or not in their choice lists
            raise PipelineError(f"{config_path}: {exc}") from None
        student = cls(config, load_tokenizer(directory / TOKENIZER_DIR))
        try:
            tensors = load_file(str(weights))
        except (SafetensorError, OSError) as exc:
            raise PipelineError(f"{weights}: not a safetensors file ({exc})") from None
        require_finite(weights, tensors, "the student is damaged (restore or retrain it)")
        try:
            student.load_state_dict(tensors)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise PipelineError(f"{weights}: weights do not fit {CONFIG_FILE} ({first})") from None
        training = payload.get("training")  # kept, so a re-save or a push keeps the results
        student.summary = training if isinstance(training, dict) else None
        return student.eval()

    def save_pretrained(
        self, directory: str | Path, summary: dict[str, Any] | None = None, card: str | None = None
    ) -> None:
        """Write config.json, model.safetensors, tokenizer/, the sentence-transformers files
        (``hub.ST_FILES``) and README.md under a metadata header: a Hub repository.

        ``summary`` defaults to the one the student was loaded with; ``card`` (the card's body)
        to ``export.model_card`` of the config written here, so the card never states another
        max length or width than config.json.

        Each file is written under a temporary name and renamed, so a reader never sees a
        half-written student.
        """
        directory = Path(directory)
        with files.os_errors(directory, "cannot create"):
            directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        weights = save(tensors, metadata={"format": "pt"})
        files.require_free_space(directory, len(weights), "the student's weights")
        with files.atomic_path(directory / TOKENIZER_DIR) as tmp:
            files.save_pretrained(tmp, self.tokenizer)
        files.write_bytes(directory / WEIGHTS_FILE, weights)
        payload = self.config.to_dict()
        summary = self.summary if summary is None else summary
        if summary is not None:
            payload["training"] = summary
        payload = portable(payload)
        files.write_text(directory / CONFIG_FILE, json.dumps(payload, indent=2) + "\n")
        for name, text in sentence_transformers_files(self.config.max_length).items():
            files.write_text(directory / name, text)
        body = model_card(payload, payload.get("training") or {}) if card is None else card
        files.write_text(directory / CARD_FILE, card_with_header(body, payload))

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool = False,
        revision: str | None = None,
        commit_message: str = DEFAULT_COMMIT_MESSAGE,
        token: str | None = None,
    ) -> PushResult:
        """Save the student to a temporary folder and upload it to the Hub as ``pipeline push``
        does (``hub.push_folder``): the model's files and its card, nothing else."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="sra-distill-push-") as tmp:
            self.save_pretrained(tmp)
            return push_folder(
                tmp,
                repo_id,
                private=private,
                revision=revision,
                commit_message=commit_message,
                token=token,
            )

    def quantized(self) -> Student:
        """An int8 copy for CPU inference: dynamic quantization of the LSTM and linear layers.

        Weights are stored in int8 (4× smaller) and activations quantized on the fly, at a cosine
        of ~0.999 to the float model. Since the float LSTM runs oneDNN's fused kernels it is no
        longer faster on the CPU measured in docs/student.md; it pays where memory does, or on
        CPUs without those kernels. Inference only: not differentiable; fine-tune the float model.
        """
        import warnings

        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():  # torch.ao's own deprecation notices, not actionable
            warnings.simplefilter("ignore")
            return quantize_dynamic(
                copy.deepcopy(self).eval(), {nn.LSTM, nn.Linear}, dtype=torch.qint8
            )

    # ------------------------------------------------------------------------------- compute

    @property
    def dim(self) -> int:
        return self.config.output_dim

    @property
    def pad_id(self) -> int:
        return self.config.pad_id

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Teacher tokenizer ids with special tokens, truncated to ``max_length``."""
        if not texts:
            return []
        return self.tokenizer(
            list(texts), truncation=True, max_length=self.config.max_length, verbose=False
        )["input_ids"]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors ``[B, output_dim]`` for a right-padded batch of token ids."""
        lengths = attention_mask.sum(1).clamp(min=1)
        tokens = self.embed(input_ids)
        if self.embed_proj is not None:
            tokens = self.embed_proj(tokens)
        tokens = self.dropout(tokens)
        hidden = self._encode_padded(tokens, lengths)
        pooled = self._pool(hidden, lengths)
        vectors = self.head(self.dropout(pooled))
        return F.normalize(vectors, p=2, dim=1) if self.config.normalize else vectors

    def _encode_padded(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        layer_input = tokens
        for lstm in self.lstms:
            output = bidirectional_lstm(lstm, layer_input, lengths)
            if self.config.connection == "dense":
                layer_input = torch.cat([layer_input, output], dim=2)
            elif output.shape == layer_input.shape:
                layer_input = output + layer_input
            else:  # the first layer changes width: nothing to add
                layer_input = output
        if self.config.connection == "dense":  # pool over every layer's output, not the input
            return layer_input[:, :, self.config.input_width :]
        return layer_input

    def _pool(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(hidden.shape[1], device=hidden.device)
        valid = (steps[None, :] < lengths[:, None].to(hidden.device)).unsqueeze(-1)
        pooling = self.config.pooling
        if pooling == "attention":
            scores = self.attention(hidden).masked_fill(~valid, float("-inf"))
            return (torch.softmax(scores, dim=1) * hidden).sum(1)
        mean = (hidden * valid).sum(1) / lengths[:, None].to(hidden.dtype)
        if pooling == "mean":
            return mean
        maxed = hidden.masked_fill(~valid, float("-inf")).max(1).values
        return maxed if pooling == "max" else torch.cat([maxed, mean], dim=1)

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """Eval mode without autograd while ``embed_ids`` runs; the mode is restored after."""
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            self.train(was_training)

    def run_batch(self, input_ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        """float32 vectors of one padded batch (bf16 under autocast)."""
        vectors = self.forward(input_ids.to(self.device), mask.to(self.device))
        return vectors.float().cpu().numpy()
