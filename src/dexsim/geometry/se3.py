"""Rigid transforms (SE(3)) as 4x4 matrices and as ``[tx, ty, tz, qw, qx, qy, qz]`` poses.

A *pose* in dexsim is camera-to-world (or object-to-world). A *viewmat* is the inverse,
world-to-camera, the gsplat convention. Cameras follow OpenCV: x right, y down, z forward.
"""

from __future__ import annotations

import torch

from .._validate import tensor_arg
from .rotations import matrix_to_quat, quat_to_matrix

__all__ = [
    "make_se3",
    "matrix_to_pose7",
    "pose7_to_matrix",
    "pose7_to_viewmat",
    "se3_inverse",
    "transform_points",
    "viewmat_to_pose7",
]


def make_se3(rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """4x4 transforms (..., 4, 4) from rotations (..., 3, 3) and translations (..., 3)."""
    rotation = tensor_arg("rotation", rotation, (3, 3))
    translation = tensor_arg("translation", translation, (3,), dtype=rotation.dtype)
    batch = torch.broadcast_shapes(rotation.shape[:-2], translation.shape[:-1])
    out = torch.zeros(*batch, 4, 4, dtype=rotation.dtype, device=rotation.device)
    out[..., :3, :3] = rotation
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def _check_se3(name: str, t: torch.Tensor) -> torch.Tensor:
    t = tensor_arg(name, t, (4, 4))
    bottom = t[..., 3, :]
    expected = bottom.new_tensor([0.0, 0.0, 0.0, 1.0])
    if not torch.allclose(bottom, expected.expand_as(bottom), atol=1e-6):
        bad = bottom.reshape(-1, 4)[(bottom.reshape(-1, 4) - expected).abs().amax(-1).argmax()]
        raise ValueError(f"`{name}` must have a last row [0, 0, 0, 1], got {bad.tolist()}")
    return t


def se3_inverse(t: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms (..., 4, 4) using ``R^T`` (exact for rotations)."""
    t = _check_se3("transform", t)
    rt = t[..., :3, :3].transpose(-1, -2)
    return make_se3(rt, -(rt @ t[..., :3, 3:4])[..., 0])


def transform_points(t: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply transforms (..., 4, 4) to points (..., N, 3); batch dims broadcast."""
    t = tensor_arg("transform", t, (4, 4))
    points = tensor_arg("points", points, (3,), dtype=t.dtype)
    return points @ t[..., :3, :3].transpose(-1, -2) + t[..., None, :3, 3]


def pose7_to_matrix(pose: torch.Tensor) -> torch.Tensor:
    """``[tx, ty, tz, qw, qx, qy, qz]`` (..., 7) -> 4x4 (..., 4, 4); the quaternion is normalised."""
    pose = tensor_arg("pose", pose, (7,))
    return make_se3(quat_to_matrix(pose[..., 3:]), pose[..., :3])


def matrix_to_pose7(t: torch.Tensor) -> torch.Tensor:
    """4x4 (..., 4, 4) -> ``[tx, ty, tz, qw, qx, qy, qz]`` (..., 7) with ``qw >= 0``."""
    t = _check_se3("transform", t)
    return torch.cat((t[..., :3, 3], matrix_to_quat(t[..., :3, :3])), dim=-1)


def pose7_to_viewmat(pose: torch.Tensor) -> torch.Tensor:
    """Camera-to-world pose (..., 7) -> world-to-camera viewmat (..., 4, 4)."""
    return se3_inverse(pose7_to_matrix(pose))


def viewmat_to_pose7(viewmat: torch.Tensor) -> torch.Tensor:
    """World-to-camera viewmat (..., 4, 4) -> camera-to-world pose (..., 7)."""
    return matrix_to_pose7(se3_inverse(viewmat))
