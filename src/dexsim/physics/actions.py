"""Scripted hand actions with randomized parameters, egocentric camera motion, and text.

Every primitive returns an :class:`Action`: a two-hand :class:`HandTrajectory` (parameters and
joints of dexsim's default hand, world frame, ``fps`` frames per second) with the camera, and a
sentence that says what the hands do. All randomness comes from the ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..geometry.camera import look_at
from ..geometry.rotations import axis_angle_to_quat, quat_to_axis_angle
from ..geometry.se3 import viewmat_to_pose7
from ..hands.controllers import start_palms
from ..hands.ik import fit_hand
from ..hands.model import HandModel, params_to_joints
from ..hands.poses import FLAT, HOOK, PALM_DOWN, POINT, RELAXED, hand_frame, palm_params
from ..hands.trajectory import HandTrajectory
from .build import FINGER_RADIUS
from .spec import ObjectSpec, SceneSpec

__all__ = ["ACTION_KINDS", "CAMERA_MOTIONS", "Action", "camera_path", "make_action"]

ACTION_KINDS = ("push", "touch", "poke", "wave", "pick_place", "open_drawer", "close_drawer", "sweep")
CAMERA_MOTIONS = ("static", "pan", "look_at", "step_closer", "jitter")
#: palm centre relative to the drawer handle when the hooked fingers hold it
HANDLE_GRIP = (0.0, -0.09, 0.035)  # palm centre in the canonical hand frame (right hand)


@dataclass
class Action:
    """A scripted clip: the trajectory (hands + camera), its text, and the primary target object."""

    trajectory: HandTrajectory
    text: str
    kind: str
    target: str | None


_frame = hand_frame
_params = palm_params


def _interp(keys: list[tuple[float, np.ndarray]], n: int) -> np.ndarray:
    """Piecewise-linear parameters (n, 51) through key frames ``(fraction of the clip, params)``;
    rotations are interpolated through quaternions (slerp-free, normalised lerp is enough here)."""
    ts = np.array([k[0] for k in keys])
    ps = np.stack([k[1] for k in keys])
    s = np.linspace(0.0, 1.0, n)
    out = np.empty((n, 51))
    for i, x in enumerate(s):
        hi = int(np.clip(np.searchsorted(ts, x, side="right"), 1, len(ts) - 1))
        lo = hi - 1
        w = 0.0 if ts[hi] == ts[lo] else float(np.clip((x - ts[lo]) / (ts[hi] - ts[lo]), 0.0, 1.0))
        w = 0.5 - 0.5 * math.cos(math.pi * w)  # ease in and out
        out[i] = (1 - w) * ps[lo] + w * ps[hi]
        q0 = axis_angle_to_quat(torch.from_numpy(ps[lo, :3]))
        q1 = axis_angle_to_quat(torch.from_numpy(ps[hi, :3]))
        q1 = q1 if float((q0 * q1).sum()) >= 0 else -q1
        q = (1 - w) * q0 + w * q1
        out[i, :3] = quat_to_axis_angle(q / q.norm()).numpy()
    return out


def _object_top(spec: SceneSpec, o: ObjectSpec) -> np.ndarray:
    return np.array([o.position[0], o.position[1], spec.table_height + o.height])


def _object_centre(spec: SceneSpec, o: ObjectSpec) -> np.ndarray:
    return np.array([o.position[0], o.position[1], spec.table_height + o.height / 2])


def _rest_pose(side: str) -> np.ndarray:
    """A hand resting low and out of the way (not visible in most views)."""
    x = -0.35 if side == "left" else 0.35
    return _params(PALM_DOWN, np.array([x, -0.1, 0.8]), RELAXED, side)


def _push(spec: SceneSpec, o: ObjectSpec, rng: np.random.Generator, n: int) -> tuple[str, np.ndarray, str]:
    direction = str(rng.choice(["left", "right", "forward"]))
    dist = float(rng.uniform(0.06, 0.12))
    c = _object_centre(spec, o)
    half = 0.5 * max(o.size[0], o.size[1]) if o.shape == "box" else o.size[0]
    if direction == "forward":
        side, d = "right", np.array([0.0, 1.0, 0.0])
        R = _frame(np.array([0.0, 0.0, 1.0]), -d)
    else:
        d = np.array([-1.0, 0.0, 0.0]) if direction == "left" else np.array([1.0, 0.0, 0.0])
        side = "right" if direction == "left" else "left"
        R = _frame(np.array([0.0, 1.0, 0.0]), -d)
    palm_z = spec.table_height + 0.05 if direction == "forward" else c[2] + 0.015
    contact = c - d * (half + 0.014)
    contact[2] = palm_z
    start = contact - d * float(rng.uniform(0.08, 0.12)) + np.array([0, 0, 0.06])
    keys = [
        (0.0, _params(R, start, RELAXED, side)),
        (0.3, _params(R, contact - d * 0.02, FLAT, side)),
        (0.85, _params(R, contact + d * dist, FLAT, side)),
        (1.0, _params(R, contact + d * dist, FLAT, side)),
    ]
    text = f"the {side} hand pushes the {o.name.replace('_', ' ')} {direction}"
    return side, _interp(keys, n), text


#: wrist to the fingertips of a straight hand along its forward axis (m), as the poke places its fingertip
FINGER_REACH = 0.125
#: sweep directions: name -> unit direction on the table (world x right, y forward)
SWEEP_DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "forward": (0.0, 1.0), "back": (0.0, -1.0)}


def _sweep(spec: SceneSpec, o: ObjectSpec, rng: np.random.Generator, n: int) -> tuple[str, np.ndarray, str]:
    """The hand as an interactive env holds it (palm down, fingers forward and relaxed) lowered beside the object
    and moved straight through its place, as a keyboard or a policy pushes: direction, distance, timing and the
    hand's height vary; it holds still, then lifts away."""
    direction = str(rng.choice(list(SWEEP_DIRECTIONS)))
    d = np.array([*SWEEP_DIRECTIONS[direction], 0.0])
    side = "left" if d[0] > 0 else "right" if d[0] < 0 else str(rng.choice(["left", "right"]))
    R = PALM_DOWN
    c = _object_centre(spec, o)
    half = 0.5 * max(o.size[0], o.size[1]) if o.shape == "box" else o.size[0]
    palm_z = spec.table_height + float(rng.uniform(0.025, 0.04))
    # the fingers reach FINGER_REACH ahead of the wrist (the pose's forward, world +y): a forward sweep leads with
    # them, so the wrist starts and stops that much further back (else the hand comes down on the object)
    lead = FINGER_REACH if direction == "forward" else 0.0
    start = c - d * (half + lead + float(rng.uniform(0.06, 0.1)))
    start[2] = palm_z
    end = c + d * (float(rng.uniform(0.04, 0.12)) - lead)
    end[2] = palm_z
    above = start + np.array([0.0, 0.0, float(rng.uniform(0.06, 0.1))])
    t_down, t_end = float(rng.uniform(0.1, 0.25)), float(rng.uniform(0.55, 0.8))
    keys = [
        (0.0, _params(R, above, RELAXED, side)),
        (t_down, _params(R, start, RELAXED, side)),
        (t_end, _params(R, end, RELAXED, side)),
        (min(t_end + 0.1, 0.95), _params(R, end, RELAXED, side)),
        (1.0, _params(R, end + np.array([0.0, 0.0, 0.05]), RELAXED, side)),
    ]
    text = f"the {side} hand sweeps the {o.name.replace('_', ' ')} {direction}"
    return side, _interp(keys, n), text


