"""The hand skeleton: joint order, kinematic tree, rest pose and anatomical joint limits.

Joint order (DESIGN.md): MANO's 16 joints with the 5 fingertips appended::

    0 wrist; 1-3 index MCP/PIP/DIP; 4-6 middle; 7-9 pinky; 10-12 ring;
    13-15 thumb CMC/MCP/IP; 16-20 tips of thumb, index, middle, ring, pinky.

The canonical (rest) frame of the default hand, right hand: wrist at the origin, fingers along
+x, the back of the hand towards +y, the little finger towards +z (the thumb towards -z). The
left hand is its mirror image through the z = 0 plane. Rest pose = flat hand (MANO's
``flat_hand_mean``): all 16 joint rotations zero.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "BONES",
    "FINGER_CHAINS",
    "JOINT_NAMES",
    "NUM_JOINTS",
    "NUM_POSE_JOINTS",
    "PARENTS",
    "TIP_PARENTS",
    "joint_limits",
    "rest_joints",
]

JOINT_NAMES = [
    "wrist",
    "index_mcp", "index_pip", "index_dip",
    "middle_mcp", "middle_pip", "middle_dip",
    "pinky_mcp", "pinky_pip", "pinky_dip",
    "ring_mcp", "ring_pip", "ring_dip",
    "thumb_cmc", "thumb_mcp", "thumb_ip",
    "thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip",
]  # fmt: skip
NUM_JOINTS = 21
NUM_POSE_JOINTS = 16  # joints with a rotation (the wrist + 15 finger joints)
PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14, 15, 3, 6, 12, 9]
TIP_PARENTS = PARENTS[16:]
#: each finger from the wrist to its tip
FINGER_CHAINS = {
    "thumb": [0, 13, 14, 15, 16],
    "index": [0, 1, 2, 3, 17],
    "middle": [0, 4, 5, 6, 18],
    "ring": [0, 10, 11, 12, 19],
    "pinky": [0, 7, 8, 9, 20],
}
BONES = [(PARENTS[j], j) for j in range(1, NUM_JOINTS)]

# Anthropometric adult hand (hand length ~18.5 cm, palm width ~8.5 cm), metres.
# finger: (MCP position, splay angle towards +z in degrees, phalanx lengths proximal/middle/distal-to-tip)
_FINGERS = {
    "index": ((0.088, 0.004, -0.022), -6.0, (0.039, 0.023, 0.021)),
    "middle": ((0.092, 0.005, -0.002), 0.0, (0.044, 0.027, 0.023)),
    "ring": ((0.086, 0.004, 0.017), 6.0, (0.041, 0.026, 0.022)),
    "pinky": ((0.076, 0.001, 0.034), 14.0, (0.032, 0.019, 0.019)),
}
_THUMB_CMC = (0.022, -0.010, -0.018)
#: the thumbnail faces sideways (radial, -z) and a little up: the thumb's "back" direction
THUMB_DORSAL = (0.0, 0.5, -0.85)
_THUMB_METACARPAL = ((0.78, -0.30, -0.55), 0.044)
_THUMB_PHALANGES = ((0.88, -0.18, -0.44), (0.031, 0.025))


def rest_joints(betas: torch.Tensor | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Rest-pose joints (..., 21, 3) of the right hand in its canonical frame.

    ``betas`` (..., 10) shape the default hand: ``betas[0]`` overall size (+5% per unit),
    ``betas[1]`` finger length relative to the palm (+4% per unit), ``betas[2]`` palm width
    (+4% per unit); the remaining betas have no effect on the default hand.
    """
    j = torch.zeros(NUM_JOINTS, 3, dtype=torch.float64)
    tips = {"thumb": 16, "index": 17, "middle": 18, "ring": 19, "pinky": 20}
    for name, (mcp, splay, lengths) in _FINGERS.items():
        chain = FINGER_CHAINS[name][1:]
        d = torch.tensor([math.cos(math.radians(splay)), 0.0, math.sin(math.radians(splay))], dtype=torch.float64)
        p = torch.tensor(mcp, dtype=torch.float64)
        j[chain[0]] = p
        for k, length in enumerate(lengths):
            p = p + length * d
            j[chain[k + 1] if k + 1 < 3 else tips[name]] = p
    cmc = torch.tensor(_THUMB_CMC, dtype=torch.float64)
    d_meta = torch.tensor(_THUMB_METACARPAL[0], dtype=torch.float64)
    d_meta = d_meta / d_meta.norm()
    d_phal = torch.tensor(_THUMB_PHALANGES[0], dtype=torch.float64)
    d_phal = d_phal / d_phal.norm()
    j[13] = cmc
    j[14] = cmc + _THUMB_METACARPAL[1] * d_meta
    j[15] = j[14] + _THUMB_PHALANGES[1][0] * d_phal
    j[16] = j[15] + _THUMB_PHALANGES[1][1] * d_phal
    if betas is None:
        return j.to(dtype)
    betas = torch.as_tensor(betas, dtype=torch.float64)
    size = (1.0 + 0.05 * betas[..., 0]).clamp(0.6, 1.4)[..., None, None]
    finger = (1.0 + 0.04 * betas[..., 1]).clamp(0.7, 1.3)[..., None]
    width = (1.0 + 0.04 * betas[..., 2]).clamp(0.7, 1.3)[..., None]
    one = torch.ones_like(width)
    palm_scale = torch.cat((one, one, width), dim=-1)  # bones from the wrist: palm width along z
    joints = [j[0].expand(*betas.shape[:-1], 3)]
    for k in range(1, NUM_JOINTS):  # parents come before children in this order
        rel = j[k] - j[PARENTS[k]]
        rel = rel * palm_scale if PARENTS[k] == 0 else rel * finger
        joints.append(joints[PARENTS[k]] + rel)
    return (torch.stack(joints, dim=-2) * size).to(dtype)


