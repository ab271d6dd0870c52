"""Documents to clean sentences: paragraphs, spaCy's rule-based sentence splitter, normalised
whitespace, the length and content filters, and the folded form that exact dedup compares.

Splitting is spaCy's ``sentencizer`` on a blank English pipeline: rules over punctuation and
spaCy's tokenizer (which knows "Dr.", "e.g.", "U.S." and decimals), no model download, about
25k sentences/s on one core. A blank line always ends a paragraph, and a paragraph always ends a
sentence; a single line break is a space (hard-wrapped text) or, with ``line_breaks=
"paragraph"``, a paragraph end too (one paragraph per line, as WikiExtractor writes them).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from data.errors import PipelineError

LINE_BREAKS = ("space", "paragraph")
SPACY_INSTALL = "pip install 'sra-distill[corpus]' (or 'spacy>=3.7.5,<3.9')"
# Longest text handed to spaCy at once: its tokenizer refuses over ``nlp.max_length`` (1M).
MAX_PARAGRAPH_CHARS = 100_000
_PIPE_BATCH = 512

_BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")
_SPACES = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[\W_]+")
_URL_OR_EMAIL = re.compile(
    r"\b(?:https?|ftp)://|\bwww\.\w|\b[\w.+-]+@[\w-]+\.[\w.-]*[a-z]{2,}", re.IGNORECASE
)
# Reasons a sentence is dropped, in the order they are tested; each sentence counts under one.
DROP_REASONS = (
    "url_or_email",
    "too_few_words",
    "too_many_words",
    "too_short",
    "too_long",
    "too_few_letters",
)


@dataclass(frozen=True)
class SentenceRules:
    """Which sentences are kept. The defaults are those of ``../shared/data/corpus-large``:
    4–80 words, 20–400 characters, at least 60 % letters, no URLs or e-mail addresses."""

    min_words: int = 4
    max_words: int = 80
    min_chars: int = 20
    max_chars: int = 400
    min_letters: float = 0.6  # share of letters among the characters other than spaces

    def check(self) -> None:
        """Refuse bounds that keep nothing, naming the options."""
        if self.min_words > self.max_words:
            raise PipelineError(
                f"--min-words {self.min_words} exceeds --max-words {self.max_words}"
            )
        if self.min_chars > self.max_chars:
            raise PipelineError(
                f"--min-chars {self.min_chars} exceeds --max-chars {self.max_chars}"
            )

    def drop_reason(self, sentence: str) -> str | None:
        """The first rule of ``DROP_REASONS`` that ``sentence`` (normalised) breaks, or None."""
        if _URL_OR_EMAIL.search(sentence):
            return "url_or_email"
        words = sentence.count(" ") + 1
        if words < self.min_words:
            return "too_few_words"
        if words > self.max_words:
            return "too_many_words"
        if len(sentence) < self.min_chars:
            return "too_short"
        if len(sentence) > self.max_chars:
            return "too_long"
        letters = sum(char.isalpha() for char in sentence)
        if letters < self.min_letters * (len(sentence) - words + 1):
            return "too_few_letters"
        return None


def normalize(text: str) -> str:
    """NFC, every run of whitespace (tabs, line breaks, no-break spaces) one space, stripped:
    what is written, and what the filters count."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


def fold(sentence: str) -> str:
    """The form two sentences must share to be duplicates: case and punctuation folded."""
    return " ".join(_NOT_WORD.sub(" ", sentence.casefold()).split())


def paragraphs(document: str, line_breaks: str = "space") -> list[str]:
    """The document's paragraphs, normalised, the long ones cut at a space into pieces spaCy
    takes."""
    blocks = _BLANK_LINE.split(document)
    if line_breaks == "paragraph":
        blocks = [line for block in blocks for line in block.splitlines()]
    found = []
    for block in blocks:
        text = normalize(block)
        while len(text) > MAX_PARAGRAPH_CHARS:
            cut = text.rfind(" ", 0, MAX_PARAGRAPH_CHARS)
            cut = cut if cut > 0 else MAX_PARAGRAPH_CHARS
            found.append(text[:cut])
            text = text[cut:].lstrip()
        if text:
            found.append(text)
    return found


class SentenceSplitter:
    """spaCy's rule-based sentencizer on a blank English pipeline, run in batches."""

    def __init__(self) -> None:
        try:
            import spacy
        except ImportError:
            raise PipelineError(
                f"pipeline corpus splits sentences with spaCy, which is not installed: "
                f"{SPACY_INSTALL}"
            ) from None
        self.nlp = spacy.blank("en")
        self.nlp.add_pipe("sentencizer")

    def split(self, texts: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
        """``(sentence, context)`` for every sentence of every ``(paragraph, context)``, in
        order; sentences are normalised and never empty."""
        for doc, context in self.nlp.pipe(texts, as_tuples=True, batch_size=_PIPE_BATCH):
            for span in doc.sents:
                sentence = normalize(span.text)
                if sentence:
                    yield sentence, context
