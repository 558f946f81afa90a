"""Where dexsim looks for weights and caches (never downloads at run time)."""

from __future__ import annotations

import os
from pathlib import Path


def dexsim_home() -> Path:
    """``$DEXSIM_HOME`` or ``~/.cache/dexsim``: user-supplied weights (MANO, CogVideoX-Fun, DWM LoRA)."""
    return Path(os.environ.get("DEXSIM_HOME", Path.home() / ".cache" / "dexsim")).expanduser()


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache that diffusers/transformers read offline."""
    if "HF_HUB_CACHE" in os.environ:
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser()
    return hf_home / "hub"


def torch_hub_dir() -> Path:
    """The torch hub checkpoint folder (LPIPS/torchvision backbones are looked up there)."""
    home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")).expanduser()
    return home / "hub" / "checkpoints"


def weight_search_paths() -> dict[str, str]:
    """Every folder dexsim reads weights from, by role."""
    return {
        "dexsim_home": str(dexsim_home()),
        "huggingface_hub_cache": str(hf_hub_cache()),
        "torch_hub_checkpoints": str(torch_hub_dir()),
        "dreamsim": os.environ.get("DEXSIM_DREAMSIM_DIR", str(dexsim_home() / "dreamsim")),
        "packaged_default": str(Path(__file__).resolve().parent / "assets"),
    }
