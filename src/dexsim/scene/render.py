"""Rendering a ``GaussianScene``: the standard 3DGS image formation, on the CPU or through gsplat.

Image formation (the same as gsplat's classic mode, so the two backends agree):

1. EWA projection of each 3D covariance ``R S S^T R^T`` with the perspective Jacobian (the
   Gaussian's camera-space direction clamped to 1.3x the field of view), plus ``eps2d`` on the
   2D diagonal; with ``antialiased=True`` opacities are scaled by ``sqrt(det / det_blurred)``.
2. Culling: centre outside ``[near, far]``, degenerate covariance, opacity below 1/255, or an
   opacity-aware bounding box (``min(3.33, sqrt(2 ln(255 o)))`` sigmas) outside the image.
3. Colour from spherical harmonics (degree 0-3) in the viewing direction, ``+ 0.5``, clamped at 0.
4. Front-to-back compositing per pixel centre in depth order:
   ``alpha = min(0.999, o exp(-d^T conic d / 2))``, skipped below 1/255, stopping before the
   transmittance would fall to 1e-4. Expected depth = sum(w z) / sum(w).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from .._validate import tensor_arg
from ._world import _world_gaussians
from .gaussians import GaussianScene
from .sh import eval_sh

__all__ = ["ALPHA_THRESHOLD", "ProjectedGaussians", "RenderOutput", "project_gaussians", "rasterize", "render"]

ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4
Backend = Literal["auto", "cpu", "torch", "gsplat"]


@dataclass
class RenderOutput:
    """Rendered images, batched over cameras.

    Attributes:
        rgb: (C, H, W, 3) float32 colours (background composited).
        depth: (C, H, W) float32 expected z-depth, 0 where nothing was hit.
        alpha: (C, H, W) float32 accumulated opacity in [0, 1].
        backend: the backend that rendered ("cpu" or "gsplat").
        masked_depth: (C, H, W) float32 depth of the ``depth_mask`` Gaussians alone (when one was given).
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    alpha: torch.Tensor
    backend: str
    masked_depth: torch.Tensor | None = None

    def rgb_uint8(self) -> torch.Tensor:
        """(C, H, W, 3) uint8 colours (the dexsim video convention)."""
        return (self.rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


@dataclass
class ProjectedGaussians:
    """Per-camera 2D Gaussians that survived culling, sorted front to back.

    Attributes (M = number kept):
        means2d: (M, 2) pixel centres; conics: (M, 3) inverse 2D covariance (a, b, c);
        opacities: (M,); depths: (M,) camera z; colors: (M, 3); radii: (M, 2) int pixel extents;
        ids: (M,) indices into the scene's Gaussians.
    """

    means2d: torch.Tensor
    conics: torch.Tensor
    opacities: torch.Tensor
    depths: torch.Tensor
    colors: torch.Tensor
    radii: torch.Tensor
    ids: torch.Tensor


def project_gaussians(
    scene: GaussianScene,
    viewmat: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    object_poses: torch.Tensor | None = None,
    antialiased: bool = False,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    _world: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None,
) -> ProjectedGaussians:
    """Project one camera's view of ``scene`` (``viewmat`` (4, 4) world-to-camera, ``K`` (3, 3))."""
    means, rs, obj_rot = _world if _world is not None else _world_gaussians(scene, object_poses)
    dt = means.dtype
    R, t = viewmat[:3, :3].to(dt), viewmat[:3, 3].to(dt)
    fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    mc = means @ R.T + t
    z = mc[:, 2]
    keep = (z >= near_plane) & (z <= far_plane)
    idx = torch.nonzero(keep)[:, 0]
    mc, z = mc[idx], z[idx]
    x, y = mc[:, 0], mc[:, 1]
    # perspective Jacobian with the direction clamped to 1.3x the field of view (as 3DGS/gsplat)
    tan_fx, tan_fy = 0.5 * width / fx, 0.5 * height / fy
    lim_xp, lim_xn = (width - cx) / fx + 0.3 * tan_fx, cx / fx + 0.3 * tan_fx
    lim_yp, lim_yn = (height - cy) / fy + 0.3 * tan_fy, cy / fy + 0.3 * tan_fy
    rz = 1.0 / z
    tx = z * (x * rz).clamp(-lim_xn, lim_xp)
    ty = z * (y * rz).clamp(-lim_yn, lim_yp)
    # J R (RS): rows of the 2x3 Jacobian applied to the camera-space factor
    w_cam = R @ rs[idx]  # (M, 3, 3) camera-space R S
    row0 = fx * rz[:, None] * w_cam[:, 0] - (fx * tx * rz * rz)[:, None] * w_cam[:, 2]
    row1 = fy * rz[:, None] * w_cam[:, 1] - (fy * ty * rz * rz)[:, None] * w_cam[:, 2]
    a = (row0 * row0).sum(-1)
    b = (row0 * row1).sum(-1)
    c = (row1 * row1).sum(-1)
    det_orig = a * c - b * b
    a, c = a + eps2d, c + eps2d
    det = a * c - b * b
    opac = scene.opacities[idx]
    if antialiased:
        opac = opac * torch.sqrt((det_orig / det).clamp_min(0.0))
    ok = (det > 0) & (opac >= ALPHA_THRESHOLD)
    extend = torch.sqrt(2.0 * torch.log(opac.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)).clamp(max=3.33)
    rx = torch.ceil(extend * torch.sqrt(a.clamp_min(0)))
    ry = torch.ceil(extend * torch.sqrt(c.clamp_min(0)))
    mx = fx * x * rz + cx
    my = fy * y * rz + cy
    ok &= (rx > 0) | (ry > 0)
    ok &= ~((mx + rx <= 0) | (mx - rx >= width) | (my + ry <= 0) | (my - ry >= height))
    sel = torch.nonzero(ok)[:, 0]
    det_s = det[sel]
    conics = torch.stack((c[sel] / det_s, -b[sel] / det_s, a[sel] / det_s), dim=-1)
    ids = idx[sel]
    # colours: SH in the viewing direction (in the object's own frame when it was moved)
    campos = -(R.T @ t)
    dirs = means[ids] - campos
    if obj_rot is not None and scene.sh_degree > 0:
        dirs = (obj_rot[ids] @ dirs[:, :, None])[:, :, 0]
    colors = eval_sh(scene.sh[ids], dirs)
    depths = z[sel]
    order = torch.argsort(depths, stable=True)
    return ProjectedGaussians(
        means2d=torch.stack((mx[sel], my[sel]), -1)[order],
        conics=conics[order],
        opacities=opac[sel][order],
        depths=depths[order],
        colors=colors[order],
        radii=torch.stack((rx[sel], ry[sel]), -1).to(torch.int32)[order],
        ids=ids[order],
    )


def _pixel_pairs(proj: ProjectedGaussians, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All (Gaussian, pixel) pairs with alpha >= 1/255, Gaussian-major in depth order.

    Returns ``(gaussian index (P,), pixel index (P,), alpha (P,))``.
    """
    mx, my = proj.means2d[:, 0], proj.means2d[:, 1]
    rx, ry = proj.radii[:, 0].to(mx.dtype), proj.radii[:, 1].to(mx.dtype)
    # pixel centres j + 0.5 inside [m - r, m + r]
    x0 = torch.ceil(mx - rx - 0.5).clamp(0, width).long()
    x1 = (torch.floor(mx + rx - 0.5).clamp(-1, width - 1) + 1).long()
    y0 = torch.ceil(my - ry - 0.5).clamp(0, height).long()
    y1 = (torch.floor(my + ry - 0.5).clamp(-1, height - 1) + 1).long()
    wx = (x1 - x0).clamp_min(0)
    wy = (y1 - y0).clamp_min(0)
    counts = wx * wy
    dev = mx.device
    gid = torch.repeat_interleave(torch.arange(len(counts), device=dev), counts)
    start = torch.cumsum(counts, 0) - counts
    local = torch.arange(gid.numel(), device=dev) - start[gid]
    wxg = wx[gid]
    dy = torch.div(local, wxg, rounding_mode="floor")
    px = x0[gid] + (local - dy * wxg)
    py = y0[gid] + dy
    dxf = mx[gid] - (px.to(mx.dtype) + 0.5)
    dyf = my[gid] - (py.to(my.dtype) + 0.5)
    con = proj.conics[gid]
    sigma = 0.5 * (con[:, 0] * dxf * dxf + con[:, 2] * dyf * dyf) + con[:, 1] * dxf * dyf
    alpha = (proj.opacities[gid] * torch.exp(-sigma)).clamp(max=MAX_ALPHA)
    keep = torch.nonzero((sigma >= 0) & (alpha >= ALPHA_THRESHOLD))[:, 0]
    return gid[keep], (py * width + px)[keep], alpha[keep]


def rasterize(
    proj: ProjectedGaussians, width: int, height: int, background: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite projected Gaussians front to back. Returns rgb (H, W, 3), depth (H, W), alpha (H, W)."""
    hw = width * height
    dt = proj.means2d.dtype
    gid, pix, alpha = _pixel_pairs(proj, width, height)
    # per-pixel lists in depth order: pairs are Gaussian-major in depth order, so a stable
    # sort by pixel keeps depth order within each pixel
    pix, order = torch.sort(pix, stable=True)
    gid, alpha = gid[order], alpha[order]
    # exclusive transmittance per pixel from a segmented sum of log(1 - alpha) (float64: long sums)
    log1m = torch.log1p(-alpha.double())
    incl = torch.cumsum(log1m, 0)
    counts = torch.bincount(pix, minlength=hw)
    first = torch.cumsum(counts, 0) - counts
    base = (incl - log1m)[first.clamp(max=max(len(incl) - 1, 0))][pix] if len(incl) else incl
    log_t_after = incl - base
    log_t_before = log_t_after - log1m
    weight = torch.where(log_t_after > math.log(MIN_TRANSMITTANCE), alpha.double() * torch.exp(log_t_before), 0.0)
    weight = weight.to(dt)
    dev = proj.means2d.device
    rgb = torch.zeros(hw, 3, dtype=dt, device=dev).index_add_(0, pix, weight[:, None] * proj.colors[gid])
    acc = torch.zeros(hw, dtype=dt, device=dev).index_add_(0, pix, weight)
    dep = torch.zeros(hw, dtype=dt, device=dev).index_add_(0, pix, weight * proj.depths[gid])
    if background is not None:
        rgb = rgb + (1.0 - acc)[:, None] * background.to(dt)
    depth = torch.where(acc > 1e-10, dep / acc.clamp_min(1e-10), torch.zeros_like(dep))
    return rgb.reshape(height, width, 3), depth.reshape(height, width), acc.reshape(height, width)


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in ("auto", "cpu", "torch", "gsplat"):
        raise ValueError(f"`backend` must be 'auto', 'cpu', 'torch' or 'gsplat', got {backend!r}")
    if backend == "auto":
        if device.type == "cuda":
            from importlib.util import find_spec

            return "gsplat" if find_spec("gsplat") is not None else "torch"
        return "cpu" if device.type == "cpu" else "torch"
    return backend


def _check_cameras(viewmats: object, Ks: object, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0 or v > 16384:
            raise ValueError(f"`{name}` must be an int in [1, 16384], got {v!r}")
    viewmats = tensor_arg("viewmats", viewmats, (4, 4), dtype=torch.float32)
    Ks = tensor_arg("Ks", Ks, (3, 3), dtype=torch.float32)
    if viewmats.ndim == 2:
        viewmats = viewmats[None]
    if Ks.ndim == 2:
        Ks = Ks[None].expand(viewmats.shape[0], 3, 3)
    if viewmats.ndim != 3 or Ks.ndim != 3 or Ks.shape[0] != viewmats.shape[0]:
        raise ValueError(f"`viewmats` (C, 4, 4) and `Ks` (C, 3, 3) must agree, got {tuple(viewmats.shape)} "
                         f"and {tuple(Ks.shape)}")  # fmt: skip
    return viewmats, Ks


def render(
    scene: GaussianScene,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    *,
    backend: Backend = "auto",
    object_poses: torch.Tensor | None = None,
    background: torch.Tensor | tuple[float, float, float] | None = None,
    antialiased: bool = False,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    timings: dict[str, float] | None = None,
    depth_mask: torch.Tensor | None = None,
) -> RenderOutput:
    """Render ``scene`` from C cameras.

    Args:
        scene: the Gaussians (on the device to render on).
        viewmats: (C, 4, 4) or (4, 4) world-to-camera, OpenCV convention.
        Ks: (C, 3, 3) or (3, 3) intrinsics.
        width, height: image size in pixels.
        backend: "cpu" (numba kernels), "torch" (vectorised torch, any device), "gsplat" (CUDA),
            or "auto" (gsplat on CUDA when installed, else "torch" on other devices, "cpu" on the CPU).
        object_poses: (K, 4, 4) or (C, K, 4, 4) rigid motions of objects 1..K (``object_ids``)
            from their rest placement in the scene; identity = unmoved. Background (id 0) stays.
        background: RGB (3,) composited behind the Gaussians (default black).
        antialiased: Mip-Splatting-style opacity compensation of the 2D blur.
        timings: a dict that the "cpu" backend fills with seconds per stage (for benchmarks).
        depth_mask: (N,) bool: also the depth of these Gaussians alone (``masked_depth``; e.g. the fixed part of a
            scene that hides the hands), in the same pass on the "cpu" backend, a second render on the others.
    Returns:
        :class:`RenderOutput` with (C, H, W, ...) tensors.
    """
    viewmats, Ks = _check_cameras(viewmats, Ks, width, height)
    n_cam = viewmats.shape[0]
    dev = scene.means.device
    viewmats, Ks = viewmats.to(dev), Ks.to(dev)
    poses = None
    if object_poses is not None:
        poses = tensor_arg("object_poses", object_poses, (None, 4, 4), dtype=torch.float32, device=dev)
        if poses.ndim == 3:
            poses = poses[None].expand(n_cam, *poses.shape)
        if poses.ndim != 4 or poses.shape[0] != n_cam or poses.shape[1] < scene.num_objects:
            raise ValueError(f"`object_poses` must be ({n_cam}, >= {scene.num_objects}, 4, 4) or "
                             f"(>= {scene.num_objects}, 4, 4), got {tuple(object_poses.shape)}")  # fmt: skip
    bg = None if background is None else tensor_arg("background", background, (3,), dtype=torch.float32, device=dev)
    chosen = _resolve_backend(backend, dev)
    if depth_mask is not None:
        depth_mask = torch.as_tensor(depth_mask, device=dev)
        if depth_mask.dtype != torch.bool or tuple(depth_mask.shape) != (scene.num_gaussians,):
            raise ValueError(f"`depth_mask` must be a ({scene.num_gaussians},) bool tensor, got "
                             f"{tuple(depth_mask.shape)} {depth_mask.dtype}")  # fmt: skip
        if chosen != "cpu":  # one more render of the subset
            out = render(scene, viewmats, Ks, width, height, backend=chosen, object_poses=poses, background=bg,
                         antialiased=antialiased, near_plane=near_plane, far_plane=far_plane, eps2d=eps2d)  # fmt: skip
            sub = render(scene.subset(depth_mask), viewmats, Ks, width, height, backend=chosen, object_poses=poses,
                         antialiased=antialiased, near_plane=near_plane, far_plane=far_plane, eps2d=eps2d)  # fmt: skip
            return RenderOutput(out.rgb, out.depth, out.alpha, out.backend, sub.depth)
    if chosen == "gsplat":
        from .render_gsplat import render_gsplat

        rgb, depth, alpha = render_gsplat(scene, viewmats, Ks, width, height, poses, bg, antialiased,
                                          near_plane, far_plane, eps2d)  # fmt: skip
        return RenderOutput(rgb, depth, alpha, "gsplat")
    if chosen == "cpu":
        if dev.type != "cpu":
            raise ValueError(f"backend 'cpu' renders CPU tensors; the scene is on {dev}: use 'torch' or 'gsplat'")
        from .render_cpu import render_cpu

        rgb, depth, alpha, masked = render_cpu(scene, viewmats, Ks, width, height, poses, bg, antialiased,
                                               near_plane, far_plane, eps2d, timings, depth_mask)  # fmt: skip
        return RenderOutput(rgb, depth, alpha, "cpu", masked)
    rgbs, depths, alphas = [], [], []
    shared = None if poses is not None else _world_gaussians(scene, None)
    for i in range(n_cam):
        world = shared if shared is not None else _world_gaussians(scene, poses[i])  # type: ignore[index]
        proj = project_gaussians(scene, viewmats[i], Ks[i], width, height, antialiased=antialiased,
                                 near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, _world=world)  # fmt: skip
        rgb, depth, alpha = rasterize(proj, width, height, bg)
        rgbs.append(rgb)
        depths.append(depth)
        alphas.append(alpha)
    return RenderOutput(torch.stack(rgbs), torch.stack(depths), torch.stack(alphas), "torch")
