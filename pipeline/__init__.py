"""The ``pipeline`` command line: parses options and calls the stages; no logic of its own.

``distill`` is the same job from Python: stage 1 and stage 2 in one call.
"""

from pipeline.distill import distill

__all__ = ["distill"]
