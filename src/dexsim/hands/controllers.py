"""Action modes as hand controllers (layer 1), after ManiSkill's controllers.

A controller is a pure function ``step(state, action) -> (chunk, next_state)``: from the head
camera and hand state at the end of the last chunk and one action, the per-frame camera poses and
hand states of the next ``chunk`` frames. It owns its bounded action space, validates every action
at the door (a value that cannot be an action raises :class:`ActionError` naming it) and clamps
values outside the bounds (``clamp``: ``"warn"``, ``"silent"`` or ``"error"``).

Modes:
    ``delta``     ``Box(-1, 1, (21,))``: camera move (3, x 5 cm) and turn (yaw, pitch; x 0.15 rad); per
                  hand (left, then right) wrist move (3, x 8 cm), wrist turn (axis-angle, x 0.5 rad),
                  grasp closure (-1 open .. 1 closed), presence (> 0: in view). Interpolated over the chunk.
    ``mano``      ``Dict(camera (chunk, 7) [t, q] camera-to-world, params (chunk, 2, 51), visible (chunk, 2))``.
    ``keypoints`` ``Dict(camera, joints (chunk, 2, 21, 3) world, visible)`` fitted by inverse kinematics;
                  an optional ``joint_valid`` (chunk, 2, 21) declares missing joints (their values are
                  ignored, NaN allowed); a NaN joint not declared missing is refused.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch
from gymnasium import spaces

from ..geometry.camera import look_at
from ..geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quat,
    matrix_to_axis_angle,
    quat_multiply,
    quat_to_matrix,
)
from ..geometry.se3 import viewmat_to_pose7
from .poses import PALM_DOWN, default_hands, grip_pose, palm_params
from .skeleton import joint_limits

__all__ = [
    "ACTION_MODES",
    "DELTA_SCALE",
    "ActionError",
    "Chunk",
    "Controller",
    "DeltaController",
    "HandState",
    "KeypointsController",
    "ManoController",
    "initial_state",
    "make_controller",
    "start_palms",
]

ACTION_MODES = ("delta", "mano", "keypoints")
#: scale of one ``delta`` action = 1: camera move (m), camera turn (rad), wrist move (m), wrist turn (rad)
DELTA_SCALE = {"camera_move": 0.05, "camera_turn": 0.15, "wrist_move": 0.08, "wrist_turn": 0.5}
#: how far the head camera may leave the workspace box: (below, above) per axis, metres
CAMERA_MARGIN = (np.array([0.5, 0.8, 0.0]), np.array([0.5, 0.3, 0.6]))
SIDES = ("left", "right")


class ActionError(ValueError):
    """A value that cannot be an action (wrong layout, non-finite, a zero quaternion...)."""


@dataclass(frozen=True)
class HandState:
    """The state a controller steps from: ``camera`` (7,) camera-to-world ``[t, q]``; per hand (left,
    right) the ``palm`` centre (2, 3), ``wrist`` orientation (2, 3, 3), ``grasp`` closure (2,) in
    [0, 1], ``visible`` (2,) bool and the MANO-style ``params`` (2, 51) they give."""

    camera: np.ndarray
    palm: np.ndarray
    wrist: np.ndarray
    grasp: np.ndarray
    visible: np.ndarray
    params: np.ndarray


@dataclass(frozen=True)
class Chunk:
    """The frames one action makes: ``cameras`` (C, 7), ``params`` (C, 2, 51), ``visible`` (C, 2) bool."""

    cameras: np.ndarray
    params: np.ndarray
    visible: np.ndarray

    def __len__(self) -> int:
        return len(self.cameras)

    @staticmethod
    def concatenate(chunks: list[Chunk]) -> Chunk:
        return Chunk(*(np.concatenate([getattr(c, f) for c in chunks]) for f in ("cameras", "params", "visible")))


def hand_params(palm: np.ndarray, wrist: np.ndarray, grasp: np.ndarray) -> np.ndarray:
    """(..., 2, 51) parameters of both hands from palm centres (..., 2, 3), wrist orientations (..., 2, 3, 3) and
    grasp closures (..., 2) (one batched call for all frames of a chunk)."""
    return np.stack([palm_params(wrist[..., h, :, :], palm[..., h, :], grip_pose(grasp[..., h]), side)
                     for h, side in enumerate(SIDES)], axis=-2)  # fmt: skip


def start_palms(table: tuple[float, float, float]) -> np.ndarray:
    """(2, 3) where an episode starts the palm centres (left, right): 18 cm either side of the ``table`` centre
    ``(x, y, top height)``, 12 cm nearer the viewer and 12 cm above the top."""
    cx, cy, th = table
    return np.array([[cx - 0.18, cy - 0.12, th + 0.12], [cx + 0.18, cy - 0.12, th + 0.12]])


def initial_state(table: tuple[float, float, float], start_camera: np.ndarray | None,
                  rng: np.random.Generator) -> HandState:  # fmt: skip
    """Where an episode starts: the head camera at ``start_camera`` (or 60 cm in front of and 45 cm
    above the ``table`` centre, looking at it), jittered by up to 2 cm; both hands hidden, palms
    down 12 cm above the table, fingers relaxed."""
    cx, cy, th = table
    jitter = rng.uniform(-0.02, 0.02, 3)
    if start_camera is not None:
        camera = np.asarray(start_camera, np.float64).copy()
        camera[:3] += jitter
    else:
        eye = np.array([cx, cy - 0.6, th + 0.45]) + jitter
        camera = viewmat_to_pose7(look_at(torch.from_numpy(eye), torch.tensor([cx, cy - 0.02, th]))).numpy()
    wrist = np.stack([PALM_DOWN, PALM_DOWN])
    palm = start_palms(table)
    grasp = np.zeros(2)
    return HandState(camera, palm, wrist, grasp, np.array([False, False]), hand_params(palm, wrist, grasp))


class Controller(Protocol):
    """``step(state, action) -> (Chunk, HandState)``, pure; ``action_space`` bounds the actions."""

    mode: str
    chunk: int
    action_space: spaces.Space

    def step(self, state: HandState, action: Any) -> tuple[Chunk, HandState]: ...


def _clamp(name: str, value: np.ndarray, lo: Any, hi: Any, policy: str) -> np.ndarray:
    clipped = np.clip(value, lo, hi)
    if not np.array_equal(clipped, value):
        msg = f"action `{name}` outside its bounds (max excess {float(np.max(np.abs(clipped - value))):.3g}): clamped"
        if policy == "error":
            raise ActionError(msg)
        if policy == "warn":
            warnings.warn(msg, stacklevel=4)
    return clipped


def _array(name: str, value: Any, shape: tuple[int, ...], allow_nan: bool = False) -> np.ndarray:
    """``value`` as float64 of exactly ``shape`` (never reshaped), finite unless ``allow_nan``."""
    try:
        arr = np.asarray(value, np.float64)
    except (TypeError, ValueError) as e:
        raise ActionError(f"action `{name}` is not numeric: {e}") from None
    if arr.shape != shape:
        raise ActionError(f"action `{name}` must have shape {shape}, got {arr.shape}")
    bad = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ActionError(f"action `{name}` has a non-finite value at index {idx}: {arr[idx]}")
    return arr


def _visible(value: Any, chunk: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != (chunk, 2):
        raise ActionError(f"action `visible` must have shape {(chunk, 2)}, got {arr.shape}")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ActionError(f"action `visible` must be 0/1 or bool, got values {np.unique(arr)[:5].tolist()}")
    return arr.astype(bool)


class _BaseController:
    mode = "base"

    def __init__(self, chunk: int, workspace: tuple[np.ndarray, np.ndarray], clamp: str = "warn") -> None:
        if not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool) or chunk < 1:
            raise ValueError(f"`chunk` must be a positive int, got {chunk!r}")
        if clamp not in ("warn", "silent", "error"):
            raise ValueError(f"`clamp` must be 'warn', 'silent' or 'error', got {clamp!r}")
        self.chunk, self.clamp = int(chunk), clamp
        self.workspace = (np.asarray(workspace[0], np.float64), np.asarray(workspace[1], np.float64))
        self.camera_low = np.concatenate((self.workspace[0] - CAMERA_MARGIN[0], -np.ones(4)))
        self.camera_high = np.concatenate((self.workspace[1] + CAMERA_MARGIN[1], np.ones(4)))
        self.action_space = self._space()

    def _space(self) -> spaces.Space:
        raise NotImplementedError

    def _camera_space(self) -> spaces.Box:
        c = self.chunk
        return spaces.Box(np.tile(self.camera_low, (c, 1)), np.tile(self.camera_high, (c, 1)), dtype=np.float64)

    def _dict_action(self, action: Any) -> dict[str, Any]:
        sp = self.action_space
        if not isinstance(action, dict):
            raise ActionError(f"action_mode {self.mode!r} takes a dict with keys {sorted(sp.spaces)}, got "
                              f"{type(action).__name__}")  # fmt: skip
        missing = set(sp.spaces) - set(action)
        if missing:
            raise ActionError(f"the action lacks {sorted(missing)}")
        return action

    def _cameras(self, value: Any) -> np.ndarray:
        cam = _array("camera", value, (self.chunk, 7))
        n = np.linalg.norm(cam[:, 3:], axis=-1)
        if (n < 1e-6).any():
            i = int(np.argmax(n < 1e-6))
            raise ActionError(f"action `camera` has a zero quaternion at frame {i}: {cam[i, 3:].tolist()}")
        sp = self.action_space["camera"]
        cam = _clamp("camera", cam, sp.low, sp.high, self.clamp)
        not_unit = np.abs(n - 1.0) > 1e-9  # unit quaternions pass unchanged, bit for bit
        cam[not_unit, 3:] /= np.linalg.norm(cam[not_unit, 3:], axis=-1, keepdims=True)
        return cam

    def _next(self, state: HandState, chunk: Chunk) -> HandState:
        return replace(state, camera=chunk.cameras[-1].copy(), params=chunk.params[-1].copy(),
                       visible=chunk.visible[-1].copy())  # fmt: skip


class DeltaController(_BaseController):
    """Relative motions of the camera and the wrists; see the module docstring."""

    mode = "delta"

    def _space(self) -> spaces.Space:
        return spaces.Box(-1.0, 1.0, (21,), np.float32)

    def step(self, state: HandState, action: Any) -> tuple[Chunk, HandState]:
        a = _array("delta", action, (21,))
        a = _clamp("delta", a, -1.0, 1.0, self.clamp)
        fractions = np.linspace(1.0 / self.chunk, 1.0, self.chunk)
        cameras = self._camera_path(state.camera, a[:5], fractions)
        lo, hi = self.workspace
        palm_end, wrist_end, grasp_end = state.palm.copy(), state.wrist.copy(), state.grasp.copy()
        visible = np.zeros((self.chunk, 2), bool)
        for h in range(2):
            d = a[5 + 8 * h : 13 + 8 * h]
            palm_end[h] = np.clip(state.palm[h] + DELTA_SCALE["wrist_move"] * d[:3], lo, hi)
            wrist_end[h] = axis_angle_to_matrix(torch.from_numpy(DELTA_SCALE["wrist_turn"] * d[3:6])).numpy() \
                @ state.wrist[h]  # fmt: skip
            grasp_end[h] = (d[6] + 1.0) / 2.0
            visible[:, h] = d[7] > 0
        turn = matrix_to_axis_angle(torch.from_numpy(wrist_end @ state.wrist.transpose(0, 2, 1))).numpy()  # (2, 3)
        f = fractions[:, None, None]  # (C, 1, 1)
        wrists = axis_angle_to_matrix(torch.from_numpy(f * turn)).numpy() @ state.wrist  # (C, 2, 3, 3)
        params = hand_params((1 - f) * state.palm + f * palm_end, wrists,
                             (1 - f[..., 0]) * state.grasp + f[..., 0] * grasp_end)  # fmt: skip
        chunk = Chunk(cameras, params, visible)
        return chunk, replace(self._next(state, chunk), palm=palm_end, wrist=wrist_end, grasp=grasp_end)

    def _camera_path(self, camera: np.ndarray, a: np.ndarray, fractions: np.ndarray) -> np.ndarray:
        """(C, 7): translate in the world, turn about world z (yaw) and the camera's x axis (pitch)."""
        R_cam = quat_to_matrix(torch.from_numpy(camera[3:])).numpy()
        t_end = np.clip(camera[:3] + DELTA_SCALE["camera_move"] * a[:3], self.camera_low[:3], self.camera_high[:3])
        pitch_axis = torch.from_numpy(R_cam[:, 0])
        z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        q0 = torch.from_numpy(camera[3:])
        f = torch.from_numpy(fractions)[:, None]  # (C, 1)
        qy = axis_angle_to_quat(z * DELTA_SCALE["camera_turn"] * a[3] * f)
        qp = axis_angle_to_quat(pitch_axis * DELTA_SCALE["camera_turn"] * a[4] * f)
        cams = np.empty((len(fractions), 7))
        cams[:, 3:] = quat_multiply(qy, quat_multiply(qp, q0)).numpy()
        cams[:, :3] = (1 - fractions[:, None]) * camera[:3] + fractions[:, None] * t_end
        return cams