def _touch(
    spec: SceneSpec, o: ObjectSpec, rng: np.random.Generator, n: int, poke: bool = False
) -> tuple[str, np.ndarray, str]:
    side = str(rng.choice(["left", "right"]))
    top = _object_top(spec, o)
    if poke:  # a quick horizontal jab of the index fingertip into the object's near side
        c = _object_centre(spec, o)
        f = np.array([0.0, 1.0, -0.15])
        R = _frame(f, np.array([0.0, 0.0, 1.0]))
        half = 0.5 * o.size[1] if o.shape == "box" else o.size[0]
        tip = c - np.array([0, half + 0.002, 0]) + np.array([0.0, 0.015, 0.0])
        palm = tip - R @ np.array([FINGER_REACH, 0.0, 0.0])
        keys = [
            (0.0, _params(R, palm - [0, 0.12, -0.05], RELAXED, side)),
            (0.45, _params(R, palm - [0, 0.03, 0], POINT, side)),
            (0.6, _params(R, palm, POINT, side)),
            (1.0, _params(R, palm - [0, 0.1, -0.04], POINT, side)),
        ]
        return side, _interp(keys, n), f"the {side} hand pokes the {o.name.replace('_', ' ')} with its index finger"
    f = np.array([0.0, 0.55, -0.84])
    R = _frame(f, np.array([0.0, 0.84, 0.55]))
    palm = top + np.array([0.0, 0.0, 0.004]) - R @ np.array([0.125, 0.0, 0.0])
    keys = [
        (0.0, _params(R, palm + [0.0, -0.12, 0.12], RELAXED, side)),
        (0.5, _params(R, palm, POINT, side)),
        (0.7, _params(R, palm, POINT, side)),
        (1.0, _params(R, palm + [0.0, -0.08, 0.1], RELAXED, side)),
    ]
    return side, _interp(keys, n), f"the {side} hand reaches out and touches the {o.name.replace('_', ' ')}"


