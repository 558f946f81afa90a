"""The forecaster's per-frame state vector, and the geometry it reads images with.

One frame of a two-hand trajectory becomes :data:`STATE_DIM` numbers: for each hand (left, right) its
visibility, wrist translation (3), wrist rotation in the continuous 6D form (6) and the 45 finger
rotations; then the camera centre (3) and rotation (6D). Rotations in 6D keep the state continuous
(axis-angle jumps at pi), so a denoiser can regress it.
"""

from __future__ import annotations

import numpy as np
import torch

from ..geometry.camera import pixel_rays
from ..geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quat,
    matrix_to_rotation_6d,
    quat_to_matrix,
    rotation_6d_to_matrix,
)
from ..geometry.se3 import pose7_to_viewmat
from ..hands.model import HandModel, check_pose_limits

__all__ = [
    "HAND_DIM",
    "KEYPOINTS",
    "STATE_DIM",
    "DecodedStates",
    "decode_states",
    "encode_states",
    "forecast_keypoints",
    "plane_map",
]

HAND_DIM = 55  # visible, transl (3), rot6d (6), hand_pose (45)
CAMERA_DIM = 9  # centre (3), rot6d (6)
STATE_DIM = 2 * HAND_DIM + CAMERA_DIM
#: the 12 keypoints of HandWorld's protocol, per hand: the wrist and the five fingertips (DESIGN.md order)
KEYPOINTS = (0, 16, 17, 18, 19, 20)
_IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def encode_states(params: torch.Tensor, visible: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    """(..., 2, 51) MANO-style parameters, (..., 2) visibility, (..., 7) camera-to-world poses ->
    (..., STATE_DIM). A hidden hand is encoded as zeros with an identity rotation."""
    params, vis = params.float(), visible.float()
    rot = matrix_to_rotation_6d(axis_angle_to_matrix(params[..., :3]))  # (..., 2, 6)
    ident = torch.tensor(_IDENTITY_6D).expand_as(rot)
    shown = vis[..., None] > 0.5
    rot = torch.where(shown, rot, ident)
    hand = torch.cat((vis[..., None], params[..., 48:51], rot, params[..., 3:48]), -1)
    hand = torch.where(
        shown, hand, torch.cat((torch.zeros_like(hand[..., :4]), ident, torch.zeros_like(hand[..., 10:])), -1)
    )
    cam = camera.float()
    cam_rot = matrix_to_rotation_6d(quat_to_matrix(cam[..., 3:7]))
    return torch.cat((hand.flatten(-2), cam[..., :3], cam_rot), -1)


class DecodedStates:
    """A decoded trajectory: ``params`` (..., 2, 51) with finger rotations clamped to the hand's joint
    limits, ``visible`` (..., 2) bool, ``camera`` (..., 7), ``joints`` (..., 2, 21, 3) of the clamped
    pose (zeros for a hidden hand) and ``limit_violation`` (..., 2) bool: the raw prediction lay
    outside the joint limits by more than ``tolerance`` radians somewhere."""

    def __init__(self, params: torch.Tensor, visible: torch.Tensor, camera: torch.Tensor, joints: torch.Tensor,
                 limit_violation: torch.Tensor) -> None:  # fmt: skip
        self.params, self.visible, self.camera = params, visible, camera
        self.joints, self.limit_violation = joints, limit_violation


def _safe_6d(d6: torch.Tensor) -> torch.Tensor:
    """6D rotations made well-conditioned (a degenerate prediction falls back to the identity)."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    bad = (a1.norm(dim=-1) < 1e-6) | (torch.cross(a1, a2, dim=-1).norm(dim=-1) < 1e-6)
    return torch.where(bad[..., None], torch.tensor(_IDENTITY_6D).expand_as(d6), d6)


def decode_states(x: torch.Tensor, tolerance: float = 0.05) -> DecodedStates:
    """(..., STATE_DIM) -> :class:`DecodedStates` (visible when the visibility number is above 0.5)."""
    lead = x.shape[:-1]
    hands = x[..., : 2 * HAND_DIM].reshape(*lead, 2, HAND_DIM).float()
    visible = hands[..., 0] > 0.5
    transl = hands[..., 1:4]
    orient = matrix_to_axis_angle(rotation_6d_to_matrix(_safe_6d(hands[..., 4:10])))
    raw_pose = hands[..., 10:55]
    params = torch.zeros(*lead, 2, 51)
    joints = torch.zeros(*lead, 2, 21, 3)
    violation = torch.zeros(*lead, 2, dtype=torch.bool)
    for h, side in enumerate(("left", "right")):
        pose = check_pose_limits(raw_pose[..., h, :], side, warn=False)
        violation[..., h] = ((pose - raw_pose[..., h, :]).abs() > tolerance).any(-1)
        params[..., h, :3], params[..., h, 3:48], params[..., h, 48:] = orient[..., h, :], pose, transl[..., h, :]
        flat = params[..., h, :].reshape(-1, 51)
        out = HandModel(side, limits="off")(flat[:, :3], flat[:, 3:48], flat[:, 48:], with_mesh=False)
        joints[..., h, :, :] = out.joints.reshape(*lead, 21, 3)
    hidden = ~visible
    params[hidden] = 0.0
    joints[hidden] = 0.0
    violation &= visible
    cam = x[..., 2 * HAND_DIM :].float()
    quat = matrix_to_quat(rotation_6d_to_matrix(_safe_6d(cam[..., 3:9])))
    camera = torch.cat((cam[..., :3], quat), -1)
    return DecodedStates(params, visible, camera, joints, violation)


def forecast_keypoints(joints: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(..., 2, 21, 3) joints -> (..., 12, 3): both hands' wrist and fingertips (HandWorld's protocol)."""
    j = torch.as_tensor(joints)
    return j[..., list(KEYPOINTS), :].flatten(-3, -2)


def plane_map(camera: torch.Tensor, K: torch.Tensor, width: int, height: int, plane_z: float) -> torch.Tensor:
    """Where each pixel's ray meets the horizontal plane ``z = plane_z`` (the working surface): (..., 3, H, W)
    with the world x and y of that point and 1 where the ray meets the plane in front of the camera (else
    zeros). ``camera`` (..., 7) camera-to-world, ``K`` (..., 3, 3) at ``width`` x ``height``."""
    viewmat = pose7_to_viewmat(camera.double())
    origins, dirs = pixel_rays(viewmat, K.double(), width, height)  # (..., H, W, 3)
    dz = dirs[..., 2]
    t = (plane_z - origins[..., 2]) / torch.where(dz.abs() < 1e-6, torch.full_like(dz, -1e-6), dz)
    hit = (t > 0) & (t < 10.0)
    xy = origins[..., :2] + t[..., None] * dirs[..., :2]
    xy = torch.where(hit[..., None], xy, torch.zeros_like(xy))
    return torch.cat((xy, hit[..., None].double()), -1).movedim(-1, -3).float()
