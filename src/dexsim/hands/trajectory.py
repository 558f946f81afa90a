"""Hand trajectories: the ``.npz`` contract of DESIGN.md, resampling, smoothing, chunks.

A trajectory file is readable without dexsim (``numpy.load``): ``t`` (T,) seconds, ``joints``
(T, 2, 21, 3) world frame (hand axis: 0 left, 1 right), ``visible`` (T, 2) bool, and optional
``joint_valid`` (T, 2, 21) bool, ``betas`` (2, 10), ``params`` (T, 2, 51), ``camera`` (T, 7)
camera-to-world ``[tx, ty, tz, qw, qx, qy, qz]``, ``K`` (3, 3) with ``width``, ``height``.
Joints of a hand that is not visible are stored as zeros.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write
from ..geometry.rotations import axis_angle_to_quat, quat_slerp, quat_to_axis_angle
from ..geometry.trajectory import interpolate_poses

__all__ = ["HandTrajectory"]


def _check(name: str, arr: np.ndarray | None, shape: tuple[int | None, ...], dtype: type | None = None) -> None:
    if arr is None:
        return
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape, strict=True)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"`{name}` must have shape {want}, got {arr.shape}")
    if dtype is bool and arr.dtype != np.bool_:
        raise ValueError(f"`{name}` must be bool, got {arr.dtype}")


@dataclass
class HandTrajectory:
    """Two hands (and optionally the camera) over T frames. See the module docstring for fields."""

    t: np.ndarray
    joints: np.ndarray
    visible: np.ndarray
    joint_valid: np.ndarray | None = None
    betas: np.ndarray | None = None
    params: np.ndarray | None = None
    camera: np.ndarray | None = None
    K: np.ndarray | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        self.t = np.asarray(self.t, dtype=np.float64)
        self.joints = np.asarray(self.joints, dtype=np.float32)
        self.visible = np.asarray(self.visible)
        n = self.t.shape[0] if self.t.ndim == 1 else -1
        if n <= 0:
            raise ValueError(f"`t` must be a non-empty 1-D array, got shape {self.t.shape}")
        if not np.isfinite(self.t).all():
            raise ValueError(f"`t` must be finite, got {self.t[~np.isfinite(self.t)][0]}")
        if n > 1 and (np.diff(self.t) <= 0).any():
            i = int(np.nonzero(np.diff(self.t) <= 0)[0][0])
            raise ValueError(f"`t` must be strictly increasing, got {self.t[i]} then {self.t[i + 1]} at index {i + 1}")
        _check("joints", self.joints, (n, 2, 21, 3))
        _check("visible", self.visible, (n, 2), bool)
        for name in ("joint_valid", "betas", "params", "camera", "K"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, np.asarray(v, dtype=np.bool_ if name == "joint_valid" else np.float32))
        _check("joint_valid", self.joint_valid, (n, 2, 21), bool)
        _check("betas", self.betas, (2, 10))
        _check("params", self.params, (n, 2, 51))
        _check("camera", self.camera, (n, 7))
        _check("K", self.K, (3, 3))
        if (self.K is None) != (self.width is None) or (self.width is None) != (self.height is None):
            raise ValueError("`K`, `width` and `height` go together: give all three or none")
        seen = self.visible[..., None, None] & np.ones((1, 1, 21, 1), bool)
        if self.joint_valid is not None:
            seen &= self.joint_valid[..., None]
        bad = seen & ~np.isfinite(self.joints)
        if bad.any():
            f, h, j, _ = np.argwhere(bad)[0]
            raise ValueError(f"`joints` must be finite where visible, got {self.joints[f, h, j].tolist()} "
                             f"at frame {f}, hand {h}, joint {j}")  # fmt: skip
        for name in ("params", "camera", "betas"):
            v = getattr(self, name)
            if v is not None and not np.isfinite(v).all():
                raise ValueError(f"`{name}` must be finite")

    # -- basics ------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.t.shape[0])

    def __len__(self) -> int:
        return self.num_frames

    @property
    def duration(self) -> float:
        return float(self.t[-1] - self.t[0])

    def valid_mask(self) -> np.ndarray:
        """(T, 2, 21) joints that are both visible and valid."""
        m = np.repeat(self.visible[..., None], 21, axis=-1)
        return m & self.joint_valid if self.joint_valid is not None else m

    # -- files -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the ``.npz`` atomically (uncompressed arrays, no pickles)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in data.items()})
        return atomic_write(path, lambda p: p.write_bytes(buf.getvalue()))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HandTrajectory:
        """Read a trajectory ``.npz`` (``allow_pickle=False``); unknown keys are refused."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no such trajectory file: {p}")
        try:
            data = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{p}: not a readable .npz file ({exc})") from exc
        with data:
            names = {f.name for f in fields(cls)}
            unknown = set(data.files) - names
            if unknown:
                raise ValueError(f"{p}: unknown keys {sorted(unknown)}; expected a subset of {sorted(names)}")
            missing = {"t", "joints", "visible"} - set(data.files)
            if missing:
                raise ValueError(f"{p}: missing required keys {sorted(missing)}")
            kw = {k: data[k] for k in data.files}
        for k in ("width", "height"):
            if k in kw:
                kw[k] = int(kw[k])
        return cls(**kw)

    # -- edits -------------------------------------------------------------------------------
    def slice(self, start: int, stop: int) -> HandTrajectory:
        """Frames ``[start, stop)``."""
        s = slice(start, stop)
        per_frame = {"t", "joints", "visible", "joint_valid", "params", "camera"}
        kw = {f.name: (getattr(self, f.name)[s] if f.name in per_frame and getattr(self, f.name) is not None
                       else getattr(self, f.name)) for f in fields(self)}  # fmt: skip
        return HandTrajectory(**kw)

    def chunks(self, length: int, stride: int | None = None, drop_last: bool = True) -> list[HandTrajectory]:
        """Consecutive windows of ``length`` frames every ``stride`` frames (default: no overlap)."""
        if length <= 0:
            raise ValueError(f"`length` must be > 0, got {length}")
        stride = stride or length
        if stride <= 0:
            raise ValueError(f"`stride` must be > 0, got {stride}")
        out = []
        for s in range(0, self.num_frames, stride):
            if s + length > self.num_frames and (drop_last or s >= self.num_frames):
                break
            out.append(self.slice(s, min(s + length, self.num_frames)))
        return out

    def resample(self, fps: float, max_gap: float = 0.2) -> HandTrajectory:
        """Resample to ``fps`` from the first to the last time stamp.

        Joints, MANO parameters (rotations by slerp) and the camera are interpolated between the
        two surrounding source frames. A hand is visible at a new frame only when it is visible in
        both surrounding source frames and they are at most ``max_gap`` seconds apart: tracking
        gaps stay gaps and are never bridged.
        """
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"`fps` must be a finite number > 0, got {fps!r}")
        n_new = int(np.floor(self.duration * fps + 1e-9)) + 1
        t_new = self.t[0] + np.arange(n_new) / fps
        if self.num_frames == 1:
            return replace(self, t=t_new[:1])
        hi = np.clip(np.searchsorted(self.t, t_new, side="left"), 1, self.num_frames - 1)
        lo = hi - 1
        exact = np.isclose(self.t[hi], t_new, rtol=0, atol=1e-9)
        lo = np.where(exact, hi, lo)
        w = np.where(exact, 0.0, (t_new - self.t[lo]) / np.maximum(self.t[hi] - self.t[lo], 1e-12))
        close = (self.t[hi] - self.t[lo]) <= max_gap + 1e-9
        vis = self.visible[lo] & self.visible[hi] & close[:, None]
        wj = w[:, None, None, None].astype(np.float32)
        joints = (1 - wj) * self.joints[lo] + wj * self.joints[hi]
        joints = np.where(vis[..., None, None], joints, 0.0).astype(np.float32)
        valid = None
        if self.joint_valid is not None:
            valid = self.joint_valid[lo] & self.joint_valid[hi] & vis[..., None]
        params = None
        if self.params is not None:
            params = self._interp_params(lo, hi, w)
        camera = None
        if self.camera is not None:
            camera = interpolate_poses(torch.from_numpy(self.t), torch.from_numpy(self.camera.astype(np.float64)),
                                       torch.from_numpy(t_new)).numpy().astype(np.float32)  # fmt: skip
        return replace(self, t=t_new, joints=joints, visible=vis, joint_valid=valid, params=params, camera=camera)

    def _interp_params(self, lo: np.ndarray, hi: np.ndarray, w: np.ndarray) -> np.ndarray:
        p0 = torch.from_numpy(self.params[lo].astype(np.float64))
        p1 = torch.from_numpy(self.params[hi].astype(np.float64))
        n = p0.shape[0]
        r0, r1 = p0[..., :48].reshape(n, 2, 16, 3), p1[..., :48].reshape(n, 2, 16, 3)
        wt = torch.from_numpy(w)[:, None, None].expand(n, 2, 16)
        rot = quat_to_axis_angle(quat_slerp(axis_angle_to_quat(r0), axis_angle_to_quat(r1), wt))
        tr = p0[..., 48:] + torch.from_numpy(w)[:, None, None] * (p1[..., 48:] - p0[..., 48:])
        return torch.cat((rot.reshape(n, 2, 48), tr), -1).numpy().astype(np.float32)

    def smooth(self, sigma_frames: float = 1.0) -> HandTrajectory:
        """Gaussian smoothing of the joints over time, within each run of visible frames
        (a run never borrows from the other side of a gap)."""
        if sigma_frames <= 0:
            return self
        radius = int(np.ceil(3 * sigma_frames))
        kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
        out = self.joints.copy()
        for h in range(2):
            vis = self.visible[:, h]
            t = 0
            while t < self.num_frames:
                if not vis[t]:
                    t += 1
                    continue
                end = t
                while end < self.num_frames and vis[end]:
                    end += 1
                run = self.joints[t:end, h].astype(np.float64)
                acc = np.zeros_like(run)
                norm = np.zeros(len(run))
                for k, wk in zip(range(-radius, radius + 1), kernel, strict=True):
                    src = np.clip(np.arange(len(run)) + k, -1, len(run))
                    ok = (src >= 0) & (src < len(run))
                    acc[ok] += wk * run[src[ok]]
                    norm[ok] += wk
                out[t:end, h] = (acc / norm[:, None, None]).astype(np.float32)
                t = end
        return replace(self, joints=out)
