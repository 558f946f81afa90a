"""Image and video metrics: PSNR (whole frame or over a pixel mask) and SSIM."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["changed_mask", "masked_mse", "psnr", "psnr_from_mse", "ssim"]


def psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    return float("inf") if mse <= 0 else 10.0 * math.log10(peak**2 / mse)


def masked_mse(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """MSE over (T, H, W, 3) uint8 videos, over the pixels of ``mask`` (T, H, W) when given (NaN if empty)."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    d = (pred.astype(np.float64) - target.astype(np.float64)) ** 2
    if mask is None:
        return float(d.mean())
    if mask.shape != pred.shape[:-1]:
        raise ValueError(f"mask {mask.shape} must be the videos' (T, H, W) {pred.shape[:-1]}")
    n = int(mask.sum())
    return float(d[mask].mean()) if n else float("nan")


def psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of uint8 videos/images (over ``mask`` pixels when given)."""
    return psnr_from_mse(masked_mse(pred, target, mask))


def changed_mask(
    target: np.ndarray, static: np.ndarray, threshold: int = 10, exclude: np.ndarray | None = None
) -> np.ndarray:
    """(T, H, W) pixels where ``target`` differs from ``static`` by more than ``threshold``/255 in some
    channel, minus ``exclude`` (for example the hand pixels)."""
    m = (np.abs(target.astype(np.int16) - static.astype(np.int16)) > threshold).any(-1)
    return m & ~exclude if exclude is not None else m


def _gauss(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) over the
    frames and channels of (..., H, W, 3) uint8 images, on [0, 1] values, valid region only."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    a = torch.from_numpy(pred.reshape(-1, *pred.shape[-3:])).permute(0, 3, 1, 2).double() / 255.0
    b = torch.from_numpy(target.reshape(-1, *target.shape[-3:])).permute(0, 3, 1, 2).double() / 255.0
    g = _gauss()
    k = (g[:, None] * g[None, :]).expand(3, 1, 11, 11)
    f = lambda x: F.conv2d(x, k, groups=3)  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return float(s.mean())
