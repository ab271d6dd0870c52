"""Tang et al. (2019) data augmentation, which gives task-specific distillation more to learn from.

For each training example, ``copies`` rounds of Tang's three rules (section 3.2): for every word
draw X ~ U(0, 1); X < ``p_mask`` replaces it by the mask token, X < ``p_mask + p_pos`` by a
training word with the same Penn POS tag (``pos.PosReplacement``: drawn from the train split's
unigram distribution of that tag), otherwise it stays; then, with probability ``p_ngram``, keep
only a random n-gram (n uniform in 1..``max_ngram``). Synthetic examples equal to the original or
to one another are dropped. Pair examples are perturbed in both sentences. The synthetic rows
carry no label: the fine-tuned teacher's outputs are their only target. ``p_pos`` 0 needs no
tagger and draws exactly the random numbers masking alone did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.glue import GlueSplit
from stage3_eval.glue.pos import PosReplacement

NO_LABEL = -1  # the class id of a row without a label (regression rows hold NaN)


@dataclass
class AugmentConfig:
    copies: int = 4  # Tang et al. used 20 rounds per example; 4 keeps a CPU run affordable
    p_mask: float = 0.1
    p_pos: float = 0.1  # Tang et al.'s value; 0 turns the tagger off
    p_ngram: float = 0.25
    max_ngram: int = 5
    mask_token: str = "[MASK]"


def perturb(
    text: str,
    config: AugmentConfig,
    rng: np.random.Generator,
    pos: PosReplacement | None = None,
) -> str:
    """One masked, POS-replaced and possibly n-gram-sampled variant of ``text`` (whitespace
    words); ``pos`` must hold ``text``'s tags when ``config.p_pos`` > 0."""
    if config.p_pos > 0 and pos is None:
        raise ValueError("p_pos > 0 needs the training texts' tags (a PosReplacement)")
    words = text.split()
    if not words:
        return text
    words = [_word(text, i, w, config, rng, pos) for i, w in enumerate(words)]
    if rng.random() < config.p_ngram:
        n = min(int(rng.integers(1, config.max_ngram + 1)), len(words))
        start = int(rng.integers(0, len(words) - n + 1))
        words = words[start : start + n]
    return " ".join(words)


def _word(
    text: str,
    index: int,
    word: str,
    config: AugmentConfig,
    rng: np.random.Generator,
    pos: PosReplacement | None,
) -> str:
    """Word ``index`` of ``text`` after Tang's first two rules: masked, replaced or kept."""
    x = rng.random()
    if x < config.p_mask:
        return config.mask_token
    if pos is not None and x < config.p_mask + config.p_pos:
        return pos.replace(text, index, rng)
    return word


def tagged(split: GlueSplit, config: AugmentConfig) -> PosReplacement | None:
    """The POS table of ``split``'s texts (both sentences of a pair), if the config needs one."""
    if config.p_pos == 0 or config.copies == 0:
        return None
    texts = split.text_a + (split.text_b or [])
    return PosReplacement.from_texts(texts, desc=f"{split.task.name} POS tags")


def augment(split: GlueSplit, config: AugmentConfig, seed: int = 0) -> GlueSplit:
    """Unlabelled synthetic examples made from ``split`` (empty if ``copies`` is 0)."""
    pos = tagged(split, config)
    rng = np.random.default_rng(seed)
    seen: set[tuple[str, str | None]] = set()
    text_a: list[str] = []
    text_b: list[str] = []
    for row in range(len(split)):
        original = (split.text_a[row], None if split.text_b is None else split.text_b[row])
        seen.add(original)
        for _ in range(config.copies):
            a = perturb(original[0], config, rng, pos)
            b = None if original[1] is None else perturb(original[1], config, rng, pos)
            if (a, b) in seen:
                continue
            seen.add((a, b))
            text_a.append(a)
            if b is not None:
                text_b.append(b)
    regression = split.task.is_regression
    labels = np.full(
        len(text_a),
        np.nan if regression else NO_LABEL,
        dtype=np.float32 if regression else np.int64,
    )
    return GlueSplit(
        task=split.task,
        name=f"{split.name}-augmented",
        source=f"augmented from {split.source}",
        text_a=text_a,
        text_b=None if split.text_b is None else text_b,
        labels=labels,
        index=[f"aug-{i}" for i in range(len(text_a))],
    )


def concatenate(first: GlueSplit, second: GlueSplit) -> GlueSplit:
    """Rows of ``first`` followed by rows of ``second`` (same task, both labelled or not)."""
    labels = None
    if first.labels is not None and second.labels is not None:
        labels = np.concatenate([first.labels, second.labels])
    text_b = None
    if first.text_b is not None and second.text_b is not None:
        text_b = first.text_b + second.text_b
    return GlueSplit(
        task=first.task,
        name=first.name,
        source=first.source,
        text_a=first.text_a + second.text_a,
        text_b=text_b,
        labels=labels,
        index=first.index + second.index,
    )