def _wave(spec: SceneSpec, rng: np.random.Generator, n: int) -> tuple[str, np.ndarray, str]:
    side = str(rng.choice(["left", "right"]))
    base = np.array([float(rng.uniform(-0.2, 0.2)), 0.2, spec.table_height + 0.3])
    R = _frame(np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0]))
    keys = []
    for i, s in enumerate(np.linspace(0, 1, 7)):
        swing = 0.07 * (1 if i % 2 else -1) if 0 < i < 6 else 0.0
        keys.append((float(s), _params(R, base + [swing, 0, 0], FLAT, side)))
    return side, _interp(keys, n), f"the {side} hand waves above the table without touching anything"


def _pinch_params(spec: SceneSpec, o: ObjectSpec, lift: float, squeeze: float, model: HandModel) -> np.ndarray:
    """IK for a top-down pinch: thumb tip on the object's -x face, index and middle tips on +x."""
    c = _object_centre(spec, o)
    half = 0.5 * o.size[0] if o.shape == "box" else o.size[0]
    if o.shape == "box":  # pinch across the box's local x after its yaw
        ax = np.array([math.cos(o.yaw), math.sin(o.yaw), 0.0])
    else:
        ax = np.array([1.0, 0.0, 0.0])
    target = np.zeros((21, 3))
    grip = c + np.array([0, 0, lift])
    reach = half + FINGER_RADIUS - squeeze  # the fingertip capsules' sides press on the faces
    side_y = np.cross([0.0, 0.0, 1.0], ax)
    up = np.array([0.0, 0.0, 1.0])
    # fingers hang straight down along the faces: thumb on one side, index and middle on the other,
    # ring and little finger curled above, the wrist high above the object
    target[16] = grip - ax * reach
    target[15] = grip - ax * (reach + 0.004) + up * 0.028
    target[17] = grip + ax * reach + side_y * 0.012
    target[18] = grip + ax * reach - side_y * 0.012
    target[3] = target[17] + ax * 0.003 + up * 0.022
    target[6] = target[18] + ax * 0.003 + up * 0.024
    target[2] = target[17] + ax * 0.008 + up * 0.046
    target[5] = target[18] + ax * 0.008 + up * 0.05
    target[19] = grip + ax * (reach + 0.02) - side_y * 0.03 + up * 0.07
    target[20] = grip + ax * (reach + 0.02) - side_y * 0.045 + up * 0.07
    target[0] = grip + ax * 0.02 + up * 0.14
    weight = np.zeros(21)
    weight[[2, 3, 5, 6, 15, 19, 20]] = 1.0
    weight[[16, 17, 18]] = 20.0  # the contacts matter most
    weight[0] = 0.2
    res = fit_hand(
        torch.from_numpy(target[None]),
        "right",
        valid=torch.from_numpy(weight[None]),
        model=model,
        adam_steps=80,
        lbfgs_steps=20,
    )
    return res.params[0].double().numpy()


