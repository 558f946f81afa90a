"""Forecasts drawn over a frame: each sample's wrist paths and final fingertips, one colour per sample."""

from __future__ import annotations

import colorsys
import itertools

import numpy as np
import torch

from ..geometry.camera import project_points
from ..geometry.se3 import pose7_to_viewmat

__all__ = ["draw_forecasts"]


def _colours(n: int) -> np.ndarray:
    return np.array([colorsys.hsv_to_rgb(i / max(n, 1), 0.85, 1.0) for i in range(n)]) * 255


def _dot(img: np.ndarray, u: float, v: float, colour: np.ndarray, r: int) -> None:
    h, w = img.shape[:2]
    x0, x1 = max(0, int(u) - r), min(w, int(u) + r + 1)
    y0, y1 = max(0, int(v) - r), min(h, int(v) + r + 1)
    if x0 < x1 and y0 < y1:
        img[y0:y1, x0:x1] = colour


def _line(img: np.ndarray, a: np.ndarray, b: np.ndarray, colour: np.ndarray) -> None:
    n = int(np.ceil(np.abs(b - a).max())) + 1
    for s in np.linspace(0.0, 1.0, max(n, 2)):
        _dot(img, *(a + s * (b - a)), colour, 0)


def draw_forecasts(image: np.ndarray, joints: np.ndarray, visible: np.ndarray, camera: np.ndarray,
                   K: np.ndarray) -> np.ndarray:  # fmt: skip
    """``image`` (H, W, 3) uint8 with N trajectories drawn: ``joints`` (N, T, 2, 21, 3) world, ``visible``
    (N, T, 2), seen by ``camera`` (7,) camera-to-world with intrinsics ``K`` (3, 3). Returns a copy."""
    out = np.array(image, np.uint8, copy=True)
    vm = pose7_to_viewmat(torch.as_tensor(np.asarray(camera, np.float64)))
    pts = torch.as_tensor(np.asarray(joints, np.float64))
    uv, z = project_points(pts.reshape(-1, 3), vm, torch.as_tensor(np.asarray(K, np.float64)))
    uv = uv.numpy().reshape(*joints.shape[:-1], 2)
    front = (z.numpy() > 0).reshape(joints.shape[:-1])
    for i, colour in enumerate(_colours(len(joints))):
        for h in range(2):
            frames = np.nonzero(visible[i, :, h] & front[i, :, h, 0])[0]
            for a, b in itertools.pairwise(frames):
                _line(out, uv[i, a, h, 0], uv[i, b, h, 0], colour)
            if len(frames):
                last = frames[-1]
                _dot(out, *uv[i, last, h, 0], colour, 1)
                for tip in range(16, 21):
                    if front[i, last, h, tip]:
                        _dot(out, *uv[i, last, h, tip], colour, 0)
    return out
