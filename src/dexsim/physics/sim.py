"""MuJoCo simulation of a scene spec with two kinematic hands following a hand trajectory.

The hands are mocap bodies (a palm box and 15 phalanx capsules each) placed every physics step
on the joints of the trajectory, linearly interpolated between frames, so they push, pinch,
lift and pull the dynamic objects through contacts, without being pushed back themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .build import HAND_BONES, HAND_PARK_X, build_mjcf
from .spec import SceneSpec

__all__ = ["HandPhysics", "SimResult", "Simulator", "bone_poses"]

_SIDES = ("left", "right")


def _quat_z_to(d: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) w-first rotating +z onto the unit vectors ``d`` (..., 3)."""
    z = np.array([0.0, 0.0, 1.0])
    dot = np.clip((d * z).sum(-1), -1.0, 1.0)
    axis = np.cross(np.broadcast_to(z, d.shape), d)
    q = np.concatenate(((1.0 + dot)[..., None], axis), axis=-1)
    flip = dot < -0.999999
    q[flip] = [0.0, 1.0, 0.0, 0.0]
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """A unit quaternion (4,) w-first of one rotation matrix (3, 3) (numpy: this runs every physics step)."""
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array([(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s])
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array([(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s])
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array([(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s])
    return q / np.linalg.norm(q)


def bone_poses(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mocap poses for one hand's joints (21, 3): positions (16, 3), quaternions (16, 4) w-first
    (palm first, then ``HAND_BONES``) and the capsules' half lengths (15,)."""
    j = np.asarray(joints, np.float64)
    knuckles = j[[1, 4, 7, 10]].mean(0)
    x = knuckles - j[0]
    x /= max(np.linalg.norm(x), 1e-9)
    z = j[1] - j[7]
    z -= (z @ x) * x
    z /= max(np.linalg.norm(z), 1e-9)
    y = np.cross(z, x)
    palm_q = _matrix_to_quat(np.stack((x, y, z), axis=1))
    a = j[[b[0] for b in HAND_BONES]]
    b = j[[b[1] for b in HAND_BONES]]
    seg = b - a
    length = np.linalg.norm(seg, axis=-1)
    pos = np.concatenate(((j[0] + 0.5 * (knuckles - j[0]))[None], 0.5 * (a + b)))
    quat = np.concatenate((palm_q[None], _quat_z_to(seg / np.maximum(length, 1e-9)[:, None])))
    return pos, quat, 0.5 * length


@dataclass
class SimResult:
    """Per frame: ``object_poses`` (T, K, 7) world ``[t, q]`` of the rigid objects, ``drawer`` (T,)
    slide opening in metres (empty without a drawer), ``contacts`` (T, 2, K + 1) bool: hand h
    touches object k (drawer last), ``max_penetration`` (T,) deepest hand/object contact (m)."""

    object_poses: np.ndarray
    drawer: np.ndarray
    contacts: np.ndarray
    max_penetration: np.ndarray


def _import_order_guard() -> None:
    """With MUJOCO_GL=osmesa, ``import mujoco`` loads OSMesa (with its own LLVM); importing
    triton afterwards (torch does, lazily, on the first optimizer) then segfaults. Loading torch's
    dynamo/triton first avoids it; dexsim needs no MuJoCo rendering at all."""
    import os

    if os.environ.get("MUJOCO_GL") and "mujoco" not in __import__("sys").modules:
        import torch._dynamo  # noqa: F401


class HandPhysics:
    """Drives the hands of a model built by :func:`build_mjcf`: each hand part is a dynamic body
    welded to a mocap target; ``place`` moves the targets, ``teleport`` moves the bodies too."""

    def __init__(self, model: object) -> None:
        import mujoco

        self.model = model
        self.mocap = np.zeros((2, 16), np.int64)
        self.geoms = np.zeros((2, 16), np.int64)
        self.qpos = np.zeros((2, 16), np.int64)
        self.dof = np.zeros((2, 16), np.int64)
        for h, side in enumerate(_SIDES):
            names = [f"{side}_palm"] + [f"{side}_bone_{a}_{b}" for a, b in HAND_BONES]
            for k, name in enumerate(names):
                target = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name + "_target")
                body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
                self.mocap[h, k] = model.body_mocapid[target]  # type: ignore[attr-defined]
                self.geoms[h, k] = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name + "_geom")
                joint = model.body_jntadr[body]  # type: ignore[attr-defined]
                self.qpos[h, k] = model.jnt_qposadr[joint]  # type: ignore[attr-defined]
                self.dof[h, k] = model.jnt_dofadr[joint]  # type: ignore[attr-defined]
        self.parked = np.array([[HAND_PARK_X + 0.5 * h, 0.0, 1.0] for h in range(2)])
        self.shown = np.zeros(2, bool)

    def set_lengths(self, joints: np.ndarray, visible: np.ndarray) -> None:
        """Capsule lengths from the first frame where each hand is visible (FK keeps them constant)."""
        for h in range(2):
            frames = np.nonzero(visible[:, h])[0]
            if len(frames):
                _, _, half = bone_poses(joints[frames[0], h])
                self.model.geom_size[self.geoms[h, 1:], 1] = np.maximum(half - 0.004, 0.002)  # type: ignore[attr-defined]

    def _poses(self, joints: np.ndarray, h: int, visible: bool) -> tuple[np.ndarray, np.ndarray]:
        if visible:
            pos, quat, _ = bone_poses(joints[h])
            return pos, quat
        return np.tile(self.parked[h], (16, 1)), np.tile([1.0, 0, 0, 0], (16, 1))

    def place(self, data: object, joints: np.ndarray, visible: np.ndarray) -> None:
        """Move both hands' targets to ``joints`` (2, 21, 3); a hand that appears or disappears
        is teleported there (no sweep through the scene)."""
        for h in range(2):
            pos, quat = self._poses(joints, h, bool(visible[h]))
            data.mocap_pos[self.mocap[h]] = pos  # type: ignore[attr-defined]
            data.mocap_quat[self.mocap[h]] = quat  # type: ignore[attr-defined]
            if bool(visible[h]) != self.shown[h]:
                self.teleport(data, h, pos, quat)
                self.shown[h] = bool(visible[h])

    def teleport(self, data: object, h: int, pos: np.ndarray, quat: np.ndarray) -> None:
        for k in range(16):
            q = self.qpos[h, k]
            data.qpos[q : q + 3] = pos[k]  # type: ignore[attr-defined]
            data.qpos[q + 3 : q + 7] = quat[k]  # type: ignore[attr-defined]
            d = self.dof[h, k]
            data.qvel[d : d + 6] = 0.0  # type: ignore[attr-defined]


class Simulator:
    """The physics of one scene spec. ``run`` simulates a clip of hand joints at ``fps``."""

    def __init__(self, spec: SceneSpec, fps: float = 8.0, timestep: float = 0.002, settle: float = 0.3) -> None:
        _import_order_guard()
        import mujoco

        self.spec = spec
        self.fps = fps
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(spec, timestep))
        self.data = mujoco.MjData(self.model)
        self.hands = HandPhysics(self.model)
        self.substeps = max(1, int(round(1.0 / (fps * timestep))))
        self.settle = settle
        self.body_ids = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, o.name) for o in spec.objects]
        self.drawer_qpos = -1
        target_bodies = list(self.body_ids)
        if spec.drawer is not None:
            jid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, "drawer_slide")
            self.drawer_qpos = int(self.model.jnt_qposadr[jid])
            target_bodies.append(mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, spec.drawer.name))
        self.geom_object = np.full(self.model.ngeom, -1, np.int64)  # geom -> object index (0-based)
        for k, body in enumerate(target_bodies):
            self.geom_object[self.model.geom_bodyid == body] = k
        self.geom_hand = np.full(self.model.ngeom, -1, np.int64)
        for h in range(2):
            self.geom_hand[self.hands.geoms[h]] = h

    def reset(self) -> None:
        """Initial state, objects settled on the table with the hands away."""
        import mujoco

        mujoco.mj_resetData(self.model, self.data)
        if self.drawer_qpos >= 0:
            self.data.qpos[self.drawer_qpos] = self.spec.drawer.initial_open  # type: ignore[union-attr]
        self.hands.shown[:] = True  # force a teleport to the parking place
        self.hands.place(self.data, np.zeros((2, 21, 3)), np.zeros(2, bool))
        for _ in range(int(self.settle / self.model.opt.timestep)):
            mujoco.mj_step(self.model, self.data)
        self.data.qvel[:] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def _record(self) -> tuple[np.ndarray, float, np.ndarray, float]:
        poses = np.stack([np.concatenate((self.data.xpos[b], self.data.xquat[b])) for b in self.body_ids]) \
            if self.body_ids else np.zeros((0, 7))  # fmt: skip
        drawer = float(self.data.qpos[self.drawer_qpos]) if self.drawer_qpos >= 0 else 0.0
        n_obj = len(self.body_ids) + (1 if self.drawer_qpos >= 0 else 0)
        touch = np.zeros((2, n_obj), bool)
        deepest = 0.0
        for c in self.data.contact[: self.data.ncon]:
            g1, g2 = int(c.geom1), int(c.geom2)
            for ga, gb in ((g1, g2), (g2, g1)):
                h, k = self.geom_hand[ga], self.geom_object[gb]
                if h >= 0 and k >= 0:
                    touch[h, k] = True
                    deepest = max(deepest, -float(c.dist))
        return poses, drawer, touch, deepest

    def run(self, joints: np.ndarray, visible: np.ndarray) -> SimResult:
        """Simulate T frames. ``joints`` (T, 2, 21, 3) world, ``visible`` (T, 2)."""
        import mujoco

        joints = np.asarray(joints, np.float64)
        visible = np.asarray(visible, bool)
        n = joints.shape[0]
        self.hands.set_lengths(joints, visible)
        self.reset()
        poses, drawers, touches, deep = [], [], [], []
        self.hands.place(self.data, joints[0], visible[0])
        mujoco.mj_forward(self.model, self.data)
        rec = self._record()
        for t in range(n):
            if t > 0:
                deepest = 0.0
                touch = np.zeros_like(rec[2])
                for s in range(1, self.substeps + 1):
                    a = s / self.substeps
                    both = visible[t - 1] & visible[t]
                    j = np.where(both[:, None, None], (1 - a) * joints[t - 1] + a * joints[t], joints[t])
                    self.hands.place(self.data, j, visible[t] if a > 0.5 else visible[t - 1] & visible[t])
                    mujoco.mj_step(self.model, self.data)
                    if s % 4 == 0 or s == self.substeps:
                        r = self._record()
                        touch |= r[2]
                        deepest = max(deepest, r[3])
                rec = (*self._record()[:2], touch, deepest)
            poses.append(rec[0])
            drawers.append(rec[1])
            touches.append(rec[2])
            deep.append(rec[3])
        return SimResult(np.stack(poses), np.asarray(drawers), np.stack(touches), np.asarray(deep))
