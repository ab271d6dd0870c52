"""Zero-shot STS: cosine of the two sentence vectors against the gold score, no training.

This is the quickest honest check of a general sentence encoder, and the one number the
student and its teacher can be compared on without any fine-tuning noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from data.errors import PipelineError
from data.progress import encode_timed
from data.sts import StsPairs, ZeroShot, zero_shot
from stage3_eval.encoders import Encoder
from stage3_eval.results import Result


@dataclass
class StsScore:
    data: str
    pairs: int
    pearson: float
    spearman: float
    sentences: int
    seconds: float

    @property
    def sentences_per_second(self) -> float:
        return self.sentences / self.seconds if self.seconds > 0 else 0.0


def evaluate_sts(encoder: Encoder, pairs: StsPairs) -> StsScore:
    """``data.sts.zero_shot`` with ``encoder``, timed (the seconds spent encoding)."""
    seconds = 0.0

    def encode(texts):
        nonlocal seconds
        vectors, seconds = encode_timed(encoder.encode, texts, desc=f"sts {pairs.name}")
        return vectors

    score = zero_shot(pairs, encode)
    if not (math.isfinite(score.pearson) and math.isfinite(score.spearman)):
        raise PipelineError(f"{pairs.path}: no correlation with {encoder.label}: {_why(score)}")
    return StsScore(
        data=str(pairs.path),
        pairs=len(pairs),
        pearson=score.pearson,
        spearman=score.spearman,
        sentences=score.sentences,
        seconds=seconds,
    )


def _why(score: ZeroShot) -> str:
    """Why a zero-shot correlation is undefined (the gold scores were checked when read)."""
    if not np.isfinite(score.cosines).all():
        return "it computed NaN or infinite vectors"
    return "every pair gets the same cosine (are the two sentences of each pair identical?)"


def sts_results(encoder: Encoder, name: str, score: StsScore) -> list[Result]:
    """Contract-3 entries: Pearson, Spearman, and the encoder's speed on these sentences."""
    extra = {**encoder.describe(), "pairs": score.pairs}
    task = f"sts:{name}"
    speed_extra = {**encoder.describe(), "sentences": score.sentences, "measured_on": task}
    entry = partial(Result, model=encoder.label, data=score.data, seconds=score.seconds)
    return [
        entry(task, "pearson", score.pearson, extra=extra),
        entry(task, "spearman", score.spearman, extra=extra),
        entry(
            "encode-speed", "sentences_per_second", score.sentences_per_second, extra=speed_extra
        ),
    ]
