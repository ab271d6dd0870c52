"""Tang et al. augmentation: masking, n-gram sampling, de-duplication, unlabelled rows."""

from __future__ import annotations

import numpy as np

from data.glue import TASKS, GlueSplit
from stage3_eval.glue.augment import AugmentConfig, augment, concatenate, perturb
from stage3_eval.glue.train import NO_LABEL

TEXT = "the quick brown fox jumps over the lazy dog today"


def _split(task: str, pair: bool, rows: int = 5) -> GlueSplit:
    texts = [f"{TEXT} {i}" for i in range(rows)]
    labels = np.arange(rows, dtype=np.float32) if task == "stsb" else np.arange(rows) % 2
    return GlueSplit(
        TASKS[task],
        "train",
        "memory",
        texts,
        list(texts) if pair else None,
        labels,
        [str(i) for i in range(rows)],
    )


def test_masking_replaces_words_and_keeps_length():
    rng = np.random.default_rng(0)
    assert perturb(TEXT, AugmentConfig(p_mask=1.0, p_ngram=0.0), rng) == " ".join(["[MASK]"] * 10)
    assert perturb(TEXT, AugmentConfig(p_mask=0.0, p_ngram=0.0), rng) == TEXT
    half = [perturb(TEXT, AugmentConfig(p_mask=0.5, p_ngram=0.0), rng).split() for _ in range(200)]
    share = np.mean([w == "[MASK]" for words in half for w in words])
    assert 0.4 < share < 0.6 and all(len(words) == 10 for words in half)


def test_ngram_sampling_keeps_a_contiguous_piece():
    rng = np.random.default_rng(1)
    words = TEXT.split()
    for _ in range(100):
        piece = perturb(TEXT, AugmentConfig(p_mask=0.0, p_ngram=1.0, max_ngram=5), rng).split()
        assert 1 <= len(piece) <= 5
        starts = [i for i in range(len(words)) if words[i : i + len(piece)] == piece]
        assert starts, piece


def test_augment_makes_new_unlabelled_rows():
    split = _split("sst2", pair=False)
    extra = augment(split, AugmentConfig(copies=6, p_mask=0.3, p_ngram=0.3), seed=0)
    assert 0 < len(extra) <= 30
    assert (extra.labels == NO_LABEL).all() and extra.text_b is None
    assert not set(extra.text_a) & set(split.text_a)
    assert len(set(extra.text_a)) == len(extra)
    assert len(augment(split, AugmentConfig(copies=0))) == 0
    same = augment(split, AugmentConfig(copies=6, p_mask=0.3, p_ngram=0.3), seed=0)
    assert same.text_a == extra.text_a  # seeded


def test_pairs_and_regression_and_concatenate():
    split = _split("stsb", pair=True)
    extra = augment(split, AugmentConfig(copies=3, p_mask=0.5), seed=0)
    assert len(extra.text_b) == len(extra.text_a) > 0
    assert np.isnan(extra.labels).all()
    both = concatenate(split, extra)
    assert len(both) == len(split) + len(extra)
    assert both.labels[: len(split)].tolist() == split.labels.tolist()
    assert both.text_b[-1] == extra.text_b[-1]
