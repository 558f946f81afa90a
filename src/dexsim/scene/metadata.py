"""Scene metadata for user-brought captures: a JSON sidecar beside the ``.ply``.

Captures come in arbitrary frames and units (COLMAP-style y-down, unknown scale). The sidecar
``NAME.dexsim.json`` records how to map the file's frame to the dexsim world (z up, metres):

- ``world_from_file``: 4x4 similarity ``x_world = scale * R x_file + t`` (rotation, uniform
  ``metric_scale``, and a translation that puts the ground at z = 0),
- ``workspace_min`` / ``workspace_max``: an axis-aligned box in the world frame,
- ``start_camera``: default camera-to-world pose ``[tx, ty, tz, qw, qx, qy, qz]`` in the world frame.

``estimate_metadata`` guesses these (the dominant plane as the ground, robust bounds), and
marks each guess so that the user knows what to correct.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._io import write_json
from ..geometry.camera import look_at
from ..geometry.se3 import viewmat_to_pose7
from .gaussians import GaussianScene

__all__ = [
    "SceneMetadata",
    "estimate_metadata",
    "fit_ground_plane",
    "metadata_from_surface",
    "read_metadata",
    "sidecar_path",
    "write_metadata",
]

SIDECAR_SUFFIX = ".dexsim.json"


@dataclass
class SceneMetadata:
    """See the module docstring. ``estimated`` lists the fields that were guessed, not measured."""

    up_file: tuple[float, float, float]
    metric_scale: float
    world_from_file: list[list[float]]
    workspace_min: tuple[float, float, float]
    workspace_max: tuple[float, float, float]
    start_camera: tuple[float, ...]
    estimated: list[str] = field(default_factory=list)
    notes: str = ""

    def __post_init__(self) -> None:
        # JSON gives lists: hold tuples so that a read sidecar equals the written one
        for name in ("up_file", "workspace_min", "workspace_max", "start_camera"):
            setattr(self, name, tuple(float(x) for x in getattr(self, name)))
        self.world_from_file = [[float(x) for x in row] for row in self.world_from_file]
        if not (
            isinstance(self.metric_scale, (int, float)) and math.isfinite(self.metric_scale) and self.metric_scale > 0
        ):
            raise ValueError(f"`metric_scale` must be a finite number > 0, got {self.metric_scale!r}")
        m = np.asarray(self.world_from_file, dtype=np.float64)
        if m.shape != (4, 4) or not np.isfinite(m).all():
            raise ValueError(f"`world_from_file` must be a finite 4x4 matrix, got shape {m.shape}")
        if len(self.start_camera) != 7:
            raise ValueError(f"`start_camera` must be 7 numbers [t, q], got {len(self.start_camera)}")
        lo, hi = np.asarray(self.workspace_min), np.asarray(self.workspace_max)
        if lo.shape != (3,) or hi.shape != (3,) or not (lo < hi).all():
            raise ValueError(f"`workspace_min` {self.workspace_min} must be below `workspace_max` {self.workspace_max}")

    def world_from_file_tensor(self) -> torch.Tensor:
        return torch.tensor(self.world_from_file, dtype=torch.float64)

    def file_viewmat(self, world_viewmat: torch.Tensor) -> tuple[torch.Tensor, float]:
        """A world-frame viewmat (..., 4, 4) as a viewmat of the file's frame, and the factor that
        turns file-frame depths into metres. The camera stays rigid: the scale goes into its position."""
        wf = self.world_from_file_tensor().to(world_viewmat.dtype)
        s = self.metric_scale
        rot = wf[:3, :3] / s
        out = world_viewmat.clone()
        out[..., :3, :3] = world_viewmat[..., :3, :3] @ rot
        out[..., :3, 3] = (world_viewmat[..., :3, :3] @ wf[:3, 3] + world_viewmat[..., :3, 3]) / s
        return out, s


def sidecar_path(scene_path: str | os.PathLike[str]) -> Path:
    p = Path(scene_path)
    return p.with_name(p.stem + SIDECAR_SUFFIX)


def write_metadata(meta: SceneMetadata, path: str | os.PathLike[str]) -> Path:
    return write_json(path, asdict(meta))


def read_metadata(path: str | os.PathLike[str]) -> SceneMetadata:
    """Read a sidecar; unknown keys are refused so that typos do not pass silently."""
    data = json.loads(Path(path).read_text())
    known = set(SceneMetadata.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}")
    try:
        return SceneMetadata(**data)
    except TypeError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def fit_ground_plane(
    points: np.ndarray, rng: np.random.Generator, iterations: int = 300, threshold: float | None = None
) -> tuple[np.ndarray, float, float]:
    """RANSAC for the dominant plane ``n . x + d = 0``.

    Returns ``(unit normal (3,), d, inlier fraction)``; the normal points to the side that holds
    most of the other points (above the ground).
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 3:
        raise ValueError(f"need at least 3 points to fit a plane, got {len(pts)}")
    if threshold is None:
        lo, hi = np.percentile(pts, [2, 98], axis=0)
        threshold = 0.01 * float(np.linalg.norm(hi - lo))
    best = (np.array([0.0, 0.0, 1.0]), 0.0, -1.0)
    for _ in range(iterations):
        a, b, c = pts[rng.choice(len(pts), 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-12:
            continue
        n /= norm
        d = -float(n @ a)
        frac = float((np.abs(pts @ n + d) < threshold).mean())
        if frac > best[2]:
            best = (n, d, frac)
    n, d, frac = best
    if (pts @ n + d).mean() < 0:  # most of the scene above the ground
        n, d = -n, -d
    return n, d, frac


def _rotation_to_z(up: np.ndarray) -> np.ndarray:
    """A rotation matrix taking ``up`` to +z (the smallest such rotation)."""
    u = up / np.linalg.norm(up)
    z = np.array([0.0, 0.0, 1.0])
    v = np.cross(u, z)
    s, c = np.linalg.norm(v), float(u @ z)
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx * ((1 - c) / s**2)


def estimate_metadata(scene: GaussianScene, metric_scale: float = 1.0, seed: int = 0) -> SceneMetadata:
    """Guess the ground plane (up axis), workspace box and a start camera of a captured scene.

    The metric scale cannot be measured from the splat alone: it is taken from ``metric_scale``
    (default 1: file units are metres) and marked as estimated.
    """
    rng = np.random.default_rng(seed)
    means = scene.means.double().numpy()
    sample = means[rng.choice(len(means), min(len(means), 20000), replace=False)]
    n, d, frac = fit_ground_plane(sample, rng)
    rot = _rotation_to_z(n)
    # ground to z = 0: a point on the plane is -d n
    world = metric_scale * (sample @ rot.T)
    ground_z = metric_scale * float((rot @ (-d * n))[2])
    world[:, 2] -= ground_z
    wf = np.eye(4)
    wf[:3, :3] = metric_scale * rot
    wf[2, 3] = -ground_z
    lo, hi = np.percentile(world, [2, 98], axis=0)
    lo[2] = max(lo[2], 0.0)
    hi[2] = max(hi[2], lo[2] + 1e-3)
    centre = 0.5 * (lo + hi)
    extent = float(np.linalg.norm(hi[:2] - lo[:2]))
    eye = centre + np.array([0.0, -0.45 * extent, 0.35 * extent])
    vm = look_at(torch.tensor(eye), torch.tensor(centre))
    start = viewmat_to_pose7(vm).tolist()
    notes = (f"ground plane from RANSAC over {len(sample)} Gaussians ({100 * frac:.1f}% inliers); "
             "metric_scale assumed, not measured: correct it if the file's units are not metres")  # fmt: skip
    return SceneMetadata(
        up_file=tuple(float(x) for x in n), metric_scale=float(metric_scale), world_from_file=wf.tolist(),
        workspace_min=tuple(float(x) for x in lo), workspace_max=tuple(float(x) for x in hi),
        start_camera=tuple(float(x) for x in start),
        estimated=["up_file", "metric_scale", "world_from_file", "workspace_min", "workspace_max", "start_camera"],
        notes=notes,
    )  # fmt: skip


def _yaw_to_forward(rot: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """``rot`` (3, 3) followed by the turn about z that points the camera of ``quat`` (w-first, OpenCV axes:
    z forward, y down) along +y on the ground plane."""
    from ..geometry.rotations import quat_to_matrix

    cam = rot @ quat_to_matrix(torch.from_numpy(quat)).numpy()
    look = cam[:, 2] if np.linalg.norm(cam[:2, 2]) > 1e-6 else -cam[:, 1]  # straight down: the image's up
    theta = np.pi / 2 - np.arctan2(look[1], look[0])
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ rot


def metadata_from_surface(meta: SceneMetadata, surface_point: np.ndarray, surface_normal: np.ndarray,
                          start_camera: np.ndarray, half_size: tuple[float, float] = (0.35, 0.3),
                          reach: float = 0.45) -> SceneMetadata:  # fmt: skip
    """The metadata a person set by looking at the scene, all given in ``meta``'s world frame: the working
    surface (a point on it and its normal, which becomes the up direction), the head's start pose (7,)
    camera-to-world ``[t, q]``, the workspace's half width/depth on the surface and its ``reach`` above it.
    The new world frame turns the normal to +z about the origin and then about z so that the head looks
    along +y (the env's convention: hands start in front of the head, "forward" is +y; no other move);
    the workspace box sits on the surface around the point; only ``metric_scale`` keeps its estimated
    mark."""
    from ..geometry.rotations import matrix_to_quat, quat_multiply

    normal = np.asarray(surface_normal, np.float64)
    if normal.shape != (3,) or not np.isfinite(normal).all() or np.linalg.norm(normal) < 1e-9:
        raise ValueError(f"`surface_normal` must be a finite non-zero 3-vector, got {surface_normal!r}")
    cam = np.asarray(start_camera, np.float64)
    if cam.shape != (7,) or not np.isfinite(cam).all():
        raise ValueError(f"`start_camera` must be 7 finite numbers [t, q], got {start_camera!r}")
    if min(half_size) <= 0 or reach <= 0:
        raise ValueError(f"`half_size` {half_size} and `reach` {reach} must be > 0")
    if np.linalg.norm(cam[3:]) < 1e-9:
        raise ValueError(f"`start_camera`'s quaternion must be non-zero, got {cam[3:]!r}")
    rot = _yaw_to_forward(_rotation_to_z(normal), cam[3:] / np.linalg.norm(cam[3:]))
    move = np.eye(4)
    move[:3, :3] = rot
    wf = move @ np.asarray(meta.world_from_file, np.float64)
    p = rot @ np.asarray(surface_point, np.float64)
    lo = p - np.array([half_size[0], half_size[1], 0.0])
    hi = p + np.array([half_size[0], half_size[1], reach])
    q = quat_multiply(matrix_to_quat(torch.from_numpy(rot)), torch.from_numpy(cam[3:] / np.linalg.norm(cam[3:])))
    camera = np.concatenate((rot @ cam[:3], q.numpy()))
    file_rot = np.asarray(meta.world_from_file, np.float64)[:3, :3] / meta.metric_scale
    up_file = file_rot.T @ (normal / np.linalg.norm(normal))
    return SceneMetadata(
        up_file=tuple(float(x) for x in up_file), metric_scale=meta.metric_scale, world_from_file=wf.tolist(),
        workspace_min=tuple(float(x) for x in lo), workspace_max=tuple(float(x) for x in hi),
        start_camera=tuple(float(x) for x in camera),
        estimated=[f for f in meta.estimated if f == "metric_scale"],
        notes="working surface, up direction and start head pose set by hand in dexsim play",
    )  # fmt: skip
