"""Data (layer 2): the paired-clip dataset (DWM layout + actions, masks, meta, manifest), its checker and generator."""

from .dataset import (
    Clip,
    ClipCheck,
    ClipRecord,
    Manifest,
    check_clip,
    check_dataset,
    clean_temporaries,
    clip_ids,
    is_complete,
    read_clip,
    read_manifest,
    write_clip,
)
from .generate import DatagenConfig, claim_dataset, clip_seed, generate, rank_and_world

__all__ = [
    "Clip",
    "ClipCheck",
    "ClipRecord",
    "DatagenConfig",
    "Manifest",
    "check_clip",
    "check_dataset",
    "claim_dataset",
    "clean_temporaries",
    "clip_ids",
    "clip_seed",
    "generate",
    "is_complete",
    "rank_and_world",
    "read_clip",
    "read_manifest",
    "write_clip",
]
