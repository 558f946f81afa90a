"""Candidate actions: scripted primitives with randomized parameters, and perturbations of an action."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

__all__ = [
    "DRAWER_FRACTIONS",
    "perturb_action",
    "primitive_candidates",
    "slowed",
    "task_candidates",
    "with_camera",
    "withdraw",
]

#: the fractions of a drawer pull that the drawer candidates play (and a drawer goal is drawn from)
DRAWER_FRACTIONS = (1.0, 0.6, 0.3)


def with_camera(action: Any, camera: np.ndarray) -> Any:
    """The action with its camera path replaced (candidates of one plan share the camera, hence the
    static video)."""
    return replace(action, trajectory=replace(action.trajectory, camera=camera.astype(np.float32)))


def withdraw(action: Any, frames: int, lift: float = 0.08, back: float = 0.5) -> Any:
    """The action followed by ``frames`` more in which each visible hand keeps its last pose and
    moves up by ``lift`` metres and ``back`` of the way to where it started, so the end state is
    not hidden under the hand (goal images show no hands); the camera holds its last pose."""
    from ..hands.model import params_to_joints

    if frames < 0:
        raise ValueError(f"`frames` must be >= 0, got {frames}")
    tr = action.trajectory
    if frames == 0:
        return action
    if tr.params is None:
        raise ValueError("withdraw needs hand parameters in the trajectory")
    s = np.linspace(0.0, 1.0, frames + 1)[1:, None]  # (F, 1)
    params = np.repeat(tr.params[-1:], frames, 0).astype(np.float64)
    for h in range(2):
        if not tr.visible[-1, h]:
            continue
        first = tr.params[int(np.argmax(tr.visible[:, h])), h, 48:].astype(np.float64)
        last = tr.params[-1, h, 48:].astype(np.float64)
        goal = last + back * (first - last) + np.array([0.0, 0.0, lift])
        params[:, h, 48:] = last + s * (goal - last)
    visible = np.repeat(tr.visible[-1:], frames, 0)
    joints = params_to_joints(params.astype(np.float32), visible)
    params[~visible] = 0.0
    dt = float(tr.t[1] - tr.t[0]) if len(tr.t) > 1 else 1.0 / 8.0
    new = replace(
        tr, t=np.concatenate([tr.t, tr.t[-1] + dt * np.arange(1, frames + 1)]),
        joints=np.concatenate([tr.joints, joints]), visible=np.concatenate([tr.visible, visible]),
        params=np.concatenate([tr.params, params.astype(np.float32)]),
        camera=None if tr.camera is None else np.concatenate([tr.camera, np.repeat(tr.camera[-1:], frames, 0)]),
        joint_valid=None if tr.joint_valid is None else np.concatenate(
            [tr.joint_valid, np.repeat(tr.joint_valid[-1:], frames, 0)]),
    )  # fmt: skip
    return replace(action, trajectory=new)


def primitive_candidates(spec: Any, target: str, n: int, rng: np.random.Generator, frames: int = 16,
                         camera: np.ndarray | None = None, withdraw_frames: int = 0) -> list[Any]:  # fmt: skip
    """``n`` scripted candidates around ``target``: pushes of it in each direction (left, right,
    forward), then pushes of other objects, a touch, a poke and a wave, with randomized parameters,
    all seen along one ``camera`` path (default: the static head camera of the first candidate).
    Each lasts ``frames`` frames, the last ``withdraw_frames`` of which take the hand away
    (:func:`withdraw`; off by default: once the hand has left, the default world model's end frames
    no longer show a pushed object at its new place, and its top-1 agreement on ``dexsim bench plan``
    falls from 0.65 to 0.35)."""
    from ..physics.actions import make_action

    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}")
    if not 0 <= withdraw_frames < frames - 1:
        raise ValueError(f"`withdraw_frames` must be in [0, frames - 1), got {withdraw_frames} for {frames} frames")
    act_frames = frames - withdraw_frames
    out: list[Any] = []
    for direction in ("left", "right", "forward"):
        for _ in range(60):
            a = make_action(spec, "push", rng, act_frames, target=target, camera="static")
            if a.text.endswith(direction):
                out.append(a)
                break
    others = [o.name for o in spec.objects if o.name != target]
    kinds: list[tuple[str, str | None]] = [("push", o) for o in others] + [("touch", target), ("poke", target),
                                                                           ("wave", None)]  # fmt: skip
    i = 0
    while len(out) < n:
        kind, tgt = kinds[i % len(kinds)]
        out.append(make_action(spec, kind, rng, act_frames, target=tgt, camera="static"))
        i += 1
    out = [withdraw(a, withdraw_frames) for a in out[:n]]
    cam = camera if camera is not None else out[0].trajectory.camera
    return [with_camera(a, cam) for a in out]


def slowed(action: Any, fraction: float) -> Any:
    """The action played at ``fraction`` of its speed over the same frames (it stops ``fraction`` of the
    way through its motion); joints recomputed, camera and visibility kept."""
    from ..hands.model import params_to_joints

    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"`fraction` must lie in (0, 1], got {fraction}")
    tr = action.trajectory
    if tr.params is None:
        raise ValueError("slowed needs hand parameters in the trajectory")
    from ..forecast.ground import warp_time

    params = warp_time(tr.params.astype(np.float64), fraction)
    joints = tr.joints.copy()
    shown = tr.visible.any(0)  # a hand never in view keeps its joints
    joints[:, shown] = params_to_joints(params.astype(np.float32), tr.visible)[:, shown]
    return replace(action, trajectory=replace(tr, params=params.astype(np.float32), joints=joints))


def task_candidates(spec: Any, kind: str, target: str | None, n: int, rng: np.random.Generator, frames: int = 16,
                    camera: np.ndarray | None = None) -> list[Any]:  # fmt: skip
    """``n`` scripted candidates for a task of ``kind`` (``push``, ``pick_place``, ``open_drawer``), seen along
    one camera path. ``push``: :func:`primitive_candidates`. ``pick_place``: three pick-and-places of the
    target (each to its own random place), then pushes of it, a touch, a wave and pushes of the other
    objects. ``open_drawer``: a pull played to :data:`DRAWER_FRACTIONS` of its motion (three draws), then
    a wave, touches and pushes of the objects."""
    from ..physics.actions import make_action

    if kind == "push":
        assert target is not None
        return primitive_candidates(spec, target, n, rng, frames, camera)
    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}")
    others = [o.name for o in spec.objects if o.name != target]
    out: list[Any]
    if kind == "pick_place":
        out = [make_action(spec, "pick_place", rng, frames, target=target, camera="static") for _ in range(3)]
        fill: list[tuple[str, str | None]] = [("push", target), ("touch", target), ("wave", None)]
        fill += [("push", o) for o in others]
    elif kind == "open_drawer":
        out = [slowed(make_action(spec, "open_drawer", rng, frames, camera="static"), f) for f in DRAWER_FRACTIONS]
        fill = [("wave", None)] + [(k, o) for o in others for k in ("touch", "push")]
    else:
        raise ValueError(f"no planning candidates for task kind {kind!r}; choose push, pick_place or open_drawer")
    i = 0
    while len(out) < n:
        k, tgt = fill[i % len(fill)]
        out.append(make_action(spec, k, rng, frames, target=tgt, camera="static"))
        i += 1
    cam = camera if camera is not None else out[0].trajectory.camera
    return [with_camera(a, cam) for a in out[:n]]


def perturb_action(action: Any, rng: np.random.Generator, n: int, translation: float = 0.03,
                   rotation: float = 0.15) -> list[Any]:  # fmt: skip
    """``n`` variants of ``action``: each visible hand's whole path shifted by a random offset (metres)
    and turned by a random small rotation (radians) about its wrist; joints recomputed."""
    from ..geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
    from ..hands.model import HandModel

    tr = action.trajectory
    models = (HandModel("left", limits="off"), HandModel("right", limits="off"))
    out = []
    for _ in range(n):
        params = tr.params.astype(np.float64).copy()
        joints = tr.joints.copy()
        for h in range(2):
            if not tr.visible[:, h].any():
                continue
            off = rng.normal(0.0, translation, 3)
            turn = axis_angle_to_matrix(torch.from_numpy(rng.normal(0.0, rotation, 3)))
            go = axis_angle_to_matrix(torch.from_numpy(params[:, h, :3]))
            params[:, h, :3] = matrix_to_axis_angle(turn @ go).numpy()
            params[:, h, 48:] += off
            p = torch.from_numpy(params[:, h]).float()
            joints[:, h] = models[h](p[:, :3], p[:, 3:48], p[:, 48:], with_mesh=False).joints.numpy()
            joints[~tr.visible[:, h], h] = 0.0
        out.append(replace(action, trajectory=replace(tr, params=params.astype(np.float32), joints=joints)))
    return out
