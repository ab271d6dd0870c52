"""The student's tokenizer: the teacher's ``tokenizer.json`` run by the ``tokenizers`` library.

Importing transformers and building its tokenizer class costs about 1.5 s, most of a 10-line
``pipeline embed``; the Rust tokenizer file alone loads in milliseconds and gives the same ids
for the word-piece families whose transformers class adds nothing to the file. Any other
folder (a slow-only tokenizer, a class that rewrites the file's pipeline on load, settings the
file does not hold) is loaded by transformers, as before. Anything beyond ids and special-token
ids (``convert_tokens_to_ids``, what sentence-transformers asks of a tokenizer) is answered by the
transformers tokenizer, loaded on first use.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from data import files
from data.errors import PipelineError

FAST_TOKENIZER = "tokenizer.json"  # the fast tokenizer's one file, as transformers names it
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"  # older folders name their special tokens here
# transformers classes that load tokenizer.json unchanged, given the normaliser checks below
WORD_PIECE_CLASSES = frozenset(
    {
        "PreTrainedTokenizerFast",
        "BertTokenizer",
        "BertTokenizerFast",
        "DistilBertTokenizer",
        "DistilBertTokenizerFast",
        "MPNetTokenizer",
        "MPNetTokenizerFast",
    }
)
# tokenizer_config.json keys the BERT-family classes push into a BertNormalizer on load,
# with the defaults they apply when the key is absent
BERT_NORMALIZER_KEYS = {
    "do_lower_case": ("lowercase", True),
    "strip_accents": ("strip_accents", None),
    "tokenize_chinese_chars": ("handle_chinese_chars", True),
}
SPECIAL_TOKENS = ("pad_token", "cls_token", "sep_token", "unk_token", "mask_token")


class WordPieceTokenizer:
    """Token ids straight from ``tokenizers``, with transformers' call for the student's use."""

    def __init__(self, folder: Path, backend: Any, config: dict[str, Any]):
        self.folder = folder
        self.backend = backend
        self.special_tokens = {
            name: _token_text(config[name]) for name in SPECIAL_TOKENS if config.get(name)
        }
        # transformers writes 1e30 for "no limit": capped to what the Rust side takes
        self.model_max_length = min(int(config.get("model_max_length") or 512), 1 << 30)
        self.backend.no_padding()

    def __call__(
        self, texts: Sequence[str], truncation: bool = True, max_length: int | None = None, **_: Any
    ) -> dict[str, list[list[int]]]:
        """``{"input_ids": ...}`` with special tokens, truncated on the right to ``max_length``
        (transformers' ``tokenizer(texts, truncation=True, max_length=...)``; without
        ``max_length``, the config's ``model_max_length``, as transformers does)."""
        if truncation:
            limit = max_length or self.model_max_length
            self.backend.enable_truncation(limit, strategy="longest_first", direction="right")
        else:
            self.backend.no_truncation()
        encodings = self.backend.encode_batch(list(texts), add_special_tokens=True)
        return {"input_ids": [encoding.ids for encoding in encodings]}

    def __len__(self) -> int:
        return int(self.backend.get_vocab_size(with_added_tokens=True))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy and pickle probe these: never load transformers for them
            raise AttributeError(name)
        if name.endswith("_token_id") and name.removesuffix("_id") in SPECIAL_TOKENS:
            token = self.special_tokens.get(name.removesuffix("_id"))
            return None if token is None else self.backend.token_to_id(token)
        return getattr(self.transformers, name)

    @cached_property
    def transformers(self) -> Any:
        """The same folder through transformers, for everything beyond ids."""
        return load_transformers_tokenizer(self.folder)

    def save_pretrained(self, folder: str | Path) -> None:
        """Copy the tokenizer's files: they are what transformers loads, unchanged."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        for path in self.folder.iterdir():
            if path.is_file():
                shutil.copyfile(path, Path(folder) / path.name)


def load_tokenizer(directory: str | Path) -> Any:
    """The teacher's tokenizer from a folder of tokenizer files (never the teacher model).

    A damaged file is one line naming it: ``tokenizer.json`` is parsed on its own first, since
    transformers reports its faults as bare ``KeyError``, ``TypeError`` or Rust ``Exception``.
    """
    from tokenizers import Tokenizer

    directory = Path(directory)
    if not directory.is_dir():
        raise PipelineError(f"{directory}: no tokenizer folder")
    fast = directory / FAST_TOKENIZER
    if not fast.is_file():
        return load_transformers_tokenizer(directory)
    with files.os_errors(fast, "cannot read"):
        text = fast.read_text(encoding="utf-8", errors="replace")
    try:
        backend = Tokenizer.from_str(text)
    except Exception as exc:  # tokenizers raises its Rust errors as plain Exception
        raise PipelineError(f"{fast}: damaged tokenizer file ({first_line(exc)})") from None
    config = _read_config(directory / TOKENIZER_CONFIG)
    if config is not None:
        config = {**(_read_config(directory / SPECIAL_TOKENS_MAP) or {}), **config}
    if config is None or not loads_unchanged(json.loads(text), config):
        return load_transformers_tokenizer(directory)
    return WordPieceTokenizer(directory, backend, config)


def loads_unchanged(tokenizer: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether transformers would run ``tokenizer.json`` as it is: a word-piece class, no
    normaliser setting in the config that differs from the file's, every added token of the
    config already in the file at its id, and right-hand truncation."""
    if config.get("tokenizer_class") not in WORD_PIECE_CLASSES:
        return False
    if config.get("truncation_side", "right") != "right":
        return False
    normalizer = tokenizer.get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer" and config.get("tokenizer_class") != (
        "PreTrainedTokenizerFast"
    ):
        for key, (field, default) in BERT_NORMALIZER_KEYS.items():
            if normalizer.get(field) != config.get(key, default):
                return False
    known = {token["content"]: token["id"] for token in tokenizer.get("added_tokens") or []}
    for token_id, token in (config.get("added_tokens_decoder") or {}).items():
        if known.get(_token_text(token)) != int(token_id):
            return False
    return True


def load_transformers_tokenizer(directory: Path) -> Any:
    """transformers' tokenizer for the folder, its faults as one line."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(directory))
    except Exception as exc:  # any type, from any tokenizer class transformers picks
        raise PipelineError(f"{directory}: cannot load tokenizer ({first_line(exc)})") from None


def first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _read_config(path: Path) -> dict[str, Any] | None:
    """A tokenizer JSON file, or None when absent or unreadable (transformers then decides)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _token_text(token: Any) -> str:
    """A special token as the config writes it: a string or ``{"content": ...}``."""
    return token["content"] if isinstance(token, dict) else str(token)
