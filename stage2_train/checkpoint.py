"""Training checkpoints: everything needed to continue a run bit-exactly, with no pickle.

A checkpoint is a folder ``checkpoints/step-NNNNNNNN/`` holding the student's weights
(safetensors), the optimizer state and the torch RNG (``trainer.pt``, plain tensors and numbers,
loaded with ``weights_only=True``) and the loop position (``state.json``). It is written under a
temporary name and renamed, so a checkpoint folder that exists is whole even after SIGKILL.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from data import files, report
from data.errors import PipelineError
from stage2_train.layout import CHECKPOINTS, WEIGHTS_FILE

_PREFIX = "step-"
TRAINER_FILE = "trainer.pt"  # optimizer state and torch RNG
STATE_FILE = "state.json"  # the loop position


@dataclass
class TrainState:
    """Where the loop is: the data position is (epoch, batch index within the epoch's plan)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    sentences_seen: int = 0
    train_seconds: float = 0.0


def checkpoint_dirs(out: Path) -> list[Path]:
    root = Path(out) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX))


def save_checkpoint(
    out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: TrainState, keep: int
) -> Path:
    """Write a checkpoint atomically and delete all but the newest ``keep``.

    The files are serialized in memory first, so a disk that cannot hold them is refused before
    anything is written, and a write that fails anyway leaves no temporary folder behind.
    """
    root = Path(out) / CHECKPOINTS
    with files.os_errors(root, "cannot create"):
        root.mkdir(parents=True, exist_ok=True)
    files.remove_stale_temporaries(root, f"{_PREFIX}*")  # left by killed runs
    final = root / f"{_PREFIX}{state.step:08d}"
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    trainer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}, trainer)
    payload = {
        WEIGHTS_FILE: save(tensors),
        TRAINER_FILE: trainer.getvalue(),
        STATE_FILE: (json.dumps(asdict(state), indent=2) + "\n").encode("utf-8"),
    }
    files.require_free_space(root, sum(map(len, payload.values())), f"checkpoint {final.name}")
    with files.atomic_path(final) as tmp:
        tmp.mkdir()
        for name, data in payload.items():
            (tmp / name).write_bytes(data)
    for old in checkpoint_dirs(out)[: -max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, max_step: int
) -> TrainState:
    """Restore model, optimizer and RNG in place; return the loop position.

    Every value read back is checked: the loop position against the run's ``max_step`` (a
    ``"step": -5`` was resumed from and trained 25 extra steps), the weights and the optimizer
    moments finite and shaped like the model's, the fixed hyper-parameters the run's own.
    """
    try:
        state = _read_state(path, max_step)
        weights = load_file(str(path / WEIGHTS_FILE))
        _require_finite(weights, WEIGHTS_FILE)
        model.load_state_dict(weights)
        trainer = torch.load(path / TRAINER_FILE, weights_only=True)
        expected = [_fixed_hyperparameters(group) for group in optimizer.param_groups]
        optimizer.load_state_dict(trainer["optimizer"])
        _check_optimizer(optimizer, expected)
        torch.set_rng_state(trainer["torch_rng"])
    except (
        OSError,
        RuntimeError,
        KeyError,
        TypeError,
        ValueError,
        SafetensorError,
        pickle.UnpicklingError,
    ) as exc:  # weights_only refuses a pickled object
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PipelineError(f"{path}: cannot resume from this checkpoint ({first})") from None
    return state


def _read_state(path: Path, max_step: int) -> TrainState:
    """``state.json`` as a ``TrainState`` whose counts fit the run and the folder's name."""
    values = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    if not isinstance(values, dict) or set(values) != {f.name for f in fields(TrainState)}:
        raise ValueError(f"{STATE_FILE}: not a loop position")
    state = TrainState(**values)
    counts = {"step": state.step, "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch}
    for name, value in {**counts, "sentences_seen": state.sentences_seen}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{STATE_FILE}: {name} {value!r} is not a count")
    if state.step > max_step or max(state.epoch, state.batch_in_epoch) > state.step:
        raise ValueError(f"{STATE_FILE}: {counts} does not fit a run of {max_step} steps")
    seconds = state.train_seconds
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds < math.inf
    ):
        raise ValueError(f"{STATE_FILE}: train_seconds {seconds!r} is not a duration")
    if path.name != f"{_PREFIX}{state.step:08d}":
        raise ValueError(f"{STATE_FILE}: step {state.step} in a folder named {path.name}")
    return state


def _require_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"{where}: {name} holds NaN or infinite values")


# The optimizer settings a run fixes; the learning rate is set anew at every step.
_FIXED = ("betas", "eps", "weight_decay", "amsgrad")


def _fixed_hyperparameters(group: dict[str, Any]) -> dict[str, Any]:
    return {key: group.get(key) for key in _FIXED}


def _check_optimizer(optimizer: torch.optim.Optimizer, expected: list[dict[str, Any]]) -> None:
    """The loaded optimizer has the run's settings and moments that fit its parameters (torch
    checks only their number: a moment of the wrong shape aborted the process at the next step)."""
    for group, settings in zip(optimizer.param_groups, expected, strict=True):
        found = _fixed_hyperparameters(group)
        if found != settings:
            raise ValueError(f"{TRAINER_FILE}: optimizer settings {found}, the run's {settings}")
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if not isinstance(value, torch.Tensor):
                    raise ValueError(f"{TRAINER_FILE}: optimizer state {name} is not a tensor")
                if name != "step" and value.shape != param.shape:
                    raise ValueError(
                        f"{TRAINER_FILE}: optimizer {name} of shape {tuple(value.shape)} "
                        f"for a parameter of shape {tuple(param.shape)}"
                    )
                if not torch.isfinite(value).all():
                    raise ValueError(f"{TRAINER_FILE}: optimizer {name} is not finite")


def resume_latest(
    out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, max_step: int
) -> tuple[TrainState, Path | None]:
    """Restore the newest checkpoint that loads; a corrupt one is skipped with a warning.

    Storage can damage a checkpoint after its atomic rename (a full disk, a bad copy); losing
    ``checkpoint_every`` steps beats refusing to resume. Every successful load overwrites all of
    model, optimizer and RNG, so a half-applied corrupt checkpoint leaves no trace.
    """
    found = checkpoint_dirs(out)
    for path in reversed(found):
        try:
            return load_checkpoint(path, model, optimizer, max_step), path
        except PipelineError as exc:
            report.warning(f"warning: {exc}; trying an older checkpoint")
    if found:
        raise PipelineError(
            f"{Path(out) / CHECKPOINTS}: none of the {len(found)} checkpoint(s) loads; "
            "delete the folder to start over"
        )
    return TrainState(), None
