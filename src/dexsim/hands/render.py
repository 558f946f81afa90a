"""From a hand trajectory to prompt videos: pose the hands (IK when only joints are known), pick
the camera, render the prompt."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..geometry.camera import PinholeIntrinsics
from ..geometry.se3 import pose7_to_viewmat
from .ik import fit_hand
from .importers import nominal_aria_rgb_camera
from .model import HandModel
from .prompts import HandPrompt, PromptKind, render_prompt
from .trajectory import HandTrajectory

__all__ = ["fit_trajectory", "pose_trajectory", "render_trajectory", "trajectory_cameras"]

SIDES = ("left", "right")


def fit_trajectory(traj: HandTrajectory, fit_shape: bool = True) -> tuple[HandTrajectory, dict]:
    """Fill ``params`` (and ``betas``) by IK on each hand's visible frames (valid joints only).

    Returns the new trajectory and a summary with the per-hand median joint error (metres).
    """
    params = np.zeros((traj.num_frames, 2, 51), np.float32)
    betas = np.zeros((2, 10), np.float32) if traj.betas is None else traj.betas.copy()
    valid = traj.valid_mask()
    summary: dict[str, float | None] = {}
    for h, side in enumerate(SIDES):
        frames = np.nonzero(traj.visible[:, h] & (valid[:, h].sum(-1) >= 3))[0]
        if len(frames) == 0:
            summary[f"{side}_ik_error_median_m"] = None
            continue
        res = fit_hand(torch.from_numpy(traj.joints[frames, h]), side, valid=torch.from_numpy(valid[frames, h]),
                       betas=torch.from_numpy(betas[h]), fit_shape=fit_shape)  # fmt: skip
        params[frames, h] = res.params.numpy()
        betas[h] = res.betas.numpy()
        summary[f"{side}_ik_error_median_m"] = float(res.error.nanmedian())
    visible = traj.visible & (valid.sum(-1) >= 3)
    return replace(traj, params=params, betas=betas, visible=visible), summary


def pose_trajectory(
    traj: HandTrajectory, models: tuple[HandModel, HandModel] | None = None
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Posed hand meshes (T, 2, V, 3) (zeros where a hand is not visible) and (left, right) faces."""
    if traj.params is None:
        raise ValueError("the trajectory has no `params`: fit them first (fit_trajectory)")
    models = models or (HandModel("left", limits="clamp"), HandModel("right", limits="clamp"))
    verts = []
    for h in range(2):
        p = torch.from_numpy(traj.params[:, h].astype(np.float32))
        b = None if traj.betas is None else torch.from_numpy(traj.betas[h].astype(np.float32))
        out = models[h](p[:, :3], p[:, 3:48], p[:, 48:], b)
        verts.append(torch.where(torch.from_numpy(traj.visible[:, h])[:, None, None], out.vertices, 0.0))
    return torch.stack(verts, dim=1), (models[0].faces, models[1].faces)


def trajectory_cameras(traj: HandTrajectory, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Viewmats (T, 4, 4) and K (3, 3) at ``width`` x ``height``.

    The trajectory's own camera when it has one (intrinsics rescaled); otherwise a nominal Aria RGB
    camera at the origin of the world frame (the device frame of an import without a trajectory).
    """
    if traj.camera is not None:
        viewmats = pose7_to_viewmat(torch.from_numpy(traj.camera.astype(np.float64)))
        if traj.K is not None:
            K = PinholeIntrinsics.from_K(torch.from_numpy(traj.K), int(traj.width), int(traj.height))  # type: ignore[arg-type]
            K = K.resize(width, height).K(torch.float64)
        else:
            K = torch.from_numpy(nominal_aria_rgb_camera(width, height)[1])
        return viewmats, K
    pose, K = nominal_aria_rgb_camera(width, height)
    vm = pose7_to_viewmat(torch.from_numpy(pose))
    return vm.expand(traj.num_frames, 4, 4), torch.from_numpy(K)


def render_trajectory(
    traj: HandTrajectory, kind: PromptKind, width: int, height: int, scene_depth: np.ndarray | None = None
) -> HandPrompt:
    """The prompt video of ``traj`` (fits parameters first when a mesh is needed and they are missing)."""
    viewmats, K = trajectory_cameras(traj, width, height)
    joints = torch.from_numpy(traj.joints.astype(np.float64))
    visible = torch.from_numpy(traj.visible)
    valid = None if traj.joint_valid is None else torch.from_numpy(traj.joint_valid)
    if kind == "skeleton":
        return render_prompt(kind, viewmats, K, width, height, joints, visible, joint_valid=valid,
                             scene_depth=scene_depth)  # fmt: skip
    if traj.params is None:
        traj, _ = fit_trajectory(traj)
        visible = torch.from_numpy(traj.visible)
    verts, faces = pose_trajectory(traj)
    return render_prompt(kind, viewmats, K, width, height, joints, visible, verts.double(), faces,
                         scene_depth=scene_depth)  # fmt: skip