class ManoController(_BaseController):
    """Absolute camera poses and MANO-style parameters per frame."""

    mode = "mano"

    def _space(self) -> spaces.Space:
        c = self.chunk
        lim = joint_limits(torch.float64).abs().amax(-1).amax(-1).numpy()[1:]  # (15,) widest bound per joint
        lo, hi = self.workspace
        # ``transl`` moves the hand model's origin, which sits up to ~1 m from the wrist: a wider box
        p_lo = np.concatenate((np.full(3, -np.pi), -np.repeat(lim, 3), lo - 1.0))
        p_hi = np.concatenate((np.full(3, np.pi), np.repeat(lim, 3), hi + 1.0))
        params = spaces.Box(np.tile(p_lo, (c, 2, 1)), np.tile(p_hi, (c, 2, 1)), dtype=np.float64)
        return spaces.Dict({"camera": self._camera_space(), "params": params, "visible": spaces.MultiBinary((c, 2))})

    def step(self, state: HandState, action: Any) -> tuple[Chunk, HandState]:
        action = self._dict_action(action)
        cam = self._cameras(action["camera"])
        visible = _visible(action["visible"], self.chunk)
        sp = self.action_space["params"]
        params = _clamp("params", _array("params", action["params"], (self.chunk, 2, 51)), sp.low, sp.high,
                        self.clamp)  # fmt: skip
        chunk = Chunk(cam, params, visible)
        return chunk, self._next(state, chunk)


