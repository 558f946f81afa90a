"""World models: the ``WorldModel`` protocol, ``DexWorldPipeline`` (diffusers), backbones (the compact
CPU default; DWM's CogVideoX-Fun and Wan-Fun layouts, loaded from DWM's released checkpoints by name), LoRA,
the physics oracle."""

from .models import COMPACT_CONFIGS, DiffusionWorldModel, OracleWorldModel, compact_pipeline, load
from .protocol import Generation, Rollout, WorldModel
from .rollout import iter_rollout, rollout

__all__ = [
    "COMPACT_CONFIGS",
    "DiffusionWorldModel",
    "Generation",
    "OracleWorldModel",
    "Rollout",
    "WorldModel",
    "compact_pipeline",
    "iter_rollout",
    "load",
    "rollout",
]
