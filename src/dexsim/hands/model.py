"""``HandModel``: MANO-compatible parameters -> 21 joints and a skinned mesh.

Parameters per hand (MANO's layout, ``flat_hand_mean``): ``global_orient`` (3, axis-angle),
``hand_pose`` (45 = 15 joints x 3, axis-angle, in MANO joint order 1-15), ``transl`` (3),
optional ``betas`` (10). The 51-vector ``[global_orient, hand_pose, transl]`` is the ``params``
layout of the trajectory contract.

The default hand is dexsim's own (no licence strings attached): the skeleton of
:mod:`dexsim.hands.skeleton` and the surface of :mod:`dexsim.hands.mesh`. Its rest frame is not
MANO's, so parameters transfer between the two only through joints (the IK fits either model).
The real MANO is used through ``smplx`` when ``mano_model_dir`` names a folder holding
``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (downloaded by the user from the MANO website; the path
is taken as the user's explicit trust in that pickle file).

Left hands: the left default hand is the mirror image of the right one through its z = 0 plane.
The mirror image of a right-hand pose has the right hand's rotation vectors with their x and y
components negated (:func:`mirror_params`); global orientation and translation act in the world
as usual.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .._deps import require
from .._validate import tensor_arg
from ..geometry.rotations import axis_angle_to_matrix
from .mesh import build_surface
from .skeleton import ANATOMICAL_FRAMES, JOINT_NAMES, NUM_POSE_JOINTS, PARENTS, joint_limits, rest_joints

__all__ = [
    "PARAMS_DIM",
    "HandModel",
    "HandOutput",
    "check_pose_limits",
    "mirror_params",
    "params_to_joints",
    "split_params",
]

Side = Literal["left", "right"]
PARAMS_DIM = 51
_MIRROR_AA = torch.tensor([-1.0, -1.0, 1.0])
_MIRROR_POINT = torch.tensor([1.0, 1.0, -1.0])
#: MANO vertex ids used as fingertips (thumb, index, middle, ring, pinky), a widely used convention
MANO_TIP_VERTICES = (745, 317, 444, 556, 673)


@dataclass
class HandOutput:
    """Posed hands.

    Attributes:
        joints: (..., 21, 3) in the DESIGN.md joint order.
        vertices: (..., V, 3) skinned surface.
        faces: (F, 3) triangles, counter-clockwise seen from outside.
    """

    joints: torch.Tensor
    vertices: torch.Tensor
    faces: torch.Tensor


def mirror_params(params: torch.Tensor) -> torch.Tensor:
    """The parameters (..., 51) of the mirror-image pose of the other hand (through the canonical
    z = 0 plane): rotation vectors get their x and y components negated, translations their z."""
    params = tensor_arg("params", params, (PARAMS_DIM,))
    rot = params[..., :48].reshape(*params.shape[:-1], 16, 3) * _MIRROR_AA.to(params)
    return torch.cat((rot.reshape(*params.shape[:-1], 48), params[..., 48:] * _MIRROR_POINT.to(params)), dim=-1)


def split_params(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(..., 51)`` -> ``global_orient (..., 3), hand_pose (..., 45), transl (..., 3)``."""
    params = tensor_arg("params", params, (PARAMS_DIM,))
    return params[..., :3], params[..., 3:48], params[..., 48:]


def _side(side: str) -> Side:
    if side not in ("left", "right"):
        raise ValueError(f"`side` must be 'left' or 'right', got {side!r}")
    return side  # type: ignore[return-value]


def check_pose_limits(
    hand_pose: torch.Tensor, side: Side = "right", strict: bool = False, warn: bool = True
) -> torch.Tensor:
    """Clamp finger rotations (..., 45) to human joint limits.

    Each joint's rotation vector is expressed in its anatomical frame as (twist, abduction,
    flexion) and clamped to :func:`dexsim.hands.skeleton.joint_limits`. With ``strict=True`` an
    out-of-limit pose raises a ``ValueError`` naming the joint, the component and the value;
    otherwise it is clamped (with a warning unless ``warn=False``).
    """
    hand_pose = tensor_arg("hand_pose", hand_pose, (45,))
    aa = hand_pose.reshape(*hand_pose.shape[:-1], 15, 3)
    mirror = _MIRROR_AA.to(aa) if _side(side) == "left" else torch.ones(3, dtype=aa.dtype)
    aa_r = aa * mirror
    frames = ANATOMICAL_FRAMES[1:].to(aa)  # (15, 3, 3) columns: twist, abduction, flexion axes
    comp = torch.einsum("jab,...ja->...jb", frames, aa_r)
    lim = joint_limits(aa.dtype)[1:]
    clamped = torch.maximum(torch.minimum(comp, lim[..., 1]), lim[..., 0])
    bad = (clamped - comp).abs() > 1e-6
    if bool(bad.any()):
        idx = torch.nonzero(bad)[0].tolist()
        j, c = idx[-2], idx[-1]
        value = float(comp[tuple(idx)])
        names = ("twist", "abduction", "flexion")
        msg = (f"hand pose outside human limits: {JOINT_NAMES[j + 1]} {names[c]} = {value:.3f} rad, "
               f"allowed [{float(lim[j, c, 0]):.2f}, {float(lim[j, c, 1]):.2f}] "
               f"({int(bad.any(-1).sum())} joint values out of range)")  # fmt: skip
        if strict:
            raise ValueError(msg)
        if warn:
            warnings.warn(msg + "; clamped", stacklevel=2)
    out = torch.einsum("jab,...jb->...ja", frames, clamped) * mirror
    return out.reshape(hand_pose.shape)


