"""Camera and object trajectories: interpolation (linear + slerp) and resampling.

A trajectory is a pair ``(times (T,), poses (T, 7))`` with poses as
``[tx, ty, tz, qw, qx, qy, qz]``; times are seconds and strictly increasing.
"""

from __future__ import annotations

import math

import torch

from .._validate import check_positive, tensor_arg
from .rotations import quat_normalize, quat_slerp

__all__ = [
    "interpolate_poses",
    "orbit_viewmats",
    "resample_indices",
    "resample_keep_ends",
    "resample_poses",
    "resample_to_fps",
]


def _check_times(name: str, times: torch.Tensor) -> torch.Tensor:
    times = tensor_arg(name, times, (None,), dtype=torch.float64)
    if times.ndim != 1 or times.numel() == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D array, got shape {tuple(times.shape)}")
    steps = times[1:] - times[:-1]
    if bool((steps <= 0).any()):
        i = int(torch.nonzero(steps <= 0)[0])
        raise ValueError(
            f"`{name}` must be strictly increasing, got {float(times[i])} then {float(times[i + 1])} at index {i + 1}"
        )
    return times


def interpolate_poses(times: torch.Tensor, poses: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Poses at ``query`` times: linear in translation, slerp in rotation, clamped at the ends.

    Args:
        times: (T,) strictly increasing seconds.
        poses: (T, 7) ``[t, q]`` poses.
        query: (Q,) seconds.
    Returns:
        (Q, 7) poses with unit quaternions.
    """
    times = _check_times("times", times)
    poses = tensor_arg("poses", poses, (7,))
    if poses.ndim != 2 or poses.shape[0] != times.shape[0]:
        raise ValueError(f"`poses` must have shape ({times.shape[0]}, 7), got {tuple(poses.shape)}")
    query = tensor_arg("query", query, (None,), dtype=torch.float64)
    dtype = poses.dtype
    poses = poses.to(torch.float64)
    if times.numel() == 1:
        out = poses.expand(query.shape[0], 7).clone()
        out[:, 3:] = quat_normalize(out[:, 3:])
        return out.to(dtype)
    q = query.clamp(times[0], times[-1])
    hi = torch.searchsorted(times, q, right=False).clamp(1, times.numel() - 1)
    lo = hi - 1
    w = ((q - times[lo]) / (times[hi] - times[lo])).clamp(0.0, 1.0)
    trans = poses[lo, :3] + w[:, None] * (poses[hi, :3] - poses[lo, :3])
    rot = quat_slerp(poses[lo, 3:], poses[hi, 3:], w)
    return torch.cat((trans, rot), dim=-1).to(dtype)


def resample_to_fps(times: torch.Tensor, fps: float) -> torch.Tensor:
    """Uniform sample times (S,) at ``fps`` from ``times[0]`` up to ``times[-1]`` (inclusive on the grid)."""
    times = _check_times("times", times)
    fps = check_positive("fps", fps)
    duration = float(times[-1] - times[0])
    n = int(torch.floor(torch.tensor(duration * fps + 1e-9)).item()) + 1
    return times[0] + torch.arange(n, dtype=torch.float64) / fps


def resample_poses(times: torch.Tensor, poses: torch.Tensor, fps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample a pose trajectory to a frame rate. Returns ``(new_times (S,), new_poses (S, 7))``."""
    new_times = resample_to_fps(times, fps)
    return new_times, interpolate_poses(times, poses, new_times)


def resample_indices(num_source: int, num_target: int) -> torch.Tensor:
    """Indices (num_target,) into a sequence of ``num_source`` frames, evenly spread, that always
    keep the first and the last frame (LOME-style temporal resampling of a clip to a fixed length).

    When ``num_target > num_source`` frames repeat; the result is non-decreasing.
    """
    for name, v in (("num_source", num_source), ("num_target", num_target)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"`{name}` must be a positive int, got {v!r}")
    if num_target == 1:
        return torch.zeros(1, dtype=torch.long)
    pos = torch.linspace(0, num_source - 1, num_target, dtype=torch.float64)
    return torch.round(pos).long()


def resample_keep_ends(values: torch.Tensor, num_target: int, quaternion: bool = False) -> torch.Tensor:
    """Resample a sequence (T, ...) to ``num_target`` frames by interpolation at evenly spread
    positions that hit the first and the last frame exactly.

    Args:
        values: (T, D) values (poses (T, 7) when ``quaternion``: slerp on the last 4 entries).
        num_target: frames wanted.
        quaternion: treat ``values[..., 3:7]`` as quaternions (``[t, q]`` poses).
    """
    values = tensor_arg("values", values)
    if values.ndim < 1 or values.shape[0] == 0:
        raise ValueError(f"`values` must have a non-empty first axis, got shape {tuple(values.shape)}")
    if not isinstance(num_target, int) or num_target <= 0:
        raise ValueError(f"`num_target` must be a positive int, got {num_target!r}")
    t = values.shape[0]
    src_times = torch.arange(t, dtype=torch.float64)
    pos = torch.linspace(0, t - 1, num_target, dtype=torch.float64) if num_target > 1 else torch.zeros(1)
    if quaternion:
        if values.shape[-1] != 7 or values.ndim != 2:
            raise ValueError(f"`values` must be (T, 7) poses when quaternion=True, got {tuple(values.shape)}")
        return interpolate_poses(src_times, values, pos)
    if t == 1:
        return values.expand(num_target, *values.shape[1:]).clone()
    hi = torch.searchsorted(src_times, pos, right=False).clamp(1, t - 1)
    lo = hi - 1
    w = (pos - src_times[lo]).to(values.dtype).reshape(-1, *([1] * (values.ndim - 1)))
    return values[lo] + w * (values[hi] - values[lo])


def orbit_viewmats(
    centre: torch.Tensor,
    radius: float,
    height: float,
    num_frames: int,
    start_angle: float = -math.pi / 2,
    sweep: float = math.pi / 2,
    walk_in: float = 0.0,
) -> torch.Tensor:
    """World-to-camera viewmats (T, 4, 4) on an arc around ``centre`` (3,), all looking at it.

    The camera starts at ``start_angle`` (radians about +z; -pi/2 = on the -y side), sweeps
    ``sweep`` radians, stays ``height`` above the centre, and moves ``walk_in`` (a fraction of
    ``radius``) closer over the path (a walk-in).
    """
    from .camera import look_at

    centre = tensor_arg("centre", centre, (3,), dtype=torch.float64)
    check_positive("radius", radius)
    if not isinstance(num_frames, int) or num_frames <= 0:
        raise ValueError(f"`num_frames` must be a positive int, got {num_frames!r}")
    s = torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64)
    ang = start_angle + sweep * s
    r = radius * (1.0 - walk_in * s)
    eye = torch.stack((centre[0] + r * torch.cos(ang), centre[1] + r * torch.sin(ang),
                       centre[2] + torch.full_like(s, height)), dim=-1)  # fmt: skip
    return look_at(eye, centre.expand_as(eye))
