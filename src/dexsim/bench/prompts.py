"""Prompt-rendering benchmark on a synthetic two-hand clip in front of a nominal Aria camera."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import numpy as np
import torch

from ..geometry.rotations import matrix_to_axis_angle
from ..geometry.se3 import pose7_to_matrix
from ..hands.importers import nominal_aria_rgb_camera
from ..hands.model import HandModel
from ..hands.prompts import PROMPT_KINDS, render_prompt
from ..hands.render import pose_trajectory
from ..hands.skeleton import ANATOMICAL_FRAMES, joint_limits
from ..hands.trajectory import HandTrajectory

__all__ = ["bench_prompts", "synthetic_clip"]


def synthetic_clip(num_frames: int = 16, seed: int = 0) -> HandTrajectory:
    """Two hands gesturing 35-45 cm in front of a nominal Aria RGB camera (device frame = world)."""
    g = torch.Generator().manual_seed(seed)
    lim = joint_limits(torch.float64)[1:]
    cam = pose7_to_matrix(torch.from_numpy(nominal_aria_rgb_camera()[0]))
    params = torch.zeros(num_frames, 2, 51, dtype=torch.float64)
    models = (HandModel("left", limits="off"), HandModel("right", limits="off"))
    joints = torch.zeros(num_frames, 2, 21, 3, dtype=torch.float64)
    for h in range(2):
        u = torch.rand(2, 15, 3, generator=g, dtype=torch.float64)
        comp = lim[..., 0] * 0.6 + u * (lim[..., 1] - lim[..., 0]) * 0.6
        s = torch.linspace(0, 1, num_frames, dtype=torch.float64)[:, None, None]
        pose = torch.einsum("jab,njb->nja", ANATOMICAL_FRAMES[1:], (1 - s) * comp[0] + s * comp[1]).reshape(-1, 45)
        if h == 0:
            pose = (pose.reshape(-1, 15, 3) * torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64)).reshape(-1, 45)
        # palms towards the camera's down direction, fingers forward, 10 cm to each side
        wrist_cam = torch.tensor([(-0.1 if h == 0 else 0.1), 0.12, 0.3], dtype=torch.float64)
        wrist_cam = (
            wrist_cam + 0.03 * torch.sin(torch.linspace(0, 2 * math.pi, num_frames, dtype=torch.float64))[:, None]
        )
        wrist = wrist_cam @ cam[:3, :3].T + cam[:3, 3]
        # fingers along the camera's +z, the back of the hand towards the camera's -y (up in the image)
        hand_axes = torch.tensor([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64).T
        go = matrix_to_axis_angle(cam[:3, :3] @ hand_axes)
        params[:, h, :3] = go
        params[:, h, 3:48] = pose
        params[:, h, 48:] = wrist
        joints[:, h] = models[h](go.expand(num_frames, 3), pose, wrist, with_mesh=False).joints
    return HandTrajectory(
        t=np.arange(num_frames) / 8.0, joints=joints.float().numpy(), visible=np.ones((num_frames, 2), bool),
        params=params.float().numpy(),
    )  # fmt: skip


def bench_prompts(width: int, height: int, kinds: tuple[str, ...] = PROMPT_KINDS, num_frames: int = 16,
                  repeats: int = 5) -> dict[str, Any]:  # fmt: skip
    """Frames per second (median over repeats) of each prompt kind, posing included."""
    traj = synthetic_clip(num_frames)
    pose, K = nominal_aria_rgb_camera(width, height)
    from ..geometry.se3 import pose7_to_viewmat

    vm = pose7_to_viewmat(torch.from_numpy(pose)).expand(num_frames, 4, 4)
    joints = torch.from_numpy(traj.joints.astype(np.float64))
    vis = torch.from_numpy(traj.visible)
    out: dict[str, Any] = {"width": width, "height": height, "frames": num_frames, "repeats": repeats}
    for kind in kinds:
        times = []
        for r in range(repeats + 1):  # the first run compiles the kernels
            t0 = time.perf_counter()
            if kind == "skeleton":
                p = render_prompt(kind, vm, torch.from_numpy(K), width, height, joints, vis)
            else:
                verts, faces = pose_trajectory(traj)
                p = render_prompt(kind, vm, torch.from_numpy(K), width, height, joints, vis, verts.double(), faces)  # type: ignore[arg-type]
            if r:
                times.append(time.perf_counter() - t0)
        out[f"{kind}_fps_median"] = num_frames / statistics.median(times)
        out[f"{kind}_hand_pixel_fraction"] = float(p.rgb.any(-1).mean())
    return out
