"""The gsplat (CUDA) backend behind the same API as the CPU renderer."""

from __future__ import annotations

import torch

from .._deps import require
from ..geometry.rotations import matrix_to_quat
from ._world import _world_gaussians
from .gaussians import GaussianScene
from .sh import eval_sh


def render_gsplat(
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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render with ``gsplat.rasterization`` (classic or antialiased mode, ``RGB+ED``).

    Static scenes go to gsplat in one batched call with its own SH evaluation. With moving
    objects, each camera is rendered with its moved Gaussians and colours evaluated here in the
    objects' own frames.
    """
    gsplat = require("gsplat", "the CUDA renderer")
    if scene.means.device.type != "cuda":
        raise ValueError(f"backend 'gsplat' needs the scene on a CUDA device, got {scene.means.device}")
    mode = "antialiased" if antialiased else "classic"
    bg = None if background is None else background[None].expand(viewmats.shape[0], 3)
    common = dict(width=width, height=height, near_plane=near_plane, far_plane=far_plane, eps2d=eps2d,
                  render_mode="RGB+ED", rasterize_mode=mode,
                  packed=False)  # gsplat 1.5 rejects per-camera backgrounds in packed mode  # fmt: skip
    quats = scene.quats / scene.quats.norm(dim=-1, keepdim=True)
    if object_poses is None or scene.object_ids is None:
        colors, alphas, _ = gsplat.rasterization(
            scene.means, quats, scene.scales, scene.opacities, scene.sh, viewmats, Ks,
            sh_degree=scene.sh_degree, backgrounds=bg,
            **common,
        )  # fmt: skip
    else:
        outs_c, outs_a = [], []
        for c in range(viewmats.shape[0]):
            means, rs, obj_rot = _world_gaussians(scene, object_poses[c])
            # quaternions of the moved Gaussians: object rotation times the Gaussian's own
            rot = rs / scene.scales[:, None, :]
            q = matrix_to_quat(rot)
            campos = -(viewmats[c, :3, :3].T @ viewmats[c, :3, 3])
            dirs = means - campos
            if obj_rot is not None:
                dirs = (obj_rot @ dirs[:, :, None])[:, :, 0]
            rgb = eval_sh(scene.sh, dirs)
            col, al, _ = gsplat.rasterization(
                means, q, scene.scales, scene.opacities, rgb, viewmats[c : c + 1], Ks[c : c + 1],
                backgrounds=None if bg is None else bg[c : c + 1],
                **common,
            )  # fmt: skip
            outs_c.append(col)
            outs_a.append(al)
        colors, alphas = torch.cat(outs_c), torch.cat(outs_a)
    alpha = alphas[..., 0]
    depth = torch.where(alpha > 1e-10, colors[..., 3], torch.zeros_like(alpha))
    return colors[..., :3].contiguous(), depth, alpha
