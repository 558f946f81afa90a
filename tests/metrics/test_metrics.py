"""dexsim.metrics against values worked out by hand, and properties that hold for any input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.lib.stride_tricks import sliding_window_view

from dexsim.metrics import changed_mask, masked_mse, psnr, psnr_from_mse, ssim

C1, C2 = 0.01**2, 0.03**2  # SSIM's stabilisers (K1 = 0.01, K2 = 0.03, on [0, 1] values)


def _video(rng: np.random.Generator, shape: tuple[int, ...] = (2, 12, 14, 3), hi: int = 256) -> np.ndarray:
    return rng.integers(0, hi, shape, dtype=np.uint8)


def _local_means(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) [0, 1] image -> (H-10, W-10, 3) means under an 11x11 Gaussian window (sigma 1.5),
    valid region only: written here with numpy, independently of the library's torch convolution."""
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    win = sliding_window_view(img, (11, 11), axis=(0, 1))  # (H-10, W-10, 3, 11, 11)
    return np.einsum("yxcij,ij->yxc", win, w)


# --------------------------------------------------------------------------------------------- PSNR
@pytest.mark.parametrize("k", [1, 2, 5, 16, 100, 255])
def test_psnr_of_a_constant_error_of_k_grey_levels(k: int) -> None:
    target = _video(np.random.default_rng(k), hi=256 - k)
    pred = target + np.uint8(k)  # every channel of every pixel off by exactly k
    assert psnr(pred, target) == pytest.approx(20 * math.log10(255 / k), abs=1e-9)
    assert psnr(target, pred) == pytest.approx(20 * math.log10(255 / k), abs=1e-9)
    assert masked_mse(pred, target) == pytest.approx(k**2)


def test_psnr_from_mse_values() -> None:
    assert psnr_from_mse(0.0) == math.inf and psnr_from_mse(-1.0) == math.inf
    assert psnr_from_mse(255.0**2) == pytest.approx(0.0)
    assert psnr_from_mse(1.0) == pytest.approx(20 * math.log10(255))  # 48.13 dB
    assert psnr_from_mse(0.01, peak=1.0) == pytest.approx(20.0)
    assert psnr_from_mse(100.0) - psnr_from_mse(1.0) == pytest.approx(-20.0)  # 100x the error: -20 dB


def test_identical_videos_have_infinite_psnr() -> None:
    v = _video(np.random.default_rng(0))
    assert psnr(v, v.copy()) == math.inf and masked_mse(v, v) == 0.0


def test_errors_do_not_wrap_around_uint8() -> None:
    a = np.zeros((1, 2, 2, 3), np.uint8)
    b = np.full((1, 2, 2, 3), 255, np.uint8)
    assert masked_mse(a, b) == masked_mse(b, a) == 255.0**2  # not (0 - 255) % 256 = 1
    assert psnr(a, b) == pytest.approx(0.0)


# ----------------------------------------------------------------------------------- masked metrics
def test_masked_mse_counts_only_the_masked_pixels() -> None:
    target = np.full((2, 6, 8, 3), 100, np.uint8)
    pred = target + np.uint8(50)  # 50 grey levels off outside the mask
    mask = np.zeros((2, 6, 8), bool)
    mask[0, 1:3, 2:5] = True
    mask[1, 4, 7] = True
    pred[mask] = target[mask] + np.uint8(4)  # 4 grey levels off inside
    assert masked_mse(pred, target, mask) == pytest.approx(16.0)
    assert psnr(pred, target, mask) == pytest.approx(20 * math.log10(255 / 4))
    assert masked_mse(pred, target, ~mask) == pytest.approx(2500.0)
    n = mask.sum()
    assert masked_mse(pred, target) == pytest.approx((16.0 * n + 2500.0 * (mask.size - n)) / mask.size)
    # one channel of one masked pixel off by 30: its squared error over 3 channels x 7 pixels
    pred2 = target.copy()
    pred2[0, 1, 2, 1] += 30
    assert masked_mse(pred2, target, mask) == pytest.approx(900 / (3 * n))


def test_empty_mask_is_nan_and_shapes_are_checked() -> None:
    v = _video(np.random.default_rng(1))
    empty = np.zeros(v.shape[:-1], bool)
    assert math.isnan(masked_mse(v, v, empty)) and math.isnan(psnr(v, 255 - v, empty))
    with pytest.raises(ValueError, match="differ in shape"):
        masked_mse(v, v[:, :-1])
    with pytest.raises(ValueError, match="mask"):
        masked_mse(v, v, empty[:, :-1])
    with pytest.raises(ValueError, match="mask"):
        masked_mse(v, v, np.zeros(v.shape, bool))  # a per-channel mask is not a pixel mask


def test_changed_mask_threshold_channels_and_exclude() -> None:
    static = np.full((1, 2, 4, 3), 100, np.uint8)
    target = static.copy()
    target[0, 0, 0] = (110, 100, 100)  # exactly the threshold: not changed
    target[0, 0, 1] = (100, 111, 100)  # one channel above it
    target[0, 0, 2] = (100, 100, 89)  # below the static value by 11
    target[0, 1, 3] = (0, 255, 100)  # far off (no uint8 wrap-around)
    m = changed_mask(target, static)
    expected = np.zeros((1, 2, 4), bool)
    expected[0, 0, 1] = expected[0, 0, 2] = expected[0, 1, 3] = True
    assert m.dtype == bool and np.array_equal(m, expected)
    assert np.array_equal(changed_mask(target, static, threshold=9)[0, 0], [True, True, True, False])
    assert not changed_mask(target, static, threshold=255).any()
    exclude = np.zeros_like(expected)
    exclude[0, 0, 1] = exclude[0, 0, 3] = True  # one changed pixel, one unchanged
    expected[0, 0, 1] = False
    assert np.array_equal(changed_mask(target, static, exclude=exclude), expected)


