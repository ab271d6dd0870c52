"""The student's architecture as a plain dataclass, stored as ``config.json`` (Contract 2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from data.errors import PipelineError

POOLINGS = ("max", "mean", "max_mean", "attention")
CONNECTIONS = ("residual", "dense")
HEADS = ("linear", "mlp")


@dataclass
class StudentConfig:
    """Everything needed to rebuild the student's modules; the weights live in safetensors.

    ``vocab_size`` and ``embed_dim`` come from the teacher's word-piece matrix, ``output_dim``
    and ``normalize`` from the teacher's sentence vectors, so the student is a drop-in for it.
    """

    vocab_size: int = 0
    embed_dim: int = 0
    embed_proj: int = 128  # low-rank projection of the word-pieces; 0: the teacher's width
    hidden_size: int = 256
    num_layers: int = 1
    connection: str = "residual"  # between BiLSTM layers when num_layers > 1
    pooling: str = "max_mean"
    head: str = "linear"
    output_dim: int = 384
    normalize: bool = True
    dropout: float = 0.0
    max_length: int = 128
    pad_id: int = 0
    teacher: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            (self.pooling in POOLINGS, f"pooling {self.pooling!r} not in {POOLINGS}"),
            (self.connection in CONNECTIONS, f"connection {self.connection!r} unknown"),
            (self.head in HEADS, f"head {self.head!r} not in {HEADS}"),
            (self.hidden_size > 0 and self.num_layers > 0, "hidden_size, num_layers > 0"),
            (self.embed_proj >= 0 and 0 <= self.dropout < 1, "embed_proj >= 0, 0 <= dropout < 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise PipelineError(f"student config: {message}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StudentConfig:
        """Build from a dict, ignoring keys this version does not know (e.g. a training summary)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def input_width(self) -> int:
        return self.embed_proj or self.embed_dim

    @property
    def feature_width(self) -> int:
        """Width of the per-token features that are pooled."""
        if self.connection == "dense":
            return 2 * self.hidden_size * self.num_layers
        return 2 * self.hidden_size

    @property
    def pooled_width(self) -> int:
        return 2 * self.feature_width if self.pooling == "max_mean" else self.feature_width
