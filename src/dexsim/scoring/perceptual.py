"""Perceptual goal scorers: LPIPS (the ``lpips`` package), DreamSim (the ``dreamsim`` package) and
text-video X-CLIP (transformers). Weights are read locally, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["DreamSimScorer", "LPIPSScorer", "XCLIPScorer", "load_dreamsim", "load_lpips", "load_xclip"]

#: torchvision backbone checkpoints LPIPS needs (its linear heads ship inside the lpips package)
_BACKBONES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth", "squeeze": "squeezenet1_1-b8a52dc0.pth"}


def load_lpips(net: str = "alex", weights_dir: str | os.PathLike[str] | None = None) -> Any:
    """The real LPIPS model: torchvision's ``net`` backbone from ``weights_dir`` (default: torch's hub
    cache, ``$TORCH_HOME/hub``) and the lpips package's linear heads. A missing backbone raises an error
    naming the file and where to put it."""
    from .._deps import require

    lpips = require("lpips", "metrics")
    if net not in _BACKBONES:
        raise ValueError(f"`net` must be one of {sorted(_BACKBONES)}, got {net!r}")
    hub = Path(weights_dir) if weights_dir else Path(torch.hub.get_dir())
    ckpt = hub / "checkpoints" / _BACKBONES[net]
    if not ckpt.is_file():
        name = _BACKBONES[net]
        raise FileNotFoundError(f"LPIPS ({net}) needs torchvision's backbone weights: put {name} in "
                                f"{ckpt.parent} (from https://download.pytorch.org/models/{name})")  # fmt: skip
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    try:
        return lpips.LPIPS(net=net, verbose=False).eval()
    finally:
        torch.hub.set_dir(old)


class LPIPSScorer:
    """``-LPIPS`` of the last frame to the goal image (higher is better); hand pixels are painted with
    the goal's pixels first (goal images show no hands). ``region=True``: only the square around the
    goal region (:func:`region_box`), resized to at least 64 x 64. ``model``: an ``lpips.LPIPS``
    instance (default: :func:`load_lpips`)."""

    def __init__(self, net: str = "alex", weights_dir: str | os.PathLike[str] | None = None, model: Any = None,
                 device: str = "cpu", region: bool = False) -> None:  # fmt: skip
        self.model = (model if model is not None else load_lpips(net, weights_dir)).to(device)
        self.device, self.region = device, region
        self.name = "lpips_region" if region else "lpips"

    @torch.no_grad()
    def score(self, frames: np.ndarray, goal: Any, hand_masks: np.ndarray | None = None) -> np.ndarray:
        last, target = goal_pairs(frames, goal, hand_masks, self.region)

        def to(x: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 127.5 - 1
            if min(t.shape[-2:]) < 64:
                t = torch.nn.functional.interpolate(t, size=(64, 64), mode="bilinear", align_corners=False)
            return t.to(self.device)

        d = self.model(to(last), to(target))
        return -d.reshape(len(last)).cpu().double().numpy()


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_xclip(model_dir: str | os.PathLike[str]) -> tuple[Any, Any]:
    """X-CLIP (``transformers.XCLIPModel``) and its tokenizer from a local folder, e.g. a download of
    ``microsoft/xclip-base-patch32``; a missing folder raises an error saying so."""
    from transformers import AutoTokenizer, XCLIPModel

    d = Path(model_dir)
    if not (d / "config.json").is_file():
        raise FileNotFoundError(f"no X-CLIP model in {d}: download microsoft/xclip-base-patch32 (config.json, "
                                "model weights, tokenizer files) into that folder")  # fmt: skip
    return XCLIPModel.from_pretrained(d).eval(), AutoTokenizer.from_pretrained(d)


class XCLIPScorer:
    """Text-video similarity (X-CLIP): cosine similarity between the goal text and the video, from
    ``num_frames`` frames spread over the clip, resized and CLIP-normalised. ``model``/``tokenizer``:
    an ``XCLIPModel`` and its tokenizer (default: :func:`load_xclip` of ``model_dir``)."""

    name = "xclip"

    def __init__(self, model_dir: str | os.PathLike[str] | None = None, model: Any = None, tokenizer: Any = None,
                 device: str = "cpu") -> None:  # fmt: skip
        if model is None:
            if model_dir is None:
                raise ValueError("give `model_dir` (a local X-CLIP folder) or `model` and `tokenizer`")
            model, tokenizer = load_xclip(model_dir)
        self.model, self.tokenizer, self.device = model.to(device), tokenizer, device

    @torch.no_grad()
    def score(self, frames: np.ndarray, goal: Any, hand_masks: np.ndarray | None = None) -> np.ndarray:
        import torch.nn.functional as F

        if goal.text is None:
            raise ValueError("the X-CLIP scorer needs a goal text")
        frames = np.asarray(frames)
        frames = frames[None] if frames.ndim == 4 else frames
        vc = self.model.config.vision_config
        idx = np.linspace(0, frames.shape[1] - 1, vc.num_frames).round().astype(int)
        x = torch.from_numpy(np.ascontiguousarray(frames[:, idx])).float().div(255.0)  # B, n, H, W, 3
        b, n = x.shape[:2]
        x = x.reshape(b * n, *x.shape[2:]).permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(vc.image_size, vc.image_size), mode="bilinear", align_corners=False)
        x = (x - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None]
        tok = self.tokenizer([goal.text], padding=True, return_tensors="pt")
        out = self.model(input_ids=tok.input_ids.to(self.device), attention_mask=tok.attention_mask.to(self.device),
                         pixel_values=x.reshape(b, n, 3, vc.image_size, vc.image_size).to(self.device))  # fmt: skip
        return (out.logits_per_video[:, 0] / self.model.logit_scale.exp()).cpu().double().numpy()


#: what the dreamsim package reads from its cache folder per model type (its release zip unpacks them)
_DREAMSIM_FILES = {
    "ensemble": ("dino_vitb16_pretrain.pth", "open_clip_vitb16_pretrain.pth.tar", "clip_vitb16_pretrain.pth.tar",
                 "ensemble_lora/adapter_config.json"),
    "dino_vitb16": ("dino_vitb16_pretrain.pth", "dino_vitb16_single_lora/adapter_config.json"),
    "open_clip_vitb32": ("open_clip_vitb32_pretrain.pth.tar", "open_clip_vitb32_single_lora/adapter_config.json"),
    "clip_vitb32": ("clip_vitb32_pretrain.pth.tar", "clip_vitb32_single_lora/adapter_config.json"),
}  # fmt: skip
#: the DINO backbones come through torch.hub, with the cache folder as the hub folder
_DINO_HUB_FILES = ("facebookresearch_dino_main/hubconf.py", "checkpoints/dino_vitbase16_pretrain.pth")


def dreamsim_cache_dir() -> Path:
    """Where DreamSim's weights are looked for: ``$DEXSIM_DREAMSIM_DIR``, else ``$DEXSIM_HOME/dreamsim``."""
    from .._paths import dexsim_home

    return Path(os.environ.get("DEXSIM_DREAMSIM_DIR", dexsim_home() / "dreamsim")).expanduser()


