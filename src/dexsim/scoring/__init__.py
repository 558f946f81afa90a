"""Goal scorers behind one protocol: higher is better; offline PSNR/SSIM, region-aware variants."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, runtime_checkable

import numpy as np

from ..metrics import psnr_from_mse, ssim

__all__ = [
    "SCORERS", "Goal", "PSNRScorer", "RegionScorer", "SSIMScorer", "Scorer", "hand_masks_from_prompts", "make_scorer",
]  # fmt: skip


@dataclass
class Goal:
    """What a task wants: a goal ``image`` (H, W, 3) uint8 of the scene (no hands) seen from the start
    camera, and/or a ``text``; ``start`` (H, W, 3) the first view, for region-aware scoring."""

    image: np.ndarray | None = None
    text: str | None = None
    start: np.ndarray | None = None


@runtime_checkable
class Scorer(Protocol):
    """``score(frames (B, T, H, W, 3) uint8, goal, hand_masks=None) -> (B,) float``: how well each video's
    end reaches the goal; ``hand_masks`` (B, H, W) bool marks pixels to ignore (the hands, which the
    goal image does not show)."""

    name: str

    def score(self, frames: np.ndarray, goal: Goal, hand_masks: np.ndarray | None = None) -> np.ndarray: ...


def hand_masks_from_prompts(prompts: np.ndarray, threshold: int = 24, dilate: int = 2) -> np.ndarray:
    """(B, H, W) bool: where the last frame of each (B, T, H, W, 3) hand-prompt video shows a hand."""
    m = np.asarray(prompts)[:, -1].max(-1) > threshold
    return _dilate(m, dilate)


def _dilate(m: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        m = m | np.roll(m, 1, -2) | np.roll(m, -1, -2) | np.roll(m, 1, -1) | np.roll(m, -1, -1)
    return m


def _last(frames: np.ndarray, goal: Goal) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 4:
        frames = frames[None]
    if goal.image is None:
        raise ValueError("this scorer needs a goal image")
    if frames.shape[2:] != goal.image.shape:
        raise ValueError(f"frames {frames.shape[2:]} and the goal image {goal.image.shape} differ in size")
    return frames[:, -1]


class PSNRScorer:
    """PSNR (dB) of the last frame to the goal image."""

    name = "psnr"

    def score(self, frames: np.ndarray, goal: Goal, hand_masks: np.ndarray | None = None) -> np.ndarray:
        last = _last(frames, goal).astype(np.float64)
        err = ((last - goal.image.astype(np.float64)) ** 2).mean(-1)
        keep = np.ones(err.shape, bool) if hand_masks is None else ~hand_masks
        mse = [float(e[k].mean()) if k.any() else 0.0 for e, k in zip(err, keep, strict=True)]
        return np.array([psnr_from_mse(m) if m > 0 else 100.0 for m in mse])


class SSIMScorer:
    """SSIM of the last frame to the goal image."""

    name = "ssim"

    def score(self, frames: np.ndarray, goal: Goal, hand_masks: np.ndarray | None = None) -> np.ndarray:
        last = _last(frames, goal)
        if hand_masks is not None:  # hands are not in the goal: paint them with the goal's pixels
            last = np.where(hand_masks[..., None], goal.image[None], last)
        return np.array([ssim(f, goal.image) for f in last])


class RegionScorer:
    """PSNR over the goal region only: the pixels where the goal differs from the start by more than
    ``threshold``/255 (dilated by ``dilate`` pixels), so a large unchanged background does not
    drown the part of the image the task is about."""

    def __init__(self, threshold: int = 12, dilate: int = 2) -> None:
        self.threshold, self.dilate = threshold, dilate
        self.name = "region_psnr"

    def region(self, goal: Goal) -> np.ndarray:
        if goal.start is None or goal.image is None:
            raise ValueError("region scoring needs the goal image and the start view")
        m = (np.abs(goal.image.astype(np.int16) - goal.start.astype(np.int16)) > self.threshold).any(-1)
        return _dilate(m, self.dilate)

    def score(self, frames: np.ndarray, goal: Goal, hand_masks: np.ndarray | None = None) -> np.ndarray:
        last = _last(frames, goal).astype(np.float64)
        m = self.region(goal)
        if not m.any():
            return PSNRScorer().score(frames, goal, hand_masks)
        keep = np.broadcast_to(m, last.shape[:3]) & (True if hand_masks is None else ~hand_masks)
        err = ((last - goal.image.astype(np.float64)) ** 2).mean(-1)
        d = [float(e[k].mean()) if k.any() else float(e[m].mean()) for e, k in zip(err, keep, strict=True)]
        return np.array([psnr_from_mse(x) if x > 0 else 100.0 for x in d])


def make_scorer(name: str, **kwargs: object) -> Scorer:
    """A scorer by name: ``psnr``, ``ssim``, ``region_psnr`` (offline); ``lpips``, ``lpips_region``,
    ``dreamsim``, ``dreamsim_region`` (local weights; ``kwargs`` go to the scorer, e.g. ``cache_dir``)."""
    from .perceptual import DreamSimScorer, LPIPSScorer

    table: dict[str, Callable[..., Scorer]] = {
        "psnr": PSNRScorer, "ssim": SSIMScorer, "region_psnr": RegionScorer, "lpips": LPIPSScorer,
        "lpips_region": partial(LPIPSScorer, region=True), "dreamsim": DreamSimScorer,
        "dreamsim_region": partial(DreamSimScorer, region=True),
    }  # fmt: skip
    # text-video (X-CLIP) needs a model folder: construct ``perceptual.XCLIPScorer(model_dir=...)`` directly
    if name not in table:
        raise ValueError(f"unknown scorer {name!r}; choose one of {sorted(table)}")
    return table[name](**kwargs)


#: names :func:`make_scorer` knows
SCORERS = ("psnr", "ssim", "region_psnr", "lpips", "lpips_region", "dreamsim", "dreamsim_region")
