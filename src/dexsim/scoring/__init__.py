"""Goal scorers behind one protocol: higher is better; offline PSNR/SSIM, region-aware variants."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics import psnr_from_mse, ssim

__all__ = [
    "SCORERS", "Goal", "MultiScaleScorer", "PSNRScorer", "RegionScorer", "SSIMScorer", "Scorer", "ShiftScorer",
    "gaussian_blur", "hand_masks_from_prompts", "make_scorer", "painted_last", "region_shift",
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


def painted_last(frames: np.ndarray, goal: Goal, hand_masks: np.ndarray | None = None,
                 fill: str = "goal") -> np.ndarray:  # fmt: skip
    """(B, H, W, 3) last frames with the ``hand_masks`` pixels painted from the goal image
    (``fill="goal"``: goal images show no hands) or from the start view (``"start"``, when there is one)."""
    last = _last(frames, goal)
    if hand_masks is None:
        return last
    src = goal.start if fill == "start" and goal.start is not None else goal.image
    return np.where(hand_masks[..., None], src[None], last)


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
        return np.array([ssim(f, goal.image) for f in painted_last(frames, goal, hand_masks)])


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


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, H, W) images blurred by a Gaussian of ``sigma`` pixels (separable, reflect padding)."""
    if sigma <= 0:
        return images
    c = images.shape[1]
    r = min(int(3 * sigma + 0.5), min(images.shape[-2:]) - 1)
    x = torch.arange(-r, r + 1, dtype=images.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    out = F.conv2d(F.pad(images, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(out, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


class MultiScaleScorer:
    """Coarse-to-fine PSNR: the mean over Gaussian blurs of ``sigmas`` (pixels at 128 px image width,
    scaled with the width) of the PSNR between the blurred last frame and the blurred goal image.
    Blurring spreads an object over its surroundings, so an object that ends near its goal scores
    higher than one far from it even when the two do not overlap: the score follows distance, where
    plain PSNR only sees "right place or not". ``region=True`` averages each scale over the goal
    region (where goal and start differ) grown by 2 sigma. Hand pixels are painted with the goal
    image (``hand_fill="goal"``: goal images show no hands, and a pushing hand ends over the place
    its object reached) or with the start view (``"start"``: a hand hiding an object does not make
    the object look moved; ranks exact videos better, the default model's worse, see the README)."""

    def __init__(self, sigmas: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0, 16.0), region: bool = False,
                 hand_fill: str = "goal") -> None:  # fmt: skip
        if not sigmas or min(sigmas) < 0:
            raise ValueError(f"`sigmas` must be non-empty and >= 0, got {sigmas}")
        if hand_fill not in ("start", "goal"):
            raise ValueError(f"`hand_fill` must be 'start' or 'goal', got {hand_fill!r}")
        self.sigmas, self.region, self.hand_fill = tuple(float(x) for x in sigmas), region, hand_fill
        self.name = "region_multiscale_psnr" if region else "multiscale_psnr"

    def score(self, frames: np.ndarray, goal: Goal, hand_masks: np.ndarray | None = None) -> np.ndarray:
        last = painted_last(frames, goal, hand_masks, self.hand_fill)
        to = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()  # noqa: E731
        pred, target = to(last), to(goal.image[None])
        region = torch.from_numpy(RegionScorer().region(goal)).float()[None, None] if self.region else None
        scale = goal.image.shape[1] / 128.0
        total = np.zeros(len(last))
        for sigma in self.sigmas:
            err = (_coarse(pred, sigma * scale) - _coarse(target, sigma * scale)).pow(2).mean(1)  # B, h, w
            if region is not None and region.any():
                grown = gaussian_blur(region, 2 * sigma * scale) > 1e-3 if sigma > 0 else region > 0
                w = _coarse(grown.float(), sigma * scale)[0, 0]
                mse = (err * w).sum((1, 2)) / w.sum()
            else:
                mse = err.mean((1, 2))
            total += 10.0 * np.log10(255.0**2 / np.maximum(mse.double().numpy(), 1e-10))
        return total / len(self.sigmas)


def region_shift(image: np.ndarray, start: np.ndarray, region: np.ndarray, visible: np.ndarray | None = None,
                 max_shift: int = 40, min_seen: float = 0.3, max_pixels: int = 1500) -> np.ndarray:  # fmt: skip
    """(2,) float (dy, dx) pixels: the translation that best carries the ``start`` view's ``region`` pixels onto
    ``image``: ``argmin_s mean_{p in region, p+s seen} |image[p+s] - start[p]|`` over ``|s| <= max_shift`` in
    each axis (every second pixel, then every pixel around the best, then a parabola per axis).
    ``image``/``start`` (H, W, 3) uint8, ``region`` (H, W) bool, ``visible`` (H, W) bool (False: hidden by a
    hand, not compared). Shifts that see under ``min_seen`` of the region lose. When the region's content moved
    rigidly in ``image``, the result is that motion; when nothing moved, (0, 0)."""
    h, w = region.shape
    if image.shape != (h, w, 3) or start.shape != (h, w, 3) or (visible is not None and visible.shape != (h, w)):
        shapes = (image.shape, start.shape, None if visible is None else visible.shape)
        raise ValueError(f"image, start (H, W, 3) and visible (H, W) must match region {region.shape}, got {shapes}")
    ys, xs = np.nonzero(region)
    if len(ys) == 0:
        raise ValueError("region_shift needs a non-empty region")
    step = int(np.ceil(len(ys) / max_pixels))
    ys, xs = ys[::step], xs[::step]
    ref = start[ys, xs].astype(np.float32) / 255.0  # N, 3
    r = int(max_shift)
    pad_img = np.zeros((h + 2 * r, w + 2 * r, 3), np.float32)
    pad_img[r : r + h, r : r + w] = image.astype(np.float32) / 255.0
    pad_vis = np.zeros((h + 2 * r, w + 2 * r), bool)
    pad_vis[r : r + h, r : r + w] = True if visible is None else visible

    def cost(shifts: np.ndarray) -> np.ndarray:  # (S, 2) int -> (S,)
        yy = ys[None] + r + shifts[:, :1]
        xx = xs[None] + r + shifts[:, 1:]
        seen = pad_vis[yy, xx]  # S, N
        err = np.abs(pad_img[yy, xx] - ref[None]).sum(-1)  # S, N
        n = seen.sum(1)
        out = (err * seen).sum(1) / np.maximum(n, 1)
        out[n < min_seen * len(ys)] = np.inf
        return out

    def grid(cy: int, cx: int, half: int, stride: int) -> np.ndarray:
        d = stride * np.arange(-(half // stride), half // stride + 1)  # holds 0 whatever the parity
        g = np.stack(np.meshgrid(cy + d, cx + d, indexing="ij"), -1).reshape(-1, 2)
        return g[(np.abs(g) <= r).all(1)]

    coarse = grid(0, 0, r, 2)
    costs = np.concatenate([cost(c) for c in np.array_split(coarse, max(1, len(coarse) // 256))])
    if not np.isfinite(costs).any():
        return np.zeros(2)
    by, bx = coarse[int(np.argmin(costs))]
    fine = grid(int(by), int(bx), 2, 1)
    fine_costs = cost(fine)
    best = fine[int(np.argmin(fine_costs))]
    table = dict(zip(map(tuple, fine.tolist()), fine_costs.tolist(), strict=True))
    out = best.astype(np.float64)
    for axis in (0, 1):  # a parabola through the best cost and its two neighbours along the axis
        step = np.eye(2, dtype=int)[axis]
        c_lo, c_0, c_hi = (table.get(tuple((best + k * step).tolist()), np.inf) for k in (-1, 0, 1))
        curvature = c_lo - 2 * c_0 + c_hi
        if np.isfinite(curvature) and curvature > 1e-9:
            out[axis] += float(np.clip(0.5 * (c_lo - c_hi) / curvature, -0.5, 0.5))
    return out


class ShiftScorer:
    """Where the goal's change went: the goal region (pixels where the goal image differs from the start
    view by more than ``threshold``/255) holds the target before and after its motion; :func:`region_shift`
    finds the translation that carries the start view's region onto the goal image and onto each last
    frame, and the score is minus the distance (pixels at 128 px width) between the two, plus
    ``pixel_weight`` x the region multi-scale PSNR (dB; :class:`MultiScaleScorer` with ``region=True``).
    A candidate that moves nothing scores minus the goal's own displacement, one that moves the target as
    the goal does 0, one that moves it elsewhere by how far off it ends: the ranking follows the target's
    end position, as the physics check measures it, and not what happens outside the region (another
    object pushed). The PSNR term decides where the shift cannot: a target the hand hides at the end, or
    a forward push that moves it few pixels. Hand pixels are not compared (the planner's masks, grown for the
    pixel scorers, are shrunk back by ``hand_erode`` pixels; painting them from the goal or the start view
    ranked worse). No goal region (the goal shows no change): multi-scale PSNR alone.
    The defaults were chosen on the planning benchmark's validation instances (see the README)."""

    name = "shift"

    def __init__(self, threshold: int = 12, max_shift: float = 0.3, hand_erode: int = 4,
                 pixel_weight: float = 0.5) -> None:  # fmt: skip
        if pixel_weight < 0:
            raise ValueError(f"`pixel_weight` must be >= 0, got {pixel_weight}")
        if hand_erode < 0:
            raise ValueError(f"`hand_erode` must be >= 0, got {hand_erode}")
        if not 0 < max_shift <= 0.5:
            raise ValueError(f"`max_shift` must be in (0, 0.5] of the image width, got {max_shift}")
        self.threshold, self.max_shift = threshold, max_shift
        self.hand_erode, self.pixel_weight = hand_erode, pixel_weight

    def score(self, frames: np.ndarray, goal: Goal, hand_masks: np.ndarray | None = None) -> np.ndarray:
        pixels = MultiScaleScorer(region=True).score(frames, goal, hand_masks)
        if hand_masks is not None and self.hand_erode:
            hand_masks = ~_dilate(~np.asarray(hand_masks, bool), self.hand_erode)
        last = _last(frames, goal)
        region = RegionScorer(self.threshold, dilate=0).region(goal)
        if region.sum() < 4:
            return pixels
        r = max(2, int(round(self.max_shift * goal.image.shape[1])))
        target = region_shift(goal.image, goal.start, region, None, r)
        scale = 128.0 / goal.image.shape[1]
        out = []
        for i, frame in enumerate(last):
            seen = None if hand_masks is None else ~hand_masks[i]
            out.append(-scale * float(np.linalg.norm(region_shift(frame, goal.start, region, seen, r) - target)))
        return np.array(out) + self.pixel_weight * pixels


def _coarse(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, H, W) blurred by ``sigma`` pixels, kept at 1/k resolution (k a power of two <= sigma/2,
    box-averaged first), so wide blurs stay cheap; errors over it are means over the same area."""
    k = 1
    while 2 * k <= sigma / 2 and min(images.shape[-2:]) // (2 * k) >= 8:
        k *= 2
    if k > 1:
        images = F.avg_pool2d(images, k, ceil_mode=True)
    rest = max(sigma**2 - (k**2 - 1) / 12.0, 0.0) ** 0.5 / k
    return gaussian_blur(images, rest) if rest > 0.3 else images


def make_scorer(name: str, **kwargs: object) -> Scorer:
    """A scorer by name: ``psnr``, ``ssim``, ``region_psnr`` (offline); ``lpips``, ``lpips_region``,
    ``dreamsim``, ``dreamsim_region`` (local weights; ``kwargs`` go to the scorer, e.g. ``cache_dir``)."""
    from .perceptual import DreamSimScorer, LPIPSScorer

    table: dict[str, Callable[..., Scorer]] = {
        "psnr": PSNRScorer, "ssim": SSIMScorer, "region_psnr": RegionScorer, "lpips": LPIPSScorer,
        "lpips_region": partial(LPIPSScorer, region=True), "dreamsim": DreamSimScorer,
        "dreamsim_region": partial(DreamSimScorer, region=True), "multiscale_psnr": MultiScaleScorer,
        "region_multiscale_psnr": partial(MultiScaleScorer, region=True), "shift": ShiftScorer,
    }  # fmt: skip
    # text-video (X-CLIP) needs a model folder: construct ``perceptual.XCLIPScorer(model_dir=...)`` directly
    if name not in table:
        raise ValueError(f"unknown scorer {name!r}; choose one of {sorted(table)}")
    return table[name](**kwargs)


#: names :func:`make_scorer` knows
SCORERS = ("psnr", "ssim", "region_psnr", "multiscale_psnr", "region_multiscale_psnr", "shift", "lpips",
           "lpips_region", "dreamsim", "dreamsim_region")  # fmt: skip
