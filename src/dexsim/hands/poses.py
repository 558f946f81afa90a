"""Hand postures by name and palm placement (layer 1): what scripted actions and the ``delta``
controller use to turn a palm position, a wrist orientation and a grip into MANO-style parameters."""

from __future__ import annotations

import numpy as np
import torch

from ..geometry.rotations import matrix_to_axis_angle
from .model import HandModel
from .skeleton import ANATOMICAL_FRAMES

__all__ = ["FLAT", "HOOK", "PALM_DOWN", "POINT", "RELAXED", "default_hands", "grip_pose", "hand_frame", "palm_params"]

#: palm centre in the right hand model's frame (the left hand mirrors z)
PALM_OFFSET = np.array([0.043, 0.002, 0.003])


def hand_frame(fingers: np.ndarray, dorsal: np.ndarray) -> np.ndarray:
    """(3, 3) wrist orientation whose columns are the finger direction, the back of the hand (made
    orthogonal to it) and their cross product."""
    f = fingers / np.linalg.norm(fingers)
    d = dorsal - (dorsal @ f) * f
    d /= np.linalg.norm(d)
    return np.stack((f, d, np.cross(f, d)), axis=1)


#: (3, 3) wrist orientation with the fingers forward (+y) and the palm facing the table: how an env holds the hands
PALM_DOWN = hand_frame(np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]))


def flex(amounts: list[float]) -> np.ndarray:
    """(45,) right-hand finger pose flexing joints 1-15 by ``amounts`` radians."""
    return torch.stack([ANATOMICAL_FRAMES[j + 1][:, 2] * amounts[j] for j in range(15)]).reshape(45).numpy()


FLAT = flex([0.0] * 15)
RELAXED = flex([0.25, 0.35, 0.2] * 4 + [0.1, 0.2, 0.2])
POINT = flex([0.0, 0.05, 0.05] + [1.3, 1.5, 1.0] * 3 + [0.4, 0.6, 0.6])
HOOK = flex([0.6, 1.4, 0.9] * 4 + [0.3, 0.4, 0.5])


def grip_pose(closure: float | np.ndarray) -> np.ndarray:
    """(..., 45) right-hand finger pose from relaxed (``closure`` 0) to hooked (1); ``closure`` a float or (...,)."""
    c = np.asarray(closure, np.float64)[..., None]
    return (1 - c) * RELAXED + c * HOOK


def palm_params(R: np.ndarray, palm: np.ndarray, pose: np.ndarray, side: str) -> np.ndarray:
    """(..., 51) parameters placing the palm centre at ``palm`` (..., 3) with wrist orientation ``R`` (..., 3, 3)
    and finger ``pose`` (..., 45) given for the right hand (mirrored for the left); leading dims broadcast."""
    offset = PALM_OFFSET * (np.array([1.0, 1.0, -1.0]) if side == "left" else 1.0)
    go = matrix_to_axis_angle(torch.from_numpy(np.asarray(R, np.float64))).numpy()
    pose = np.asarray(pose, np.float64)
    hp = pose if side == "right" else (pose.reshape(*pose.shape[:-1], 15, 3) * [-1.0, -1.0, 1.0]).reshape(pose.shape)
    transl = palm - R @ offset
    lead = np.broadcast_shapes(go.shape[:-1], hp.shape[:-1], transl.shape[:-1])
    return np.concatenate([np.broadcast_to(x, (*lead, x.shape[-1])) for x in (go, hp, transl)], axis=-1)


_DEFAULT_HANDS: list[tuple[HandModel, HandModel]] = []


def default_hands() -> tuple[HandModel, HandModel]:
    """dexsim's default (left, right) hand models with joint limits clamped, built once per process."""
    if not _DEFAULT_HANDS:
        _DEFAULT_HANDS.append((HandModel("left", limits="clamp"), HandModel("right", limits="clamp")))
    return _DEFAULT_HANDS[0]
