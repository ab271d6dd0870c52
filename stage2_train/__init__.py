"""Stage 2: the BiLSTM student and its training against cached teacher vectors.

Never imports stage 1 and never loads the teacher: everything comes from the shard directory.
"""

from stage2_train.config import StudentConfig
from stage2_train.model import Student
from stage2_train.onnx_encoder import OnnxEncoder, is_onnx_export

__all__ = ["OnnxEncoder", "Student", "StudentConfig", "is_onnx_export"]