def _pick_place(spec: SceneSpec, o: ObjectSpec, rng: np.random.Generator, n: int) -> tuple[str, np.ndarray, str]:
    model = HandModel("right", limits="off")
    lift = float(rng.uniform(0.08, 0.12))
    shift = np.array([float(rng.uniform(-0.1, 0.1)), float(rng.uniform(-0.05, 0.05)), 0.0])
    open_p = _pinch_params(spec, o, 0.0, -0.025, model)
    grip = _pinch_params(spec, o, 0.0, 0.003, model)
    above = open_p.copy()
    above[48:] += [0, 0, 0.1]
    lifted = grip.copy()
    lifted[48:] += [0, 0, lift]
    moved = lifted.copy()
    moved[48:] += shift
    placed = grip.copy()
    placed[48:] += shift + np.array([0, 0, 0.004])
    released = open_p.copy()
    released[48:] += shift + np.array([0, 0, 0.01])
    keys = [
        (0.0, above),
        (0.2, open_p),
        (0.32, grip),
        (0.5, lifted),
        (0.65, moved),
        (0.78, placed),
        (0.88, released),
        (1.0, released + np.r_[np.zeros(48), 0, 0, 0.08]),
    ]
    where = "to the left" if shift[0] < -0.03 else "to the right" if shift[0] > 0.03 else "back down"
    return "right", _interp(keys, n), f"the right hand picks up the {o.name.replace('_', ' ')} and places it {where}"


def _drawer(spec: SceneSpec, rng: np.random.Generator, n: int, opening: bool) -> tuple[str, np.ndarray, str]:
    from .build import drawer_boxes

    handle = np.array(drawer_boxes(spec)[5][1])
    travel = spec.drawer.travel * float(rng.uniform(0.7, 0.95))  # type: ignore[union-attr]
    # fingers point forward (+y) and hook down behind the handle bar, palm facing down
    R = _frame(np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]))
    grip = handle + np.asarray(HANDLE_GRIP)
    if opening:
        keys = [
            (0.0, _params(R, grip + [0, -0.1, 0.06], RELAXED, "right")),
            (0.25, _params(R, grip + [0, 0, 0.03], FLAT, "right")),
            (0.4, _params(R, grip, HOOK, "right")),
            (0.9, _params(R, grip - [0, travel, 0], HOOK, "right")),
            (1.0, _params(R, grip - [0, travel, -0.005], HOOK, "right")),
        ]
        return "right", _interp(keys, n), "the right hand pulls the drawer open"
    opened = spec.drawer.initial_open  # type: ignore[union-attr]
    front = grip - np.array([0.0, opened, 0.0]) + np.array([0.0, -0.012, -0.01])
    R2 = _frame(np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0]))
    keys = [
        (0.0, _params(R2, front + [0, -0.1, 0.02], RELAXED, "right")),
        (0.3, _params(R2, front, FLAT, "right")),
        (0.85, _params(R2, front + [0, travel + 0.01, 0], FLAT, "right")),
        (1.0, _params(R2, front + [0, travel - 0.05, 0.02], FLAT, "right")),
    ]
    return "right", _interp(keys, n), "the right hand pushes the drawer closed"


def camera_path(
    spec: SceneSpec, motion: str, n: int, rng: np.random.Generator, target: np.ndarray | None = None
) -> np.ndarray:
    """Camera-to-world poses (n, 7) of a head looking at the table: "static", "pan", "look_at"
    (turns towards ``target``), "step_closer", or "jitter" (natural head jitter)."""
    if motion not in CAMERA_MOTIONS:
        raise ValueError(f"`motion` must be one of {CAMERA_MOTIONS}, got {motion!r}")
    cx, cy = spec.table_center
    # a seated person's eyes: ~0.6 m from the table's centre and ~0.45 m above its top
    eye0 = np.array(
        [
            cx + float(rng.uniform(-0.08, 0.08)),
            cy - 0.6 + float(rng.uniform(-0.04, 0.04)),
            spec.table_height + 0.45 + float(rng.uniform(-0.04, 0.04)),
        ]
    )
    look0 = np.array([cx, cy - 0.02, spec.table_height])
    if target is not None:  # people look at what they are about to handle
        look0 = 0.35 * look0 + 0.65 * np.array([target[0], target[1], spec.table_height])
    s = np.linspace(0.0, 1.0, n)[:, None]
    eye = np.repeat(eye0[None], n, 0)
    look = np.repeat(look0[None], n, 0)
    if motion == "pan":
        look = look + s * np.array([float(rng.choice([-1, 1])) * 0.2, 0.0, 0.0])
    elif motion == "look_at" and target is not None:
        look = (1 - s) * look0 + s * np.asarray(target, np.float64)
    elif motion == "step_closer":
        eye = eye + s * (look0 - eye0) * 0.25
    elif motion == "jitter":
        eye = eye + np.cumsum(rng.normal(0, 0.003, (n, 3)), 0)
        look = look + np.cumsum(rng.normal(0, 0.006, (n, 3)), 0)
    vm = look_at(torch.from_numpy(eye), torch.from_numpy(look))
    return viewmat_to_pose7(vm).numpy()


