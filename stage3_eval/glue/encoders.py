"""The encoders a GLUE comparison fine-tunes, each built fresh for every (task, seed).

``--model`` is one of:

* a student directory (Contract 2): the distilled student;
* ``scratch``: the same student architecture with the teacher's word-piece embeddings and
  random everything else, never distilled — what stage 2 buys is the gap to it;
* ``teacher`` (the embedded MiniLM) or any Hugging Face encoder name/folder: the teacher,
  pooled and normalised exactly as in stage 1 (the vectors the student learned) — the ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from data import files
from data.batching import MAX_LENGTH
from data.errors import PipelineError
from data.shards import INPUT_EMBEDDINGS, TOKENIZER_DIR
from stage3_eval.encoders import (
    SCRATCH,
    STUDENT,
    TEACHER,
    is_onnx_export,
    is_student_dir,
    model_kind,
)

# Encoder learning rates: BERT's for a transformer, a larger one for the BiLSTM (and scratch).
TRANSFORMER_LR = 2e-5
BILSTM_LR = 5e-4


@dataclass
class EncoderFactory:
    """Builds the encoder named by ``spec``; ``build()`` returns a fresh, independent copy.

    ``teacher`` names the teacher for ``--model teacher`` and the source of the scratch
    baseline's word pieces (a teacher name/folder, or a stage-1 shard directory, which holds
    ``tokenizer/`` and the teacher's embedding matrix). ``student_config`` is a student
    directory whose architecture the scratch baseline copies (default: stage 2's defaults).
    """

    spec: str
    teacher: str | None = None
    student_config: Path | None = None
    max_length: int = MAX_LENGTH
    workdir: Path = field(default_factory=lambda: Path(".glue-cache"))
    kind: str = field(init=False)  # student, scratch or teacher: what ``spec`` names
    _word_pieces: tuple[Path, torch.Tensor] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.kind = model_kind(self.spec, scratch=True)
        if is_onnx_export(self.spec):
            raise PipelineError(
                f"{self.spec}: an ONNX export is for inference and cannot be fine-tuned; "
                "pass the student folder it was exported from"
            )

    @property
    def label(self) -> str:
        """How results are filed: ``scratch``, ``teacher``, or the model folder's name."""
        if self.spec in (TEACHER, SCRATCH):
            return self.spec
        return Path(self.spec).name or self.spec

    @property
    def default_lr(self) -> float:
        """Encoder learning rate: BERT's for a transformer, a larger one for the BiLSTM."""
        return TRANSFORMER_LR if self.kind == TEACHER else BILSTM_LR

    def build(self) -> nn.Module:
        if self.kind == STUDENT:
            from stage2_train import Student

            return Student.from_pretrained(self.spec)
        if self.kind == SCRATCH:
            return self._scratch()
        from stage1_encode.teacher import Teacher

        name = self.teacher if self.spec == TEACHER else self.spec
        return Teacher(name, max_length=self.max_length)

    def _scratch(self) -> nn.Module:
        from stage2_train import Student, StudentConfig

        config = StudentConfig(max_length=self.max_length)
        if self.student_config is not None:
            if not is_student_dir(self.student_config):
                raise PipelineError(f"--student-config {self.student_config}: not a student dir")
            config = Student.from_pretrained(self.student_config).config
        tokenizer_dir, embeddings = self.word_pieces()
        return Student.untrained(config, tokenizer_dir, embeddings.clone())

    def word_pieces(self) -> tuple[Path, torch.Tensor]:
        """(tokenizer folder, teacher word-piece matrix), loaded once."""
        if self._word_pieces is None:
            source = Path(self.teacher) if self.teacher else None
            if source is not None and (source / INPUT_EMBEDDINGS).is_file():
                from safetensors.torch import load_file

                matrix = load_file(str(source / INPUT_EMBEDDINGS))["weight"]
                self._word_pieces = (source / TOKENIZER_DIR, matrix)
            else:
                from stage1_encode.teacher import Teacher

                teacher = Teacher(self.teacher)
                folder = self.workdir / "scratch-tokenizer"
                with files.atomic_path(folder) as tmp:
                    files.save_pretrained(tmp, teacher.tokenizer)
                self._word_pieces = (folder, teacher.input_embeddings())
        return self._word_pieces
