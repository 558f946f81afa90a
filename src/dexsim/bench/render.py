"""Renderer benchmark: frames per second (median over repeats) and where the time goes."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..scene.builders import from_point_cloud
from ..scene.camera_path import CameraPath
from ..scene.gaussians import GaussianScene
from ..scene.render import render

__all__ = ["bench_render", "load_points_benchmark"]


def load_points_benchmark(
    path: str | os.PathLike[str], opacity: float = 0.5, max_scale: float = 0.05
) -> tuple[GaussianScene, CameraPath]:
    """The gsplat test layout (``means3d``, ``colors``, ``viewmats``, ``Ks``, ``width``, ``height``)
    as a scene (point-cloud builder: ``opacity``, scale = mean 3-NN distance capped at ``max_scale``)
    and its cameras."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such points file: {p}")
    with np.load(p, allow_pickle=False) as data:
        need = {"means3d", "colors", "viewmats", "Ks", "width", "height"}
        if not need <= set(data.files):
            raise ValueError(f"{p}: missing keys {sorted(need - set(data.files))} of the gsplat test layout")
        scene = from_point_cloud(data["means3d"], data["colors"], opacity=opacity, max_scale=max_scale)
        viewmats = torch.from_numpy(np.asarray(data["viewmats"], np.float32))
        Ks = torch.from_numpy(np.asarray(data["Ks"], np.float32))
        cams = CameraPath(viewmats, Ks, int(data["width"]), int(data["height"]))
    return scene, cams


def _numba_threads() -> int:
    import numba

    return int(numba.get_num_threads())


def bench_render(
    scene: GaussianScene, cams: CameraPath, backend: str = "auto", repeats: int = 7, progress: bool = True
) -> dict[str, Any]:
    """Render every camera ``repeats`` times after one warm-up pass (JIT compilation, caches).

    Returns a JSON-able dict: ``fps_median`` (frames per second, median over repeats),
    ``ms_per_frame`` per repeat, ``num_gaussians``, ``width``, ``height``, ``backend``, and for the
    CPU backend ``stage_ms_per_frame`` (project, sort, colors, bin, composite), the number of
    visible Gaussians, tile entries and Gaussian-pixel evaluations per frame, and ``ns_per_evaluation``:
    compositing time per evaluation per core (composite time x numba threads / evaluations).
    """
    if repeats < 1:
        raise ValueError(f"`repeats` must be >= 1, got {repeats}")
    n_cam = cams.viewmats.shape[0]
    sync = torch.cuda.synchronize if scene.means.device.type == "cuda" else (lambda: None)
    warm = render(scene, cams.viewmats, cams.Ks, cams.width, cams.height, backend=backend)  # type: ignore[arg-type]
    sync()
    per_frame = []
    for _ in tqdm(range(repeats), desc=f"bench render ({warm.backend})", disable=not progress):
        t0 = time.perf_counter()
        render(scene, cams.viewmats, cams.Ks, cams.width, cams.height, backend=backend)  # type: ignore[arg-type]
        sync()
        per_frame.append((time.perf_counter() - t0) / n_cam)
    med = statistics.median(per_frame)
    out: dict[str, Any] = {
        "fps_median": 1.0 / med,
        "ms_per_frame_median": 1e3 * med,
        "ms_per_frame": [1e3 * t for t in per_frame],
        "num_gaussians": scene.num_gaussians,
        "width": cams.width,
        "height": cams.height,
        "num_cameras": n_cam,
        "repeats": repeats,
        "backend": warm.backend,
        "device": torch.cuda.get_device_name() if warm.backend == "gsplat" else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(),
        "alpha_mean": float(warm.alpha.mean()),
    }
    if warm.backend == "cpu":
        timings: dict[str, float] = {}
        render(scene, cams.viewmats, cams.Ks, cams.width, cams.height, backend="cpu", timings=timings)
        stages = ("project", "sort", "colors", "bin", "composite")
        out["stage_ms_per_frame"] = {k: 1e3 * timings[k] / n_cam for k in stages}
        out["visible_gaussians_per_frame"] = timings["visible_gaussians"] / n_cam
        out["tile_entries_per_frame"] = timings["tile_entries"] / n_cam
        out["evaluations_per_frame"] = timings["evaluations"] / n_cam
        out["ns_per_evaluation"] = 1e9 * timings["composite"] * _numba_threads() / max(timings["evaluations"], 1)
    return out