def make_action(
    spec: SceneSpec,
    kind: str,
    rng: np.random.Generator,
    num_frames: int = 16,
    fps: float = 8.0,
    target: str | None = None,
    camera: str | None = None,
) -> Action:
    """A randomized scripted clip of ``kind`` (see ``ACTION_KINDS``) on ``target`` (default: random)."""
    if kind not in ACTION_KINDS:
        raise ValueError(f"`kind` must be one of {ACTION_KINDS}, got {kind!r}")
    if kind in ("open_drawer", "close_drawer") and spec.drawer is None:
        raise ValueError(f"scene {spec.name!r} has no drawer for {kind!r}")
    if kind == "close_drawer" and spec.drawer.initial_open < 0.03:  # type: ignore[union-attr]
        raise ValueError(f"the drawer of {spec.name!r} starts closed: nothing to close")
    if kind == "open_drawer" and spec.drawer.initial_open > 0.03:  # type: ignore[union-attr]
        raise ValueError(f"the drawer of {spec.name!r} starts open: nothing to open")
    objects = {o.name: o for o in spec.objects}
    if target is not None and target not in objects:
        raise ValueError(f"no object {target!r} in scene {spec.name!r}; it has {sorted(objects)}")
    o = objects[target] if target else spec.objects[int(rng.integers(len(spec.objects)))]
    if kind == "push":
        side, params, text = _push(spec, o, rng, num_frames)
    elif kind in ("touch", "poke"):
        side, params, text = _touch(spec, o, rng, num_frames, poke=kind == "poke")
    elif kind == "wave":
        side, params, text = _wave(spec, rng, num_frames)
    elif kind == "pick_place":
        side, params, text = _pick_place(spec, o, rng, num_frames)
    elif kind == "sweep":
        side, params, text = _sweep(spec, o, rng, num_frames)
    else:
        side, params, text = _drawer(spec, rng, num_frames, opening=kind == "open_drawer")
    h = 0 if side == "left" else 1
    all_params = np.zeros((num_frames, 2, 51))
    all_params[:, h] = params
    all_params[:, 1 - h] = _rest_pose("right" if h == 0 else "left")
    visible = np.zeros((num_frames, 2), bool)
    visible[:, h] = True
    if kind == "sweep" and rng.random() < 0.5:  # the other hand in view, idle where an interactive episode starts it
        idle = start_palms((*spec.table_center, spec.table_height))[1 - h]
        all_params[:, 1 - h] = _params(PALM_DOWN, idle, RELAXED, "left" if h == 1 else "right")
        visible[:, 1 - h] = True
    joints = params_to_joints(all_params, visible)
    all_params[~visible] = 0.0
    motion = camera or str(rng.choice(CAMERA_MOTIONS))
    tgt = _object_centre(spec, o) if kind not in ("wave", "open_drawer", "close_drawer") else None
    cam = camera_path(spec, motion, num_frames, rng, tgt)
    traj = HandTrajectory(
        t=np.arange(num_frames) / fps,
        joints=joints.astype(np.float32),
        visible=visible,
        params=all_params.astype(np.float32),
        camera=cam.astype(np.float32),
    )
    return Action(traj, text, kind, None if kind in ("wave", "open_drawer", "close_drawer") else o.name)
