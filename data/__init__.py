"""The shared data layer: corpus readers, the shard store, batching, GLUE/STS task readers.

Every stage imports from here; nothing here imports a stage.
"""

from data.errors import PipelineError

__all__ = ["PipelineError"]