class KeypointsController(_BaseController):
    """Absolute camera poses and 3D hand keypoints per frame, posed by inverse kinematics."""

    mode = "keypoints"

    def _space(self) -> spaces.Space:
        c = self.chunk
        lo, hi = self.workspace
        joints = spaces.Box(np.tile(lo, (c, 2, 21, 1)), np.tile(hi, (c, 2, 21, 1)), dtype=np.float64)
        return spaces.Dict({"camera": self._camera_space(), "joints": joints, "visible": spaces.MultiBinary((c, 2))})

    def step(self, state: HandState, action: Any) -> tuple[Chunk, HandState]:
        action = self._dict_action(action)
        cam = self._cameras(action["camera"])
        visible = _visible(action["visible"], self.chunk)
        joints = _array("joints", action["joints"], (self.chunk, 2, 21, 3), allow_nan=True)
        valid = np.ones((self.chunk, 2, 21), bool)
        if action.get("joint_valid") is not None:
            valid = np.asarray(action["joint_valid"])
            if valid.shape != (self.chunk, 2, 21):
                raise ActionError(f"action `joint_valid` must have shape {(self.chunk, 2, 21)}, got {valid.shape}")
            valid = valid.astype(bool)
        nan = np.isnan(joints).any(-1) & valid & visible[:, :, None]
        if nan.any():
            i, h, j = (int(x) for x in np.argwhere(nan)[0])
            raise ActionError(f"action `joints` is NaN at frame {i}, hand {h}, joint {j}: declare missing joints "
                              "with `joint_valid` instead")  # fmt: skip
        sp = self.action_space["joints"]
        joints = np.where(valid[..., None], joints, np.nan)
        clamped = _clamp("joints", np.nan_to_num(joints, nan=0.0), sp.low, sp.high, self.clamp)
        joints = np.where(valid[..., None], clamped, np.nan)
        params = self._fit(state, joints, valid, visible)
        chunk = Chunk(cam, params, visible)
        return chunk, self._next(state, chunk)

    def _fit(self, state: HandState, joints: np.ndarray, valid: np.ndarray, visible: np.ndarray) -> np.ndarray:
        from .ik import fit_hand

        out = np.repeat(state.params[None], self.chunk, 0)
        models = default_hands()
        for h, side in enumerate(SIDES):
            frames = visible[:, h] & (valid[:, h].sum(-1) >= 3)
            if frames.any():
                res = fit_hand(torch.from_numpy(np.nan_to_num(joints[:, h])).float(), side, model=models[h],
                               valid=torch.from_numpy(valid[:, h]), adam_steps=60, lbfgs_steps=10)  # fmt: skip
                out[frames, h] = res.params.double().numpy()[frames]
        return out


def make_controller(mode: str, chunk: int, workspace: tuple[np.ndarray, np.ndarray], clamp: str = "warn") -> Controller:
    """The controller of an action ``mode`` (one of :data:`ACTION_MODES`)."""
    classes = {"delta": DeltaController, "mano": ManoController, "keypoints": KeypointsController}
    if mode not in classes:
        raise ValueError(f"`action_mode` must be one of {ACTION_MODES}, got {mode!r}")
    return classes[mode](chunk, workspace, clamp)
