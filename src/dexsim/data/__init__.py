"""Data (layer 2): the paired-clip dataset (DWM layout + actions, masks, meta), its checker and generator."""

from .dataset import Clip, ClipRecord, check_dataset, clip_ids, is_complete, read_clip, write_clip
from .generate import DatagenConfig, clip_seed, generate, rank_and_world

__all__ = [
    "Clip",
    "ClipRecord",
    "DatagenConfig",
    "check_dataset",
    "clip_ids",
    "clip_seed",
    "generate",
    "is_complete",
    "rank_and_world",
    "read_clip",
    "write_clip",
]
