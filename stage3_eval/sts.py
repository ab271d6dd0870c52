"""Zero-shot STS: cosine of the two sentence vectors against the gold score, no training.

This is the quickest honest check of a general sentence encoder, and the one number the
student and its teacher can be compared on without any fine-tuning noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.stats import pearsonr, spearmanr

from data.sts import StsPairs
from stage3_eval.encoders import Encoder, encode_timed
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


def cosine_scores(encoder: Encoder, pairs: StsPairs) -> tuple[np.ndarray, int, float]:
    """Cosine per pair, the number of distinct sentences encoded, and the encoding seconds."""
    unique = list(dict.fromkeys(pairs.sentence1 + pairs.sentence2))
    vectors, seconds = encode_timed(encoder, unique, desc=f"sts {pairs.name}")
    vectors = vectors.astype(np.float64)  # near-equal cosines must rank the same every time
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {text: i for i, text in enumerate(unique)}
    first = vectors[[row[t] for t in pairs.sentence1]]
    second = vectors[[row[t] for t in pairs.sentence2]]
    return np.einsum("ij,ij->i", first, second), len(unique), seconds


def evaluate_sts(encoder: Encoder, pairs: StsPairs) -> StsScore:
    cosines, sentences, seconds = cosine_scores(encoder, pairs)
    return StsScore(
        data=str(pairs.path),
        pairs=len(pairs),
        pearson=float(pearsonr(cosines, pairs.scores)[0]),
        spearman=float(spearmanr(cosines, pairs.scores)[0]),
        sentences=sentences,
        seconds=seconds,
    )


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
