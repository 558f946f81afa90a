"""Camera paths for rendering: ``.npz`` files and default paths from a scene's extent."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..geometry.camera import PinholeIntrinsics
from ..geometry.se3 import pose7_to_viewmat
from ..geometry.trajectory import orbit_viewmats
from .gaussians import GaussianScene

__all__ = ["CameraPath", "default_path", "load_camera_path"]


@dataclass
class CameraPath:
    """C cameras: ``viewmats`` (C, 4, 4) world-to-camera, ``Ks`` (C, 3, 3), image ``width`` x ``height``."""

    viewmats: torch.Tensor
    Ks: torch.Tensor
    width: int
    height: int

    def resized(self, width: int, height: int) -> CameraPath:
        """The same cameras sampled at ``width`` x ``height`` (intrinsics scaled per axis)."""
        Ks = torch.stack([
            PinholeIntrinsics.from_K(K, self.width, self.height).resize(width, height).K(torch.float32)
            for K in self.Ks
        ])  # fmt: skip
        return CameraPath(self.viewmats, Ks, width, height)


def load_camera_path(path: str | os.PathLike[str], fov_y_deg: float = 60.0) -> CameraPath:
    """Read a camera path ``.npz``. Two layouts are accepted:

    - the dexsim trajectory contract: ``camera`` (T, 7) camera-to-world ``[t, q]``, optional
      ``K`` (3, 3) or (T, 3, 3), ``width``, ``height`` (default 256x256 and a 60 degree field of view);
    - the gsplat test layout: ``viewmats`` (C, 4, 4) world-to-camera, ``Ks`` (C, 3, 3), ``width``, ``height``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such camera path file: {p}")
    with np.load(p, allow_pickle=False) as data:
        keys = set(data.files)
        width = int(data["width"]) if "width" in keys else 256
        height = int(data["height"]) if "height" in keys else 256
        if "viewmats" in keys:
            viewmats = torch.from_numpy(np.asarray(data["viewmats"], np.float32))
            k_arr = data["Ks"] if "Ks" in keys else data["K"] if "K" in keys else None
        elif "camera" in keys:
            cam = np.asarray(data["camera"], np.float64)
            if cam.ndim != 2 or cam.shape[1] != 7:
                raise ValueError(f"{p}: `camera` must have shape (T, 7), got {cam.shape}")
            viewmats = pose7_to_viewmat(torch.from_numpy(cam)).float()
            k_arr = data["K"] if "K" in keys else None
        else:
            raise ValueError(f"{p}: expected `camera` (T, 7) or `viewmats` (C, 4, 4), found keys {sorted(keys)}")
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"{p}: `viewmats` must have shape (C, 4, 4), got {tuple(viewmats.shape)}")
    n = viewmats.shape[0]
    if k_arr is None:
        Ks = PinholeIntrinsics.from_fov(fov_y_deg, width, height).K()[None].expand(n, 3, 3)
    else:
        Ks = torch.from_numpy(np.asarray(k_arr, np.float32))
        Ks = Ks[None].expand(n, 3, 3) if Ks.ndim == 2 else Ks
    if Ks.shape != (n, 3, 3):
        raise ValueError(f"{p}: intrinsics must be (3, 3) or ({n}, 3, 3), got {tuple(Ks.shape)}")
    return CameraPath(viewmats.contiguous(), Ks.contiguous(), width, height)


def default_path(
    scene: GaussianScene, num_frames: int = 16, width: int = 256, height: int = 256, fov_y_deg: float = 60.0
) -> CameraPath:
    """A walk-in arc around the robust centre of ``scene`` (z up), sized from its 5-95% extent."""
    lo, hi = scene.bounds(quantile=0.05)
    centre = 0.5 * (lo + hi).double()
    extent = float((hi - lo)[:2].norm())
    vms = orbit_viewmats(centre, radius=0.8 * extent, height=0.45 * extent, num_frames=num_frames,
                         start_angle=-np.pi / 2 - np.pi / 8, sweep=np.pi / 4, walk_in=0.25).float()  # fmt: skip
    K = PinholeIntrinsics.from_fov(fov_y_deg, width, height).K()
    return CameraPath(vms, K[None].expand(num_frames, 3, 3).contiguous(), width, height)
