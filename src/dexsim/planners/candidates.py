"""Candidate actions: scripted primitives with randomized parameters, and perturbations of an action."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

__all__ = ["perturb_action", "primitive_candidates", "with_camera"]


def with_camera(action: Any, camera: np.ndarray) -> Any:
    """The action with its camera path replaced (candidates of one plan share the camera, hence the
    static video)."""
    return replace(action, trajectory=replace(action.trajectory, camera=camera.astype(np.float32)))


def primitive_candidates(spec: Any, target: str, n: int, rng: np.random.Generator, frames: int = 16,
                         camera: np.ndarray | None = None) -> list[Any]:  # fmt: skip
    """``n`` scripted candidates around ``target``: pushes of it in each direction (left, right,
    forward), then pushes of other objects, a touch, a poke and a wave, with randomized parameters,
    all seen along one ``camera`` path (default: the static head camera of the first candidate)."""
    from ..physics.actions import make_action

    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}")
    out: list[Any] = []
    for direction in ("left", "right", "forward"):
        for _ in range(60):
            a = make_action(spec, "push", rng, frames, target=target, camera="static")
            if a.text.endswith(direction):
                out.append(a)
                break
    others = [o.name for o in spec.objects if o.name != target]
    kinds: list[tuple[str, str | None]] = [("push", o) for o in others] + [("touch", target), ("poke", target),
                                                                           ("wave", None)]  # fmt: skip
    i = 0
    while len(out) < n:
        kind, tgt = kinds[i % len(kinds)]
        out.append(make_action(spec, kind, rng, frames, target=tgt, camera="static"))
        i += 1
    out = out[:n]
    cam = camera if camera is not None else out[0].trajectory.camera
    return [with_camera(a, cam) for a in out]


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