def _anatomical_frames() -> np.ndarray:
    """(16, 3, 3) per-joint frames whose columns are (bone direction, dorsal, flexion axis).

    A rotation vector expressed in this frame has components (twist, abduction, flexion); a
    positive flexion curls the finger towards the palm.
    """
    j = rest_joints().double().numpy()
    frames = np.zeros((NUM_POSE_JOINTS, 3, 3))
    child = {
        0: 4,
        1: 2,
        2: 3,
        3: 17,
        4: 5,
        5: 6,
        6: 18,
        7: 8,
        8: 9,
        9: 20,
        10: 11,
        11: 12,
        12: 19,
        13: 14,
        14: 15,
        15: 16,
    }
    for k in range(NUM_POSE_JOINTS):
        d = j[child[k]] - j[k]
        d /= np.linalg.norm(d)
        dorsal = np.array([0.0, 1.0, 0.0]) if k < 13 else np.array(THUMB_DORSAL)
        dorsal = dorsal - (dorsal @ d) * d
        dorsal /= np.linalg.norm(dorsal)
        # flexion turns the bone direction towards -dorsal: axis = dorsal x direction... sign chosen so
        # that a positive angle about the axis moves d towards -dorsal
        axis = np.cross(dorsal, d)
        frames[k] = np.stack((d, dorsal, axis), axis=1)
    return frames


ANATOMICAL_FRAMES = torch.from_numpy(_anatomical_frames())

# (twist, abduction, flexion) ranges in radians per joint (Hand anatomy: e.g. Cobos et al.;
# rounded generously so that real captures are rarely clamped)
_MCP = ((-0.25, 0.25), (-0.35, 0.35), (-0.45, 1.65))
_PIP = ((-0.15, 0.15), (-0.12, 0.12), (-0.10, 1.95))
_DIP = ((-0.15, 0.15), (-0.12, 0.12), (-0.20, 1.45))
_LIMITS = [
    ((-math.pi, math.pi),) * 3,  # the wrist joint is the global orientation: unlimited
    _MCP, _PIP, _DIP,  # index
    _MCP, _PIP, _DIP,  # middle
    ((-0.25, 0.25), (-0.45, 0.45), (-0.45, 1.65)), _PIP, _DIP,  # pinky
    _MCP, _PIP, _DIP,  # ring
    ((-0.70, 0.70), (-0.80, 0.90), (-0.70, 1.00)),  # thumb CMC
    ((-0.30, 0.30), (-0.25, 0.25), (-0.30, 1.10)),  # thumb MCP
    ((-0.20, 0.20), (-0.15, 0.15), (-0.40, 1.45)),  # thumb IP
]  # fmt: skip


def joint_limits(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(16, 3, 2) lower/upper bounds of (twist, abduction, flexion) per joint, radians."""
    return torch.tensor(_LIMITS, dtype=dtype)
