"""Gaussians in world space: per-object rigid motions applied, shared by the CPU and gsplat renderers."""

from __future__ import annotations

import torch

from ..geometry.rotations import quat_to_matrix
from .gaussians import GaussianScene


def _world_gaussians(
    scene: GaussianScene, object_poses: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """World means (N, 3), rotation-scale factors ``R S`` (N, 3, 3) and, when objects moved, the
    per-Gaussian world-to-object rotation (N, 3, 3) used to evaluate SH in the object's frame."""
    quats = scene.quats / scene.quats.norm(dim=-1, keepdim=True)
    means = scene.means
    obj_rot = None
    if object_poses is not None and scene.object_ids is not None:
        ids = scene.object_ids
        # identity for the background (id 0), then the given motions for objects 1..K
        eye = torch.eye(4, dtype=object_poses.dtype, device=object_poses.device)[None]
        table = torch.cat((eye, object_poses), dim=0)  # (K+1, 4, 4)
        per = table[ids]  # (N, 4, 4)
        rot = per[:, :3, :3].to(means.dtype)
        means = (rot @ means[:, :, None])[:, :, 0] + per[:, :3, 3].to(means.dtype)
        obj_rot = rot.transpose(1, 2)
        rs = rot @ quat_to_matrix(quats)
    else:
        rs = quat_to_matrix(quats)
    rs = rs * scene.scales[:, None, :]
    return means, rs, obj_rot
