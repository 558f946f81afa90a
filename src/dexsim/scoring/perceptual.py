"""Perceptual goal scorers: LPIPS (the ``lpips`` package). Weights are read locally, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["LPIPSScorer", "load_lpips"]

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
