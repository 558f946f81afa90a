"""The CPU backend: drives the numba kernels in :mod:`dexsim.scene._cpu_kernels`."""

from __future__ import annotations

import time

import numpy as np
import torch

from .gaussians import GaussianScene


def _scene_arrays(scene: GaussianScene) -> dict[str, np.ndarray]:
    ids = scene.object_ids if scene.object_ids is not None else torch.zeros(scene.num_gaussians, dtype=torch.long)
    return {
        "means": np.ascontiguousarray(scene.means.detach().cpu().numpy(), dtype=np.float32),
        "quats": np.ascontiguousarray(scene.quats.detach().cpu().numpy(), dtype=np.float32),
        "scales": np.ascontiguousarray(scene.scales.detach().cpu().numpy(), dtype=np.float32),
        "opacities": np.ascontiguousarray(scene.opacities.detach().cpu().numpy(), dtype=np.float32),
        "sh": np.ascontiguousarray(scene.sh.detach().cpu().numpy(), dtype=np.float32),
        "ids": np.ascontiguousarray(ids.cpu().numpy(), dtype=np.int64),
    }


class _Clock:
    """Accumulates stage times into a dict when one is given (no cost otherwise)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into = into
        self.t = 0.0

    def start(self) -> None:
        if self.into is not None:
            self.t = time.perf_counter()

    def lap(self, name: str) -> None:
        if self.into is not None:
            now = time.perf_counter()
            self.into[name] = self.into.get(name, 0.0) + now - self.t
            self.t = now

    def count(self, name: str, value: int) -> None:
        if self.into is not None:
            self.into[name] = self.into.get(name, 0) + value


def render_cpu(
    scene: GaussianScene,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    object_poses: torch.Tensor | None,
    background: torch.Tensor | None,
    antialiased: bool,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    timings: dict[str, float] | None = None,
    depth_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Render C cameras; returns rgb (C, H, W, 3), depth (C, H, W), alpha (C, H, W) float32, and with a
    ``depth_mask`` (N,) bool the depth (C, H, W) of those Gaussians alone, composited in the same pass.

    ``timings``, when given, accumulates seconds per stage (project, sort, colors, bin, composite)
    and counts (visible Gaussians, tile entries, Gaussian-pixel evaluations).
    """
    import numba

    from . import _cpu_kernels as kern

    clock = _Clock(timings)
    arr = _scene_arrays(scene)
    n = scene.num_gaussians
    n_cam = viewmats.shape[0]
    n_obj = scene.num_objects
    rgb = np.zeros((n_cam, height, width, 3), np.float32)
    depth = np.zeros((n_cam, height, width), np.float32)
    alpha = np.zeros((n_cam, height, width), np.float32)
    mask = None if depth_mask is None else depth_mask.detach().cpu().numpy().astype(np.uint8)
    depth2 = np.zeros((n_cam, height, width) if mask is not None else (n_cam, 0, 0), np.float32)
    alpha2 = np.zeros_like(depth2)
    # per-Gaussian outputs of the projection, struct-of-arrays (rows contiguous: the projection vectorises)
    pos = np.zeros((3, n), np.float32)
    factor = np.zeros((9, n), np.float32)
    xy = np.zeros((2, n), np.float32)
    conic = np.zeros((3, n), np.float32)
    opac = np.zeros(n, np.float32)
    sigma_max = np.zeros(n, np.float32)
    z = np.zeros(n, np.float32)
    radii = np.zeros((2, n), np.int32)
    colors = np.zeros((n, 3), np.float32)
    # ln(255 o), rounded once from float64 (finite: zero opacities get a large negative value, culled all the same)
    log_opacity = np.log(np.maximum(arr["opacities"].astype(np.float64), 1e-30) / (1.0 / 255.0)).astype(np.float32)
    vms = viewmats.detach().cpu().numpy().astype(np.float64)
    ks = Ks.detach().cpu().numpy().astype(np.float64)
    table = np.tile(np.eye(4, dtype=np.float32), (n_obj + 1, 1, 1))
    every, moving = np.arange(n), np.flatnonzero(arr["ids"] > 0)  # all Gaussians; those an object pose moves
    bg = np.zeros(3, np.float32) if background is None else background.detach().cpu().numpy().astype(np.float32)
    for c in range(n_cam):
        clock.start()
        if c == 0:
            if object_poses is not None and n_obj > 0:
                table[1:] = object_poses[c, :n_obj].detach().cpu().numpy()
            kern.world_gaussians(arr["means"], arr["quats"], arr["scales"], arr["ids"], table, every, pos, factor)
        elif object_poses is not None and n_obj > 0:
            poses = object_poses[c, :n_obj].detach().cpu().numpy().astype(np.float32)  # compared with the table's
            if not np.array_equal(poses, table[1:]):
                table[1:] = poses
                kern.world_gaussians(arr["means"], arr["quats"], arr["scales"], arr["ids"], table, moving, pos, factor)
        K = ks[c]
        kern.project(
            pos, factor, arr["opacities"], log_opacity, vms[c].astype(np.float32), K[0, 0], K[1, 1], K[0, 2], K[1, 2],
            width, height, near_plane, far_plane, eps2d, antialiased, xy, conic, opac, sigma_max, z, radii,
        )  # fmt: skip
        clock.lap("project")
        order = kern.sort_visible(radii, z)
        clock.lap("sort")
        campos = -vms[c][:3, :3].T @ vms[c][:3, 3]
        kern.sh_colors(arr["sh"], pos, order, campos.astype(np.float32), arr["ids"], table, colors)
        packed, s_radii = kern.pack_sorted(order, xy, radii, conic, opac, sigma_max, z, colors)
        clock.lap("colors")
        threads = numba.get_num_threads()
        offsets, lists = kern.bin_tiles(packed[:, :2], s_radii, width, height, threads)
        tiles = kern.balanced_tile_order(offsets, threads)
        clock.lap("bin")
        evals = np.zeros(len(offsets) - 1, np.int64)
        if mask is None:
            kern.composite(offsets, lists, packed, s_radii, tiles, width, height, bg, rgb[c], depth[c], alpha[c], evals)
        else:
            kern.composite(offsets, lists, packed, s_radii, tiles, width, height, bg, rgb[c], depth[c], alpha[c], evals,
                           mask[order], depth2[c], alpha2[c])  # fmt: skip
        clock.lap("composite")
        clock.count("visible_gaussians", len(order))
        clock.count("tile_entries", len(lists))
        clock.count("evaluations", int(evals.sum()))
    masked = None if mask is None else torch.from_numpy(depth2)
    return torch.from_numpy(rgb), torch.from_numpy(depth), torch.from_numpy(alpha), masked