class HandModel:
    """One hand (left or right): MANO-style parameters -> joints and a skinned mesh, batched.

    Args:
        side: "left" or "right".
        mano_model_dir: folder with ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` to use the real MANO
            (needs the ``mano`` extra); ``None`` = dexsim's procedural hand.
        limits: "clamp" (default: out-of-limit poses are clamped with a warning), "strict"
            (rejected with an error) or "off".
    """

    def __init__(
        self, side: Side = "right", mano_model_dir: str | os.PathLike[str] | None = None,
        limits: Literal["clamp", "strict", "off"] = "clamp",
    ) -> None:  # fmt: skip
        self.side = _side(side)
        if limits not in ("clamp", "strict", "off"):
            raise ValueError(f"`limits` must be 'clamp', 'strict' or 'off', got {limits!r}")
        self.limits = limits
        self._mano = None
        if mano_model_dir is not None:
            self._mano = _load_mano(Path(mano_model_dir), self.side)
            self.faces = torch.as_tensor(self._mano.faces.astype("int64"))
        else:
            self.surface = build_surface()
            faces = self.surface.faces
            self.faces = faces[:, [0, 2, 1]] if self.side == "left" else faces
        self.parents = torch.tensor(PARENTS[:NUM_POSE_JOINTS])
        self._rest_cache: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    @property
    def is_mano(self) -> bool:
        return self._mano is not None

    def rest_joints(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """Rest joints (..., 21, 3) of this hand (mirrored for the left hand)."""
        j = rest_joints(betas)
        return j * _MIRROR_POINT.to(j) if self.side == "left" else j

    def __call__(
        self, global_orient: torch.Tensor, hand_pose: torch.Tensor, transl: torch.Tensor,
        betas: torch.Tensor | None = None, with_mesh: bool = True,
    ) -> HandOutput:  # fmt: skip
        """Pose the hand.

        Args:
            global_orient: (..., 3) axis-angle of the wrist in the world.
            hand_pose: (..., 45) finger joint rotations (MANO joints 1-15).
            transl: (..., 3) translation (for the default hand: the wrist position).
            betas: (..., 10) or (10,) shape; default zeros.
            with_mesh: skip skinning when only joints are needed (faster, for IK).
        """
        global_orient = tensor_arg("global_orient", global_orient, (3,))
        dt = global_orient.dtype if global_orient.is_floating_point() else torch.float32
        hand_pose = tensor_arg("hand_pose", hand_pose, (45,), dtype=dt)
        transl = tensor_arg("transl", transl, (3,), dtype=dt)
        if betas is not None:
            betas = tensor_arg("betas", betas, (10,), dtype=dt)
        if self.limits != "off":
            hand_pose = check_pose_limits(hand_pose, self.side, strict=self.limits == "strict")
        if self._mano is not None:
            return self._mano_forward(global_orient, hand_pose, transl, betas, dt)
        return self._default_forward(global_orient, hand_pose, transl, betas, with_mesh, dt)

    def _default_forward(self, go, hp, transl, betas, with_mesh, dt) -> HandOutput:
        batch = torch.broadcast_shapes(go.shape[:-1], hp.shape[:-1], transl.shape[:-1],
                                       () if betas is None or betas.ndim == 1 else betas.shape[:-1])  # fmt: skip
        pose = torch.cat((go, hp), dim=-1).expand(*batch, 48).reshape(*batch, 16, 3)
        rest_1 = self._rest_joints(betas, dt)  # right-hand canonical frame, (21, 3) without per-frame betas
        rest = rest_1.expand(*batch, 21, 3)
        if self.side == "left":
            pose = pose * _MIRROR_AA.to(dt)
        rot = axis_angle_to_matrix(pose)  # (..., 16, 3, 3)
        # forward kinematics (SMPL-style: rest frames aligned with the canonical axes)
        g_rot = [rot[..., 0, :, :]]
        g_pos = [rest[..., 0, :]]
        for k in range(1, NUM_POSE_JOINTS):
            p = PARENTS[k]
            g_rot.append(g_rot[p] @ rot[..., k, :, :])
            g_pos.append(g_pos[p] + (g_rot[p] @ (rest[..., k, :] - rest[..., p, :])[..., None])[..., 0])
        tips = [g_pos[p] + (g_rot[p] @ (rest[..., 16 + i, :] - rest[..., p, :])[..., None])[..., 0]
                for i, p in enumerate(PARENTS[16:])]  # fmt: skip
        joints = torch.stack(g_pos + tips, dim=-2)
        vertices = joints.new_zeros(*batch, 0, 3)
        if with_mesh:
            v_rest = self._rest_vertices(rest_1, betas, dt)  # (V, 3), or (..., V, 3) with per-frame betas
            R = torch.stack(g_rot, dim=-3)  # (..., 16, 3, 3)
            # v = sum_j w_j (R_j (v_rest - J_j) + P_j) = (sum_j w_j R_j) v_rest + sum_j w_j (P_j - R_j J_j):
            # the weights blend the 16 joint transforms (one (V, 16) matmul), then each vertex moves once
            t = torch.stack(g_pos, dim=-2) - (R @ rest[..., :16, :, None])[..., 0]  # (..., 16, 3)
            w = self.surface.weights.to(dt)  # (V, 16)
            blend = torch.matmul(w, torch.cat((R.flatten(-2), t), dim=-1))  # (..., V, 12)
            Rv = blend[..., :9].unflatten(-1, (3, 3))
            vertices = (Rv * v_rest[..., None, :]).sum(-1) + blend[..., 9:]
        if self.side == "left":
            joints = joints * _MIRROR_POINT.to(dt)
            vertices = vertices * _MIRROR_POINT.to(dt)
        return HandOutput(joints + transl[..., None, :], vertices + transl[..., None, :], self.faces)

    def _rest_joints(self, betas: torch.Tensor | None, dt: torch.dtype) -> torch.Tensor:
        """Right-hand canonical rest joints (21, 3) (cached without betas) or (..., 21, 3)."""
        if betas is not None:
            return rest_joints(betas, dtype=dt)
        key = ("joints", dt)
        if key not in self._rest_cache:
            with torch.inference_mode(False):  # a normal tensor even when first built under inference mode
                self._rest_cache[key] = rest_joints(None, dtype=dt)
        return self._rest_cache[key]

    def _rest_vertices(self, rest: torch.Tensor, betas: torch.Tensor | None, dt: torch.dtype) -> torch.Tensor:
        """Rest vertices (V, 3) over ``rest`` (cached without betas) or (..., V, 3) with them."""
        if betas is not None:
            return self.surface.vertices(rest, (1.0 + 0.05 * betas[..., 0]).clamp(0.6, 1.4))
        key = ("vertices", dt)
        if key not in self._rest_cache:
            with torch.inference_mode(False):
                self._rest_cache[key] = self.surface.vertices(rest.clone(), 1.0)
        return self._rest_cache[key]

    def _mano_forward(self, go, hp, transl, betas, dt) -> HandOutput:
        batch = torch.broadcast_shapes(go.shape[:-1], hp.shape[:-1], transl.shape[:-1])
        n = int(torch.tensor(batch).prod()) if batch else 1
        flat = lambda x, d: x.expand(*batch, d).reshape(n, d).float()  # noqa: E731
        b = torch.zeros(n, 10) if betas is None else betas.expand(*batch, 10).reshape(n, 10).float()
        out = self._mano(global_orient=flat(go, 3), hand_pose=flat(hp, 45), transl=flat(transl, 3), betas=b)
        tips = out.vertices[:, list(MANO_TIP_VERTICES)]
        joints = torch.cat((out.joints[:, :16], tips), dim=1)
        return HandOutput(joints.reshape(*batch, 21, 3).to(dt), out.vertices.reshape(*batch, -1, 3).to(dt),
                          self.faces)  # fmt: skip


def _load_mano(folder: Path, side: Side):
    smplx = require("smplx", "the real MANO hand model")
    name = "MANO_RIGHT.pkl" if side == "right" else "MANO_LEFT.pkl"
    if not (folder / name).is_file():
        raise FileNotFoundError(
            f"{folder / name} not found: download MANO from https://mano.is.tue.mpg.de (registration needed) "
            f"and pass the folder holding {name}"
        )
    return smplx.MANO(str(folder / name), is_rhand=side == "right", use_pca=False, flat_hand_mean=True)


def params_to_joints(params: torch.Tensor | np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """Both hands' world joints (T, 2, 21, 3) numpy from parameters (T, 2, 51), posed as given (no joint
    limits), in the parameters' dtype; zero where ``visible`` (T, 2) is False."""
    p = torch.as_tensor(params)
    if p.ndim != 3 or p.shape[1:] != (2, PARAMS_DIM):
        raise ValueError(f"`params` must be (T, 2, {PARAMS_DIM}), got {tuple(p.shape)}")
    hands = [HandModel(side, limits="off")(p[:, h, :3], p[:, h, 3:48], p[:, h, 48:], with_mesh=False).joints
             for h, side in enumerate(("left", "right"))]  # fmt: skip
    joints = torch.stack(hands, 1).numpy()
    if visible is not None:
        joints[~visible] = 0.0
    return joints
