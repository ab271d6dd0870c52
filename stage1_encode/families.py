"""Which models can be a teacher: bidirectional encoders with a real tokenizer.

Stage 1 runs any ``AutoModel`` that maps padded token ids and an attention mask to a
``last_hidden_state`` (BERT, RoBERTa, DistilBERT, MPNet, ELECTRA, DeBERTa-v2, ModernBERT are
tested). What would load and then silently give meaningless vectors is refused here instead,
each with one line naming the model family:

* a folder that is not a model (no ``config.json``);
* a decoder-only model (GPT-2, Llama, ...): its causal attention makes a token's state depend
  only on the tokens before it, so it is no sentence encoder; encoder-decoder models (T5, BART)
  need decoder inputs the pipeline never has;
* a model folder without tokenizer files: transformers then builds an empty tokenizer that
  turns every word into ``[UNK]``;
* ``--pooling pooler`` on a family without a pooler layer, or on a checkpoint without its
  trained pooler weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data.errors import PipelineError


def check_folder(name_or_path: str) -> None:
    """A local teacher folder must hold a model configuration."""
    folder = Path(name_or_path)
    if folder.is_dir() and not (folder / "config.json").is_file():
        raise PipelineError(f"teacher {name_or_path}: not a model folder (no config.json)")


def check_encoder(config: Any, name_or_path: str) -> None:
    """Refuse decoder-only and encoder-decoder models before their weights are loaded."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    family = getattr(config, "model_type", "") or type(config).__name__
    if getattr(config, "is_encoder_decoder", False):
        raise PipelineError(
            f"teacher {name_or_path}: {family} is an encoder-decoder model; "
            "stage 1 needs an encoder (BERT, RoBERTa, MPNet, ...)"
        )
    decoder_only = (
        family in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and family not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )
    if decoder_only or getattr(config, "is_decoder", False):
        raise PipelineError(
            f"teacher {name_or_path}: {family} is a decoder-only (causal) model, not a "
            "sentence encoder; use an encoder such as BERT, RoBERTa or MPNet"
        )


def check_tokenizer(tokenizer: Any, model: Any, name_or_path: str) -> None:
    """The tokenizer must have a vocabulary beyond its special tokens, within the embedding."""
    family = model.config.model_type
    size = len(tokenizer)
    if size <= len(set(tokenizer.all_special_ids)):
        raise PipelineError(
            f"teacher {name_or_path}: the {family} model has no tokenizer files "
            "(tokenizer.json, vocab.txt, ...); its tokenizer would map every word to unknown"
        )
    rows = int(model.get_input_embeddings().weight.shape[0])
    if size > rows:
        raise PipelineError(
            f"teacher {name_or_path}: the tokenizer has {size:,} tokens but the {family} "
            f"model embeds only {rows:,}; the tokenizer belongs to another model"
        )


def check_pooling(model: Any, pooling: str, name_or_path: str, loading: dict[str, Any]) -> None:
    """``pooler`` needs the family's pooler layer (BERT, RoBERTa, MPNet) with trained weights.

    A checkpoint saved without them (from a masked-LM head model, say) still loads: transformers
    initialises the missing pooler at random, and its vectors would be noise.
    """
    if pooling != "pooler":
        return
    family = model.config.model_type
    if getattr(model, "pooler", None) is None:
        raise PipelineError(
            f"teacher {name_or_path}: {family} has no pooler layer; use --pooling cls or mean"
        )
    if any("pooler" in key for key in loading.get("missing_keys", ())):
        raise PipelineError(
            f"teacher {name_or_path}: the {family} checkpoint has no pooler weights (they would "
            "be random); use --pooling cls or mean"
        )
