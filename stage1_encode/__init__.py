"""Stage 1: run the teacher once over a corpus and cache its sentence vectors as HDF5 shards."""

from stage1_encode.teacher import Teacher, embedded_teacher_path

__all__ = ["Teacher", "embedded_teacher_path"]
