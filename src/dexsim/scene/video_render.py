"""Render a scene along a camera path into an mp4 and a contact sheet, with progress."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..video import colorize_depth, contact_sheet, write_mp4, write_png
from .camera_path import CameraPath
from .gaussians import GaussianScene
from .render import RenderOutput, render

__all__ = ["render_path", "render_video"]


def render_path(
    scene: GaussianScene, cams: CameraPath, backend: str = "auto", background: tuple[float, float, float] | None = None,
    progress: bool = True, chunk: int = 8,
) -> RenderOutput:  # fmt: skip
    """Render every camera of ``cams`` in chunks (progress bar over frames)."""
    outs = []
    n = cams.viewmats.shape[0]
    with tqdm(total=n, desc="render", unit="frame", disable=not progress) as bar:
        for s in range(0, n, chunk):
            out = render(scene, cams.viewmats[s : s + chunk], cams.Ks[s : s + chunk], cams.width, cams.height,
                         backend=backend, background=background)  # type: ignore[arg-type]  # fmt: skip
            outs.append(out)
            bar.update(out.rgb.shape[0])
    return RenderOutput(torch.cat([o.rgb for o in outs]), torch.cat([o.depth for o in outs]),
                        torch.cat([o.alpha for o in outs]), outs[0].backend)  # fmt: skip


def render_video(
    scene: GaussianScene, cams: CameraPath, out_path: str | os.PathLike[str], fps: float = 8.0,
    backend: str = "auto", background: tuple[float, float, float] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Write ``out_path`` (RGB mp4) and ``<stem>_sheet.png`` (RGB | depth | alpha rows)."""
    t0 = time.perf_counter()
    out = render_path(scene, cams, backend=backend, background=background)
    elapsed = time.perf_counter() - t0
    rgb = out.rgb_uint8().cpu().numpy()
    depth = colorize_depth(out.depth.cpu().numpy(), out.alpha.cpu().numpy() > 0.5)
    alpha = (out.alpha.clamp(0, 1).cpu().numpy()[..., None].repeat(3, -1) * 255 + 0.5).astype(np.uint8)
    out_path = Path(out_path)
    write_mp4(out_path, rgb, fps=fps)
    sheet_path = out_path.with_name(out_path.stem + "_sheet.png")
    write_png(sheet_path, contact_sheet([("rgb", rgb), ("expected depth", depth), ("alpha", alpha)]))
    return {"video": str(out_path), "sheet": str(sheet_path), "frames": int(rgb.shape[0]),
            "fps_render": rgb.shape[0] / elapsed, "backend": out.backend}  # fmt: skip