def load_dreamsim(cache_dir: str | os.PathLike[str] | None = None, dreamsim_type: str = "ensemble",
                  device: str = "cpu") -> Any:  # fmt: skip
    """The real DreamSim model (``dreamsim.dreamsim``, LoRA-tuned ViT features) from ``cache_dir``
    (default :func:`dreamsim_cache_dir`). Every file it needs is checked first: a missing one raises
    an error naming it and the release zip to unpack there, so nothing is downloaded at run time."""
    from .._deps import require

    dreamsim = require("dreamsim", "metrics")
    if dreamsim_type not in _DREAMSIM_FILES:
        raise ValueError(f"`dreamsim_type` must be one of {sorted(_DREAMSIM_FILES)}, got {dreamsim_type!r}")
    d = Path(cache_dir) if cache_dir else dreamsim_cache_dir()
    needed = list(_DREAMSIM_FILES[dreamsim_type])
    if dreamsim_type in ("ensemble", "dino_vitb16"):
        needed += _DINO_HUB_FILES
    missing = [f for f in needed if not (d / f).is_file()]
    if missing:
        from dreamsim.config import dreamsim_weights

        raise FileNotFoundError(
            f"DreamSim ({dreamsim_type}) is missing {missing} in {d}: unzip {dreamsim_weights[dreamsim_type]} there"
            + ("; the DINO backbone comes through torch.hub with that folder as the hub folder: on a machine with "
               f"network run torch.hub.set_dir({str(d)!r}); torch.hub.load('facebookresearch/dino:main', "
               "'dino_vitb16') and copy the folder" if any(m in _DINO_HUB_FILES for m in missing) else "")
        )  # fmt: skip
    model, _ = dreamsim.dreamsim(pretrained=True, device=device, cache_dir=str(d), dreamsim_type=dreamsim_type)
    return model.eval()


