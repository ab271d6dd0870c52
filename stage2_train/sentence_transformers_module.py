"""The student as a sentence-transformers input module, so ``SentenceTransformer(STUDENT_DIR)``
loads a student folder through the library's documented custom-module mechanism.

``save_pretrained`` writes ``modules.json`` naming ``StudentEncoder`` (``hub.ST_MODULE_CLASS``)
at the folder's root, and the module's own config (``hub.ST_MODULE_CONFIG``:
``max_seq_length``). The module reads the same files as ``Student.from_pretrained``, so one
folder serves both. sentence-transformers 6 asks for ``trust_remote_code=True`` before it
imports any module class outside its own package, even an installed one; the folder holds no
code, so the flag imports this installed module and nothing from the folder.
``SentenceTransformer(modules=[StudentEncoder.from_student(path)])`` needs no flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from data.batching import pad_batch
from stage2_train.hub import ST_MODULE_CONFIG
from stage2_train.model import Student

try:
    from sentence_transformers.base.modules import InputModule
except ImportError as exc:  # the class cannot exist without its base
    raise ImportError(
        "sentence-transformers >= 6 is missing: pip install 'sra-distill[sentence-transformers]'"
    ) from exc


class StudentEncoder(InputModule):
    """Tokenizes with the student's (teacher's) tokenizer and returns the student's vectors as
    ``sentence_embedding``; pooling and normalisation are inside the student."""

    config_file_name = ST_MODULE_CONFIG
    config_keys: ClassVar[list[str]] = ["max_seq_length"]
    save_in_root = True

    def __init__(self, student: Student, max_seq_length: int | None = None):
        super().__init__()
        self.student = student.eval()
        self.tokenizer = student.tokenizer
        if max_seq_length is not None:
            self.max_seq_length = max_seq_length

    @classmethod
    def from_student(cls, name_or_path: str | Path, revision: str | None = None) -> StudentEncoder:
        """The module for a student folder or Hub id (what ``load`` does for a saved model)."""
        return cls(Student.from_pretrained(name_or_path, revision=revision))

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> StudentEncoder:
        root = Path(model_name_or_path) / subfolder if subfolder else model_name_or_path
        config = cls.load_config(
            model_name_or_path,
            subfolder=subfolder,
            token=token,
            cache_folder=cache_folder,
            revision=revision,
            local_files_only=local_files_only,
        )
        student = Student.from_pretrained(root, revision=revision)
        return cls(student, max_seq_length=config.get("max_seq_length"))

    @property
    def max_seq_length(self) -> int:
        return self.student.config.max_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self.student.config.max_length = int(value)

    def get_embedding_dimension(self) -> int:
        return self.student.dim

    def get_sentence_embedding_dimension(self) -> int:  # the name before sentence-transformers 6
        return self.student.dim

    def preprocess(
        self, inputs: Sequence[str], prompt: str | None = None, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        texts = [prompt + text for text in inputs] if prompt else list(inputs)
        input_ids, attention_mask = pad_batch(self.student.tokenize(texts), self.student.pad_id)
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        features["sentence_embedding"] = self.student(
            features["input_ids"], features["attention_mask"]
        )
        return features

    def save(self, output_path: str, *args: Any, **kwargs: Any) -> None:
        self.student.save_pretrained(output_path)
        self.save_config(output_path)
