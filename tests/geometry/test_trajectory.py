from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dexsim.geometry import (
    interpolate_poses,
    quat_canonical,
    random_quat,
    resample_indices,
    resample_keep_ends,
    resample_poses,
    resample_to_fps,
)


def random_traj(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    times = torch.cumsum(torch.rand(n, generator=g, dtype=torch.float64) + 0.05, 0)
    poses = torch.cat((torch.randn(n, 3, generator=g, dtype=torch.float64), random_quat(n, g, torch.float64)), -1)
    return times, poses


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 20), st.integers(0, 10_000))
def test_interpolation_hits_keyframes(n: int, seed: int) -> None:
    times, poses = random_traj(n, seed)
    out = interpolate_poses(times, poses, times)
    assert torch.allclose(out[:, :3], poses[:, :3], atol=1e-9)
    assert torch.allclose(quat_canonical(out[:, 3:]), quat_canonical(poses[:, 3:]), atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 10), st.integers(0, 10_000), st.floats(1.0, 30.0))
def test_resample_to_fps(n: int, seed: int, fps: float) -> None:
    times, poses = random_traj(n, seed)
    new_t, new_p = resample_poses(times, poses, fps)
    assert new_t[0] == times[0]
    assert new_t[-1] <= times[-1] + 1e-9
    assert torch.allclose(new_t[1:] - new_t[:-1], torch.full((len(new_t) - 1,), 1 / fps, dtype=torch.float64))
    assert torch.allclose(new_p[:, 3:].norm(dim=-1), torch.ones(len(new_t), dtype=torch.float64))


def test_midpoint_is_linear_and_clamped() -> None:
    times = torch.tensor([0.0, 1.0], dtype=torch.float64)
    poses = torch.tensor([[0, 0, 0, 1, 0, 0, 0], [2, 0, 0, 0, 0, 0, 1]], dtype=torch.float64)
    mid = interpolate_poses(times, poses, torch.tensor([0.5, -1.0, 5.0]))
    assert torch.allclose(mid[0, :3], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    # half of a 180 degree turn about z is 90 degrees: w = z = sqrt(1/2)
    assert torch.allclose(mid[0, 3:], torch.tensor([0.5**0.5, 0, 0, 0.5**0.5], dtype=torch.float64), atol=1e-9)
    assert torch.allclose(mid[1], poses[0]) and torch.allclose(mid[2], poses[1])
    assert resample_to_fps(torch.tensor([0.0, 1.0]), 8).numel() == 9


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 200), st.integers(1, 200))
def test_resample_indices_keep_ends(n_src: int, n_dst: int) -> None:
    idx = resample_indices(n_src, n_dst)
    assert idx.numel() == n_dst
    assert int(idx[0]) == 0
    if n_dst > 1:
        assert int(idx[-1]) == n_src - 1
    assert bool((idx[1:] >= idx[:-1]).all())
    assert int(idx.max()) < n_src


def test_resample_keep_ends_values_and_poses() -> None:
    x = torch.arange(10, dtype=torch.float64)[:, None] * torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    y = resample_keep_ends(x, 4)
    assert torch.allclose(y[:, 0], torch.tensor([0.0, 3.0, 6.0, 9.0], dtype=torch.float64))
    _, poses = random_traj(7, 3)
    rp = resample_keep_ends(poses, 13, quaternion=True)
    assert torch.allclose(rp[0, :3], poses[0, :3]) and torch.allclose(rp[-1, :3], poses[-1, :3])


def test_trajectory_errors() -> None:
    with pytest.raises(ValueError, match=r"strictly increasing, got 1.0 then 1.0 at index 1"):
        interpolate_poses(torch.tensor([1.0, 1.0]), torch.zeros(2, 7), torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"`poses` must have shape \(2, 7\), got \(3, 7\)"):
        interpolate_poses(torch.tensor([0.0, 1.0]), torch.zeros(3, 7), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="`fps` must be a finite number > 0, got 0"):
        resample_to_fps(torch.tensor([0.0, 1.0]), 0)
    with pytest.raises(ValueError, match="`num_target` must be a positive int, got 0"):
        resample_indices(5, 0)
    with pytest.raises(ValueError, match="`times` must be finite, got nan"):
        resample_to_fps(torch.tensor([0.0, float("nan")]), 8)