class DreamSimScorer:
    """``-DreamSim`` distance of the last frame to the goal image (higher is better). Hand pixels are
    painted with the goal's pixels first; both images are resized (bicubic) to ``image_size``.
    ``region=True`` compares only the square crop around the goal region (where the goal differs
    from the start, see :class:`~dexsim.scoring.RegionScorer`) so small objects are not lost at
    224 x 224. ``model``: any DreamSim ``PerceptualModel`` (``model(a, b) -> (B,)`` distances of
    (B, 3, S, S) images in [0, 1]; default :func:`load_dreamsim`)."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, dreamsim_type: str = "ensemble",
                 model: Any = None, device: str = "cpu", image_size: int = 224,
                 region: bool = False) -> None:  # fmt: skip
        self.model = model if model is not None else load_dreamsim(cache_dir, dreamsim_type, device)
        self.model = self.model.to(device).eval()
        self.device, self.image_size, self.region = device, image_size, region
        self.name = "dreamsim_region" if region else "dreamsim"

    @torch.no_grad()
    def score(self, frames: np.ndarray, goal: Any, hand_masks: np.ndarray | None = None) -> np.ndarray:
        import torch.nn.functional as F

        last, target = goal_pairs(frames, goal, hand_masks, self.region)

        def to(x: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().div(255.0)
            t = F.interpolate(t, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False,
                              antialias=True)  # fmt: skip
            return t.clamp(0.0, 1.0).to(self.device)

        d = self.model(to(last), to(target))
        return -d.reshape(len(last)).float().cpu().double().numpy()


def goal_pairs(frames: np.ndarray, goal: Any, hand_masks: np.ndarray | None,
               region: bool) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The (B, h, w, 3) last frames (hands painted from the goal) and as many copies of the goal
    image, both cropped to :func:`region_box` when ``region``: what a perceptual scorer compares."""
    from . import painted_last

    last = painted_last(frames, goal, hand_masks)
    target = np.repeat(goal.image[None], len(last), 0)
    if region:
        y0, y1, x0, x1 = region_box(goal)
        last, target = last[:, y0:y1, x0:x1], target[:, y0:y1, x0:x1]
    return last, target


def region_box(goal: Any, margin: float = 0.25, min_size: int = 32) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``: a square box around the goal region (pixels where the goal differs from the
    start), grown by ``margin`` of its side and at least ``min_size`` pixels, kept inside the image;
    the whole image when nothing differs."""
    from . import RegionScorer

    h, w = goal.image.shape[:2]
    m = RegionScorer().region(goal)
    if not m.any():
        return 0, h, 0, w
    ys, xs = np.nonzero(m)
    cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
    side = max(ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min())
    side = int(min(max(side * (1 + 2 * margin), min_size), h, w))
    y0 = int(np.clip(round(cy - side / 2), 0, h - side))
    x0 = int(np.clip(round(cx - side / 2), 0, w - side))
    return y0, y0 + side, x0, x0 + side
