"""The kNN probe: how well the student's vector space keeps the teacher's neighbourhoods.

On the held-out validation rows of a shard directory (the rows stage 2 never trains on), the
teacher's vectors are read from the shards and the model under test encodes the same texts.
For every row, its k nearest other rows by the teacher's vectors are the truth; recall@k is
the share of them that the model's own vectors also rank among the k nearest. Mean cosine
between the model's and the teacher's vector of the same text says how close the
approximation is pointwise (only when the dimensions agree).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from data.errors import PipelineError
from data.progress import encode_timed, progress_bar
from data.shards import ShardStore, is_validation, read_shard
from stage2_train.config import TrainConfig
from stage2_train.layout import TRAIN_CONFIG
from stage3_eval.encoders import Encoder
from stage3_eval.knn import (
    DEFAULT_INDEX_KIND,
    build_index,
    neighbours_excluding_self,
    normalize,
    recall_at_k,
)
from stage3_eval.results import Result

DEFAULT_KS = (1, 10)


def resolve_fraction(explicit: float | None, encoder: Encoder) -> float:
    """The held-out share: as given, else as the student was trained with, else stage 2's default.

    Probing a student on exactly the rows it held out is what makes the probe honest, so a
    student trained with another ``--val-fraction`` is probed on its own held-out rows.
    """
    if explicit is not None:
        return explicit
    recorded = Path(encoder.label) / TRAIN_CONFIG
    if encoder.kind == "student" and recorded.is_file():
        try:
            value = json.loads(recorded.read_text(encoding="utf-8")).get("val_fraction")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            raise PipelineError(
                f"{recorded}: unreadable; pass --validation-fraction to probe this student"
            ) from None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1:
            return float(value)
    return TrainConfig.val_fraction


@dataclass
class HeldOut:
    """The validation rows of a shard directory: texts and the teacher's vectors."""

    texts: list[str]
    targets: np.ndarray
    lines: np.ndarray


@dataclass
class ProbeScore:
    rows: int
    recall: dict[int, float]
    mean_cosine: float | None
    seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def sentences_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def held_out_rows(store: ShardStore, fraction: float, max_rows: int | None = None) -> HeldOut:
    """Rows chosen by ``is_validation`` in corpus order, the first ``max_rows`` if capped."""
    texts, targets, lines = [], [], []
    bar = progress_bar(store.paths, desc="read shards", unit="shard", enabled=len(store.paths) >= 4)
    for path in bar:
        shard = read_shard(path)
        mask = is_validation(shard.line, fraction)
        texts.extend(t for t, keep in zip(shard.text, mask, strict=True) if keep)
        targets.append(shard.embedding[mask].astype(np.float32))
        lines.append(shard.line[mask])
        if max_rows is not None and len(texts) >= max_rows:
            break
    held = HeldOut(texts, np.concatenate(targets), np.concatenate(lines))
    if max_rows is not None:
        held = HeldOut(held.texts[:max_rows], held.targets[:max_rows], held.lines[:max_rows])
    if len(held.texts) < 2:
        raise PipelineError(
            f"{store.directory}: only {len(held.texts)} validation row(s) at fraction {fraction}; "
            "encode more rows or raise --validation-fraction"
        )
    return held


def knn_recall(
    model_vectors: np.ndarray,
    teacher_vectors: np.ndarray,
    ks=DEFAULT_KS,
    index_kind: str = DEFAULT_INDEX_KIND,
) -> dict[int, float]:
    """recall@k of the teacher's neighbours (excluding self) found with the model's vectors."""
    model_vectors, teacher_vectors = normalize(model_vectors), normalize(teacher_vectors)
    k_max = min(max(ks), len(teacher_vectors) - 1)
    truth = neighbours_excluding_self(
        build_index(teacher_vectors, index_kind), teacher_vectors, k_max
    )
    found = neighbours_excluding_self(build_index(model_vectors, index_kind), model_vectors, k_max)
    return {k: recall_at_k(found, truth, min(k, k_max)) for k in ks}


def mean_cosine(model_vectors: np.ndarray, teacher_vectors: np.ndarray) -> float | None:
    """Mean cosine between the two vectors of each text; None when the dimensions differ."""
    if model_vectors.shape != teacher_vectors.shape:
        return None
    return float(np.mean(np.sum(normalize(model_vectors) * normalize(teacher_vectors), axis=1)))


def run_probe(
    encoder: Encoder, held: HeldOut, ks=DEFAULT_KS, index_kind: str = DEFAULT_INDEX_KIND
) -> ProbeScore:
    vectors, seconds = encode_timed(encoder.encode, held.texts, desc="probe encode")
    return ProbeScore(
        rows=len(held.texts),
        recall=knn_recall(vectors, held.targets, ks, index_kind),
        mean_cosine=mean_cosine(vectors, held.targets),
        seconds=seconds,
    )


def probe_results(
    encoder: Encoder, store: ShardStore, score: ProbeScore, fraction: float, index_kind: str
) -> list[Result]:
    """Contract-3 entries: recall@k, mean cosine, and the encoder's speed on the rows."""
    extra = {
        **encoder.describe(),
        "rows": score.rows,
        "shards_used": len(store.paths),
        "shards_total": store.total_shards,
        "validation_fraction": fraction,
        "index": index_kind,
    }
    entry = partial(Result, model=encoder.label, data=str(store.directory), seconds=score.seconds)
    entries = [entry("knn-probe", f"recall@{k}", v, extra=extra) for k, v in score.recall.items()]
    if score.mean_cosine is not None:
        entries.append(entry("knn-probe", "mean_cosine", score.mean_cosine, extra=extra))
    speed_extra = {**encoder.describe(), "sentences": score.rows, "measured_on": "knn-probe"}
    entries.append(
        entry("encode-speed", "sentences_per_second", score.sentences_per_second, extra=speed_extra)
    )
    return entries
