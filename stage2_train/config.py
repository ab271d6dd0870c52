"""Stage 2's configuration as plain dataclasses: the student's architecture, stored as
``config.json`` (Contract 2), and the training run, recorded as ``train_config.json``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from data.batching import MAX_LENGTH, STUDENT_MAX_TOKENS
from data.errors import PipelineError

STUDENT_POOLINGS = ("max", "mean", "max_mean", "attention")  # how the BiLSTM pools its states
CONNECTIONS = ("residual", "dense")
HEADS = ("linear", "mlp")
CHOICES = {"pooling": STUDENT_POOLINGS, "connection": CONNECTIONS, "head": HEADS}
# How ``encode`` batches a student's texts (length-sorted, padded): at most this many rows and
# padded tokens per batch. On the CPU 64 rows keep the LSTM's gate state in cache: 1.05-1.19x
# the speed of 256 for the torch student and its ONNX export, 1 and 2 threads
# (bench/student_batch.py); a GPU keeps the larger batch.
INFERENCE = {"cpu_batch_size": 64, "gpu_batch_size": 256, "max_tokens": STUDENT_MAX_TOKENS}


def inference_batch_size(device_type: str) -> int:
    """``encode``'s default rows per batch on a device type ("cpu", "cuda", ...)."""
    return INFERENCE["cpu_batch_size" if device_type == "cpu" else "gpu_batch_size"]


# (lowest, highest) per size: far above any useful student, low enough that a typo or a hostile
# config.json is refused in one line instead of asking torch for terabytes. vocab_size and
# embed_dim are 0 until the teacher's word-piece matrix fills them in.
SIZES = {
    "vocab_size": (0, 10_000_000),
    "embed_dim": (0, 65_536),
    "embed_proj": (0, 65_536),
    "hidden_size": (1, 16_384),
    "num_layers": (1, 32),
    "output_dim": (1, 65_536),
    "max_length": (1, 1_048_576),
    "pad_id": (0, 10_000_000),
}


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
    pooling: str = "attention"  # chosen by the ablation of docs/student.md (issue 17)
    head: str = "linear"
    output_dim: int = 384
    normalize: bool = True
    dropout: float = 0.0
    max_length: int = MAX_LENGTH
    pad_id: int = 0
    teacher: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise PipelineError(f"student config: {'; '.join(problems)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StudentConfig:
        """Build from a dict, ignoring keys this version does not know (e.g. a training summary)."""
        if not isinstance(values, dict):
            raise PipelineError(
                f"student config: a JSON object expected, not {type(values).__name__}"
            )
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


# Options that may change between a run and its resumption without changing the weights.
_VOLATILE = (
    "out",
    "targets",
    "progress",
    "threads",
    "overwrite",
    "device",
    "precision",
    "val_every",
    "sts_dev",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
)

# Loss terms that are off by default: while off (weight 0) they and their settings are left out
# of the run's identity, so a run recorded before they existed still resumes.
_OPTIONAL_TERMS = {
    "relational_weight": (),
    "contrastive_weight": ("contrastive_temperature",),
}


@dataclass
class TrainConfig:
    """How a student is trained (``pipeline train``); the defaults are the CLI's."""

    targets: Path
    out: Path
    student: StudentConfig = field(default_factory=StudentConfig)
    first_shards: int | None = None  # train on shards 0..N-1 only (ShardStore)
    batch_size: int = 128
    max_tokens: int = STUDENT_MAX_TOKENS
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of training spent warming up
    clip: float = 1.0
    mse_weight: float = 1.0
    cos_weight: float = 1.0
    relational_weight: float = 0.0  # in-batch cosine-matrix MSE (stage2_train/losses.py)
    contrastive_weight: float = 0.0  # in-batch InfoNCE against the teacher vectors
    contrastive_temperature: float = 0.05
    epochs: int = 3
    max_steps: int | None = None
    time_budget: float | None = None  # minutes; the LR decays to zero as the budget runs out
    val_fraction: float = 0.01
    val_rows: int = 2000
    val_every: int = 500
    sts_dev: Path | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 20
    window_shards: int = 2
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"  # bf16: forward pass under bf16 autocast; weights stay float32
    threads: int | None = None
    overwrite: bool = False
    progress: bool = True

    def identity(self) -> dict[str, Any]:
        """The options that define the run; a resumed run must agree on all of them."""
        values = asdict(self)
        for key in _VOLATILE:
            values.pop(key)
        for weight, companions in _OPTIONAL_TERMS.items():
            if not values[weight]:
                for key in (weight, *companions):
                    values.pop(key)
        return json.loads(json.dumps(values, default=str))


def identity_problem(recorded: Any) -> str | None:
    """Why ``recorded`` is not a run identity as ``TrainConfig.identity`` writes it, or None.

    ``train --overwrite`` deletes the files beside a run's ``train_config.json``, so a file of
    that name is trusted only if it holds exactly an identity's keys (a loss term that is off
    may be absent) and a student configuration that builds: any JSON object with a "student"
    key was once enough to delete a user's ``model.safetensors``.
    """
    if not isinstance(recorded, dict):
        return "not a JSON object"
    optional = {key for weight, rest in _OPTIONAL_TERMS.items() for key in (weight, *rest)}
    required = {f.name for f in fields(TrainConfig)} - set(_VOLATILE) - optional
    missing, unknown = required - set(recorded), set(recorded) - required - optional
    if missing or unknown:
        return f"keys {sorted(missing)} missing, {sorted(unknown)} unknown"
    student = recorded["student"]
    if not isinstance(student, dict) or set(student) != {f.name for f in fields(StudentConfig)}:
        return "its student is not a student configuration"
    try:
        StudentConfig.from_dict(student)
    except PipelineError as exc:
        return str(exc)
    return None


def _problems(config: StudentConfig) -> list[str]:
    """Every problem with ``config``'s values; empty when the student can be built from it."""
    problems = []
    for name, (low, high) in SIZES.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{name} must be an integer, not {value!r}")
        elif not low <= value <= high:
            problems.append(f"{name}={value} is out of range {low}..{high:,}")
    for name, choices in CHOICES.items():
        if getattr(config, name) not in choices:
            problems.append(f"{name} {getattr(config, name)!r} not in {choices}")
    dropout = config.dropout
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        problems.append(f"dropout={dropout!r} must be a number in [0, 1)")
    if not problems and 0 < config.vocab_size <= config.pad_id:  # sizes are valid ints here
        problems.append(f"pad_id={config.pad_id} is not below vocab_size={config.vocab_size}")
    if not isinstance(config.normalize, bool):
        problems.append(f"normalize must be true or false, not {config.normalize!r}")
    if not isinstance(config.teacher, dict):
        problems.append("teacher must be a JSON object")
    return problems
