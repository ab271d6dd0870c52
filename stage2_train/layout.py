"""The student directory (Contract 2) and the training run around it: every file name, once.

A student directory holds ``config.json`` (``StudentConfig``, plus the training summary),
``model.safetensors``, the teacher's ``tokenizer/`` and a ``README.md`` model card. ``pipeline
train --out`` is a student directory plus the run's own ``train_config.json`` (what makes a
folder a training run), ``metrics.jsonl`` and ``checkpoints/``. Stage 3, the report and the
benchmarks read these names from here.
"""

from __future__ import annotations

from pathlib import Path

from data.shards import TOKENIZER_DIR  # the teacher's tokenizer, copied from the shard directory

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
TRAIN_CONFIG = "train_config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"

# Everything a training run writes into its --out; --overwrite removes these and nothing else.
RUN_FILES = (
    TRAIN_CONFIG,
    METRICS,
    CONFIG_FILE,
    WEIGHTS_FILE,
    CARD_FILE,
    TOKENIZER_DIR,
    CHECKPOINTS,
)


def is_student_dir(path: str | Path) -> bool:
    """A Contract-2 directory: config + safetensors weights + its own ``tokenizer/`` folder."""
    path = Path(path)
    files = (CONFIG_FILE, WEIGHTS_FILE)
    return all((path / name).is_file() for name in files) and (path / TOKENIZER_DIR).is_dir()
