"""DWM's released world models by name: where their files live, how to load them, what they expect.

``load("dwm-cogvideox-5b" | "dwm-wan2.1-14b" | "dwm-wan2.1-1.3b" | "dwm-wan2.2-5b", base=FOLDER, lora=FOLDER)``.
Without ``base`` / ``lora`` the folders are looked up under :func:`checkpoints_root`
(``$DEXSIM_CHECKPOINTS``, default ``~/.cache/dexsim/checkpoints``) as ``<name>/base`` and ``<name>/lora``.
Nothing is downloaded: a missing folder is named with what to download into it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["DWM_MODELS", "DWMModel", "checkpoints_root", "dwm_pipeline", "find_checkpoints"]


@dataclass(frozen=True)
class DWMModel:
    """One released (or configured) DWM backbone and its sampling defaults (DWM's inference scripts)."""

    name: str
    backbone: str  # "cogvideox" | "wan"
    base_repo: str
    lora_repo: str | None  # None: DWM configures it but released no weights (train your own with DWM's code)
    vae_repo: str = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"  # Wan: where a diffusers-layout VAE / umT5 comes from
    width: int = 720
    height: int = 480
    frames: int = 49
    fps: float = 8.0
    steps: int = 50
    guidance: float = 6.0
    shift: float = 5.0


_HF = "byungjun-kim/DWM-"

DWM_MODELS: dict[str, DWMModel] = {
    m.name: m
    for m in (
        DWMModel(
            "dwm-cogvideox-5b", "cogvideox", "alibaba-pai/CogVideoX-Fun-V1.1-5b-InP", _HF + "CogVideoX-Fun-5b-LoRA"
        ),
        DWMModel("dwm-wan2.1-14b", "wan", "alibaba-pai/Wan2.1-Fun-V1.1-14B-InP", _HF + "Wan2.1-Fun-14b-LoRA"),
        DWMModel("dwm-wan2.1-1.3b", "wan", "alibaba-pai/Wan2.1-Fun-V1.1-1.3B-InP", None),
        # Wan2.2's VAE compresses 16x and the patch is 2: sizes are multiples of 32 (704, not 720)
        DWMModel(
            "dwm-wan2.2-5b",
            "wan",
            "alibaba-pai/Wan2.2-Fun-5B-InP",
            None,
            vae_repo="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            width=704,
            shift=12.0,
        ),
    )
}


def checkpoints_root() -> Path:
    """Where named checkpoints live: ``$DEXSIM_CHECKPOINTS`` or ``~/.cache/dexsim/checkpoints``."""
    return Path(os.environ.get("DEXSIM_CHECKPOINTS", Path.home() / ".cache" / "dexsim" / "checkpoints"))


def find_checkpoints() -> list[dict[str, Any]]:
    """What ``dexsim doctor`` reports: per named model, its expected folders and whether they hold weights."""
    out = []
    for m in DWM_MODELS.values():
        base, lora = checkpoints_root() / m.name / "base", checkpoints_root() / m.name / "lora"
        out.append({"name": m.name, "base": str(base), "base_found": base.is_dir() and any(base.iterdir()),
                    "lora": str(lora), "lora_found": lora.is_dir() and any(lora.glob("*.safetensors")),
                    "base_repo": m.base_repo, "lora_repo": m.lora_repo})  # fmt: skip
    return out


def _folder(given: str | os.PathLike[str] | None, model: DWMModel, part: str) -> Path:
    path = Path(given) if given is not None else checkpoints_root() / model.name / part
    if not path.is_dir():
        repo = model.base_repo if part == "base" else model.lora_repo
        what = f"download {repo}" if repo else "train one with DWM's code (no weights are released for it)"
        raise FileNotFoundError(f"{model.name}: {part} folder {path} is missing: {what} into it, or pass {part}=FOLDER")
    return path


def dwm_pipeline(name: str, base: str | os.PathLike[str] | None = None, lora: str | os.PathLike[str] | None = None,
             device: str | torch.device = "cuda", dtype: torch.dtype = torch.bfloat16, num_steps: int | None = None,
             guidance_scale: float | None = None, distill_lora: str | os.PathLike[str] | None = None,
             offload: bool = False, vae_tiling: bool = False,
             context_frames: int = 1) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """A named DWM model's pipeline and the ``DiffusionWorldModel`` settings it runs with (``load(name)`` joins them).

    ``distill_lora``: a Wan step-distillation LoRA merged on top (then 4 steps, guidance 1 unless given);
    ``offload``: diffusers' model CPU offload (smaller GPUs); ``vae_tiling``: VAE slicing and tiling.
    """
    if name not in DWM_MODELS:
        raise ValueError(f"unknown DWM model {name!r}; choose one of {sorted(DWM_MODELS)}")
    m = DWM_MODELS[name]
    base_dir = _folder(base, m, "base")
    lora_dir = _folder(lora, m, "lora")  # a base without DWM's weights would ignore the hands: always required
    if m.backbone == "cogvideox":
        if distill_lora is not None:
            raise ValueError("`distill_lora` is for the Wan backbones (DWM's Wan inference accepts one)")
        from .cogvideox_fun import load_cogvideox_fun

        pipe = load_cogvideox_fun(base_dir, lora_dir, dtype=dtype)
    else:
        from .wan_fun import load_wan_fun

        pipe = load_wan_fun(
            base_dir, lora_dir, dtype=dtype, distill_lora=distill_lora, shift=m.shift, vae_repo=m.vae_repo
        )
    steps = num_steps or (4 if distill_lora is not None else m.steps)
    guidance = guidance_scale if guidance_scale is not None else (1.0 if distill_lora is not None else m.guidance)
    if vae_tiling:
        pipe.vae.enable_slicing()
        pipe.vae.enable_tiling()
    if offload:
        pipe.enable_model_cpu_offload(device=device)
        device = None  # the offload hooks place each module
    return pipe, {
        "width": m.width,
        "height": m.height,
        "window": m.frames,
        "context_frames": context_frames,
        "fps": m.fps,
        "num_steps": steps,
        "device": device,
        "name": name,
        "guidance_scale": guidance,
    }
