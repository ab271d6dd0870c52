"""Training checkpoints: everything needed to continue a run bit-exactly, with no pickle.

A checkpoint is a folder ``checkpoints/step-NNNNNNNN/`` holding the student's weights
(safetensors), the optimizer state and the torch RNG (``trainer.pt``, plain tensors and numbers,
loaded with ``weights_only=True``) and the loop position (``state.json``). It is written under a
temporary name and renamed, so a checkpoint folder that exists is whole even after SIGKILL.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from data import files
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


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> TrainState:
    """Restore model, optimizer and RNG in place; return the loop position."""
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        trainer = torch.load(path / TRAINER_FILE, weights_only=True)
        optimizer.load_state_dict(trainer["optimizer"])
        torch.set_rng_state(trainer["torch_rng"])
        state = TrainState(**json.loads((path / STATE_FILE).read_text(encoding="utf-8")))
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


def resume_latest(
    out: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[TrainState, Path | None]:
    """Restore the newest checkpoint that loads; a corrupt one is skipped with a warning.

    Storage can damage a checkpoint after its atomic rename (a full disk, a bad copy); losing
    ``checkpoint_every`` steps beats refusing to resume. Every successful load overwrites all of
    model, optimizer and RNG, so a half-applied corrupt checkpoint leaves no trace.
    """
    found = checkpoint_dirs(out)
    for path in reversed(found):
        try:
            return load_checkpoint(path, model, optimizer), path
        except PipelineError as exc:
            print(f"warning: {exc}; trying an older checkpoint", file=sys.stderr)
    if found:
        raise PipelineError(
            f"{Path(out) / CHECKPOINTS}: none of the {len(found)} checkpoint(s) loads; "
            "delete the folder to start over"
        )
    return TrainState(), None
