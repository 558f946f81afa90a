"""Pinhole cameras (OpenCV convention: x right, y down, z forward), projection, rays.

Pixel centres are at integer + 0.5 coordinates (the gsplat / 3DGS convention): the
centre of pixel (row i, column j) is ``(u, v) = (j + 0.5, i + 0.5)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._validate import check_positive, tensor_arg
from .se3 import make_se3, se3_inverse, transform_points

__all__ = [
    "PinholeIntrinsics",
    "in_frustum",
    "look_at",
    "pixel_rays",
    "plucker_rays",
    "project_points",
    "unproject_depth",
]


@dataclass(frozen=True)
class PinholeIntrinsics:
    """Pinhole intrinsics with an image size.

    Args:
        fx, fy: focal lengths in pixels (> 0).
        cx, cy: principal point in pixels.
        width, height: image size in pixels (> 0).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        check_positive("fx", self.fx)
        check_positive("fy", self.fy)
        for name in ("cx", "cy"):
            v = getattr(self, name)
            if not math.isfinite(v):
                raise ValueError(f"`{name}` must be finite, got {v!r}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")

    @classmethod
    def from_K(cls, K: torch.Tensor, width: int, height: int) -> PinholeIntrinsics:
        """From a 3x3 intrinsic matrix (zero skew) and an image size."""
        K = tensor_arg("K", K, (3, 3), dtype=torch.float64)
        if K.ndim != 2:
            raise ValueError(f"`K` must be a single (3, 3) matrix, got shape {tuple(K.shape)}")
        if abs(float(K[0, 1])) > 1e-9:
            raise ValueError(f"`K` must have zero skew, got K[0, 1] = {float(K[0, 1])}")
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height))

    @classmethod
    def from_fov(cls, fov_y_deg: float, width: int, height: int) -> PinholeIntrinsics:
        """Square pixels, centred principal point, vertical field of view in degrees (0, 180)."""
        if not 0 < fov_y_deg < 180:
            raise ValueError(f"`fov_y_deg` must be in (0, 180), got {fov_y_deg!r}")
        f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
        return cls(f, f, width / 2, height / 2, width, height)

    def K(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        """The 3x3 intrinsic matrix."""
        return torch.tensor(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=dtype, device=device
        )

    @property
    def fov_y(self) -> float:
        """Vertical field of view in radians."""
        return 2 * math.atan(0.5 * self.height / self.fy)

    @property
    def fov_x(self) -> float:
        """Horizontal field of view in radians."""
        return 2 * math.atan(0.5 * self.width / self.fx)

    def resize(self, width: int, height: int) -> PinholeIntrinsics:
        """The same camera sampled on a ``width`` x ``height`` grid (each axis scaled independently)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"resize target must be positive, got width={width!r}, height={height!r}")
        sx, sy = width / self.width, height / self.height
        return PinholeIntrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, int(width), int(height))

    def crop(self, left: int, top: int, width: int, height: int) -> PinholeIntrinsics:
        """The camera of the pixel window ``[left, left+width) x [top, top+height)``."""
        if left < 0 or top < 0 or width <= 0 or height <= 0:
            raise ValueError(f"crop window must be non-negative and non-empty, got {(left, top, width, height)}")
        if left + width > self.width or top + height > self.height:
            raise ValueError(f"crop window {(left, top, width, height)} exceeds the image {self.width}x{self.height}")
        return PinholeIntrinsics(self.fx, self.fy, self.cx - left, self.cy - top, int(width), int(height))


def look_at(
    eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | tuple[float, float, float] = (0.0, 0.0, 1.0)
) -> torch.Tensor:
    """World-to-camera viewmats (..., 4, 4) for cameras at ``eye`` looking at ``target``.

    OpenCV convention: the camera's +z points at the target, +y points "down" (against ``up``).

    Args:
        eye, target: (..., 3) world positions.
        up: (3,) or (..., 3) world up direction (default +z, the dexsim world convention).
    """
    eye = tensor_arg("eye", eye, (3,))
    target = tensor_arg("target", target, (3,), dtype=eye.dtype)
    up = tensor_arg("up", up, (3,), dtype=eye.dtype)
    forward = target - eye
    fn = forward.norm(dim=-1, keepdim=True)
    if bool((fn < 1e-12).any()):
        raise ValueError("`eye` and `target` must differ")
    z = forward / fn
    x = torch.cross(z, up.expand_as(z), dim=-1)
    xn = x.norm(dim=-1, keepdim=True)
    if bool((xn < 1e-9).any()):
        raise ValueError(f"`up` {up.tolist()} must not be parallel to the viewing direction")
    x = x / xn
    y = torch.cross(z, x, dim=-1)
    cam_to_world = make_se3(torch.stack((x, y, z), dim=-1), eye)
    return se3_inverse(cam_to_world)


def project_points(points: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project world points into pixels.

    Args:
        points: (..., N, 3) world points.
        viewmat: (..., 4, 4) world-to-camera.
        K: (..., 3, 3) intrinsics.
    Returns:
        uv: (..., N, 2) pixel coordinates (meaningless where ``depth <= 0``).
        depth: (..., N) camera-space z.
    """
    K = tensor_arg("K", K, (3, 3))
    cam = transform_points(viewmat, points)
    z = cam[..., 2]
    safe = torch.where(z.abs() < 1e-12, torch.full_like(z, 1e-12), z)
    u = K[..., None, 0, 0] * cam[..., 0] / safe + K[..., None, 0, 2]
    v = K[..., None, 1, 1] * cam[..., 1] / safe + K[..., None, 1, 2]
    return torch.stack((u, v), dim=-1), z


def in_frustum(
    points: torch.Tensor,
    viewmat: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    near: float = 0.01,
    far: float = 1e10,
    margin: float = 0.0,
) -> torch.Tensor:
    """Boolean mask (..., N): points in front of the camera within ``[near, far]`` and inside
    the image enlarged by ``margin`` (a fraction of its size on each side)."""
    uv, z = project_points(points, viewmat, K)
    mx, my = margin * width, margin * height
    return (
        (z >= near) & (z <= far)
        & (uv[..., 0] >= -mx) & (uv[..., 0] <= width + mx)
        & (uv[..., 1] >= -my) & (uv[..., 1] <= height + my)
    )  # fmt: skip


def pixel_rays(viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through pixel centres, in the world frame.

    Returns:
        origins: (..., H, W, 3) camera centres.
        directions: (..., H, W, 3) unit directions.
    """
    viewmat = tensor_arg("viewmat", viewmat, (4, 4))
    K = tensor_arg("K", K, (3, 3), dtype=viewmat.dtype)
    dev, dt = viewmat.device, viewmat.dtype
    v, u = torch.meshgrid(
        torch.arange(height, dtype=dt, device=dev) + 0.5,
        torch.arange(width, dtype=dt, device=dev) + 0.5,
        indexing="ij",
    )
    fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]
    cx, cy = K[..., 0, 2, None, None], K[..., 1, 2, None, None]
    d_cam = torch.stack(((u - cx) / fx, (v - cy) / fy, torch.ones_like(u).expand_as((u - cx) / fx)), dim=-1)
    cam_to_world = se3_inverse(viewmat)
    R = cam_to_world[..., None, None, :3, :3]
    d_world = (R @ d_cam[..., None])[..., 0]
    d_world = d_world / d_world.norm(dim=-1, keepdim=True)
    origins = cam_to_world[..., None, None, :3, 3].expand_as(d_world)
    return origins, d_world


def plucker_rays(viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Plücker ray embedding per pixel (..., H, W, 6): unit direction ``d`` and moment ``o x d``.

    The moment does not depend on which point of the ray is taken as origin.
    """
    o, d = pixel_rays(viewmat, K, width, height)
    return torch.cat((d, torch.cross(o, d, dim=-1)), dim=-1)


def unproject_depth(depth: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """World points (..., H, W, 3) from z-depth maps (..., H, W) seen by ``viewmat``/``K``."""
    depth = tensor_arg("depth", depth, (None, None))
    h, w = depth.shape[-2:]
    viewmat = tensor_arg("viewmat", viewmat, (4, 4), dtype=depth.dtype)
    K = tensor_arg("K", K, (3, 3), dtype=depth.dtype)
    v, u = torch.meshgrid(
        torch.arange(h, dtype=depth.dtype) + 0.5, torch.arange(w, dtype=depth.dtype) + 0.5, indexing="ij"
    )
    x = (u - K[..., 0, 2, None, None]) / K[..., 0, 0, None, None] * depth
    y = (v - K[..., 1, 2, None, None]) / K[..., 1, 1, None, None] * depth
    cam = torch.stack((x, y, depth), dim=-1)
    c2w = se3_inverse(viewmat)
    return (c2w[..., None, None, :3, :3] @ cam[..., None])[..., 0] + c2w[..., None, None, :3, 3]
