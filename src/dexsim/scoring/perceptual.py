"""Perceptual goal scorers: LPIPS (the ``lpips`` package). Weights are read locally, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["LPIPSScorer", "XCLIPScorer", "load_lpips", "load_xclip"]

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
    the goal's pixels first (goal images show no hands). ``model``: an ``lpips.LPIPS`` instance
    (default: :func:`load_lpips`)."""

    name = "lpips"

    def __init__(self, net: str = "alex", weights_dir: str | os.PathLike[str] | None = None, model: Any = None,
                 device: str = "cpu") -> None:  # fmt: skip
        self.model = (model if model is not None else load_lpips(net, weights_dir)).to(device)
        self.device = device

    @torch.no_grad()
    def score(self, frames: np.ndarray, goal: Any, hand_masks: np.ndarray | None = None) -> np.ndarray:
        from . import _last

        last = _last(frames, goal)
        if hand_masks is not None:
            last = np.where(hand_masks[..., None], goal.image[None], last)
        to = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().to(self.device) / 127.5 - 1  # noqa: E731
        d = self.model(to(last), to(np.repeat(goal.image[None], len(last), 0)))
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