# --------------------------------------------------------------------------------------------- SSIM
def test_ssim_of_identical_images_is_one() -> None:
    v = _video(np.random.default_rng(2), (3, 16, 20, 3))
    assert ssim(v, v.copy()) == pytest.approx(1.0, abs=1e-12)
    assert ssim(v[0], v[0]) == pytest.approx(1.0, abs=1e-12)  # a single (H, W, 3) image


def test_ssim_of_constant_images_is_the_luminance_term() -> None:
    a = np.full((16, 16, 3), 100, np.uint8)
    b = np.full((16, 16, 3), 140, np.uint8)
    m, n = 100 / 255, 140 / 255  # no variance: contrast-structure term (0 + C2) / (0 + C2) = 1
    assert ssim(a, b) == pytest.approx((2 * m * n + C1) / (m**2 + n**2 + C1), abs=1e-9)
    assert ssim(a, b) < 1.0


def test_ssim_of_a_constant_shifted_copy_follows_the_luminance_term() -> None:
    """b = a + c: equal variances and covariance = variance, so SSIM is the mean over windows of
    (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1) with mu_b = mu_a + c."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 200, (20, 24, 3), dtype=np.uint8)
    for c in (5, 40):
        b = a + np.uint8(c)
        mu_a = _local_means(a / 255.0)
        mu_b = mu_a + c / 255.0
        expected = ((2 * mu_a * mu_b + C1) / (mu_a**2 + mu_b**2 + C1)).mean()
        assert ssim(a, b) == pytest.approx(expected, abs=1e-9)
    assert ssim(a, a + np.uint8(40)) < ssim(a, a + np.uint8(5)) < 1.0


def test_ssim_sees_structure_that_psnr_misses() -> None:
    """Same error energy (PSNR), different structure: noise lowers SSIM more than a uniform shift."""
    rng = np.random.default_rng(4)
    a = rng.integers(60, 190, (24, 24, 3), dtype=np.uint8)
    shifted = a + np.uint8(20)
    noisy = (a.astype(int) + rng.choice([-20, 20], a.shape)).astype(np.uint8)
    assert psnr(shifted, a) == pytest.approx(psnr(noisy, a))
    assert ssim(noisy, a) < ssim(shifted, a)


def test_ssim_checks_shapes() -> None:
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(a, a[:, :-1])


# ------------------------------------------------------------------------------------- properties
_videos = st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 5)).flatmap(
    lambda s: st.tuples(
        arrays(np.uint8, (*s, 3)), arrays(np.uint8, (*s, 3)), arrays(np.bool_, s)
    )
)  # fmt: skip
_images = st.tuples(st.integers(11, 14), st.integers(11, 14)).flatmap(
    lambda s: st.tuples(arrays(np.uint8, (*s, 3)), arrays(np.uint8, (*s, 3)))
)


@settings(max_examples=60, deadline=None)
@given(_videos)
def test_masked_mse_splits_over_a_mask_and_its_complement(v: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    a, b, mask = v
    n, total = int(mask.sum()), mask.size
    whole = masked_mse(a, b)
    assert masked_mse(a, b, np.ones_like(mask)) == pytest.approx(whole)
    assert masked_mse(a, b) == masked_mse(b, a) and 0.0 <= whole <= 255.0**2
    inside = masked_mse(a, b, mask) if n else 0.0
    outside = masked_mse(a, b, ~mask) if n < total else 0.0
    assert whole == pytest.approx((inside * n + outside * (total - n)) / total, rel=1e-9, abs=1e-9)
    assert psnr(a, b) == psnr(b, a) and psnr(a, b) >= 0.0


@settings(max_examples=60, deadline=None)
@given(_videos, st.integers(0, 254), st.integers(1, 255))
def test_changed_mask_properties(v: tuple[np.ndarray, np.ndarray, np.ndarray], t: int, dt: int) -> None:
    a, b, exclude = v
    m = changed_mask(a, b, threshold=t)
    assert m.shape == a.shape[:-1] and not changed_mask(a, a, threshold=t).any()
    assert np.array_equal(m, changed_mask(b, a, threshold=t))  # symmetric
    assert not (changed_mask(a, b, threshold=min(t + dt, 255)) & ~m).any()  # a higher threshold keeps fewer
    assert np.array_equal(changed_mask(a, b, threshold=t, exclude=exclude), m & ~exclude)
    # a pixel is unchanged exactly when every channel is within the threshold
    assert np.array_equal(~m, (np.abs(a.astype(int) - b.astype(int)) <= t).all(-1))


@settings(max_examples=30, deadline=None)
@given(_images)
def test_ssim_properties(imgs: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = imgs
    s = ssim(a, b)
    assert s == pytest.approx(ssim(b, a), abs=1e-12)  # symmetric
    assert -1.0 - 1e-9 <= s <= 1.0 + 1e-9
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)
