"""Training and LoRA fine-tuning on Hugging Face Accelerate: presets, exact resume, validation samples."""

from .presets import PRESETS, TrainConfig, preset
from .trainer import build_pipeline, latest_checkpoint, train

__all__ = ["PRESETS", "TrainConfig", "build_pipeline", "latest_checkpoint", "preset", "train"]
