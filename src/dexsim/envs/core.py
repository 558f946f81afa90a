"""``DexWorldEnv``: a Gymnasium env over a static scene, two hands and a world model."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from ..geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ..geometry.se3 import pose7_to_viewmat
from ..hands.trajectory import HandTrajectory

__all__ = ["ACTION_MODES", "DexWorldEnv", "SceneBundle"]

ACTION_MODES = ("delta", "mano", "keypoints")
#: scale of one ``delta`` action = 1: camera move (m), camera turn (rad), wrist move (m), wrist turn (rad)
DELTA_SCALE = {"camera_move": 0.05, "camera_turn": 0.15, "wrist_move": 0.08, "wrist_turn": 0.5}
BACKGROUND = (0.05, 0.05, 0.06)


@dataclass
class SceneBundle:
    """What rendering a scene needs, shared by envs on the same scene: the splat, its fixed part
    (occludes the hand prompt), the per-object rest motions, the physics spec (built-in scenes)."""

    name: str
    scene: Any
    background: Any
    rest_motions: torch.Tensor | None
    spec: Any = None
    workspace: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: (np.full(3, -1.0), np.full(3, 1.0)))
    table: tuple[float, float, float] = (0.0, 0.35, 0.75)
    start_camera: np.ndarray | None = None


def _to_world(scene: Any, world_from_file: np.ndarray) -> Any:
    """Apply a similarity ``x -> s R x + t`` to a splat (SH beyond degree 0 dropped when R rotates)."""
    from ..geometry.rotations import matrix_to_quat, quat_multiply
    from ..scene.gaussians import GaussianScene

    A = torch.from_numpy(world_from_file[:3, :3]).float()
    s = float(torch.linalg.det(A).abs() ** (1.0 / 3.0))
    R, t = A / s, torch.from_numpy(world_from_file[:3, 3]).float()
    if torch.allclose(A, torch.eye(3)) and torch.allclose(t, torch.zeros(3)):
        return scene
    if not torch.allclose(R, torch.eye(3), atol=1e-6) and scene.sh_degree > 0:
        warnings.warn("the scene is rotated into the world frame: view-dependent colour (SH > 0) dropped", stacklevel=3)
        scene = scene.with_sh_degree(0)
    q = quat_multiply(matrix_to_quat(R.double())[None].expand(len(scene), 4), scene.quats.double()).float()
    return GaussianScene(scene.means @ (s * R).T + t, q, scene.log_scales + math.log(s), scene.opacity_logits,
                         scene.sh, scene.object_ids, scene.object_names)  # fmt: skip


_BUNDLES: dict[tuple[str, float], SceneBundle] = {}


def scene_bundle(scene: str, density_scale: float = 0.35) -> SceneBundle:
    """A built-in scene (``tabletop``, ``drawer``) or a ``.ply`` path, built once per process."""
    key = (scene, density_scale)
    if key in _BUNDLES:
        return _BUNDLES[key]
    from ..physics.spec import BUILTIN_SCENES

    if scene in BUILTIN_SCENES:
        from ..physics.build import build_gaussians
        from ..physics.spec import builtin_scene

        spec = builtin_scene(scene)
        splat = build_gaussians(spec, seed=0, density_scale=density_scale)
        k = len(spec.objects) + int(spec.drawer is not None)
        rest = torch.eye(4).repeat(1, k, 1, 1)
        if spec.drawer is not None:
            rest[0, -1, 1, 3] = -spec.drawer.initial_open
        cx, cy = spec.table_center
        th = spec.table_height
        sx, sy = spec.table_size
        ws = (np.array([cx - sx / 2, cy - sy / 2 - 0.3, th]), np.array([cx + sx / 2, cy + sy / 2, th + 0.5]))
        b = SceneBundle(scene, splat, splat.subset(splat.object_ids == 0), rest, spec, ws, (cx, cy, th))
    else:
        from ..scene.metadata import estimate_metadata, read_metadata, sidecar_path
        from ..scene.ply import read_scene

        splat = read_scene(scene)
        side = sidecar_path(scene)
        meta = read_metadata(side) if side.is_file() else estimate_metadata(splat)
        splat = _to_world(splat, np.asarray(meta.world_from_file, np.float64))
        lo, hi = np.asarray(meta.workspace_min, float), np.asarray(meta.workspace_max, float)
        centre = (lo + hi) / 2
        b = SceneBundle(scene, splat, splat, None, None, (lo, hi), (float(centre[0]), float(centre[1]), float(lo[2])),
                        start_camera=np.asarray(meta.start_camera, np.float64))  # fmt: skip
    _BUNDLES[key] = b
    return b


def _frame(fingers: np.ndarray, dorsal: np.ndarray) -> np.ndarray:
    f = fingers / np.linalg.norm(fingers)
    d = dorsal - (dorsal @ f) * f
    d /= np.linalg.norm(d)
    return np.stack((f, d, np.cross(f, d)), axis=1)


class DexWorldEnv(gym.Env):
    """## Description
    Two hands and a head-mounted camera in a static 3D scene (a Gaussian splat). Each step moves
    the camera and the hands for ``chunk`` frames; dexsim renders the static scene and the visual
    action prompt along the camera path, and the world model generates what the camera sees,
    including the objects the hands moved (DWM formulation). With ``world_model="oracle"`` the
    frames come from the MuJoCo physics of the built-in scene instead.

    ## Action Space
    ``action_mode="delta"`` (default): ``Box(-1, 1, (21,))``: camera move (3, x 5 cm) and turn (yaw,
    pitch; x 0.15 rad); per hand (left, then right): wrist move (3, x 8 cm), wrist turn (axis-angle,
    x 0.5 rad), grasp closure (-1 open .. 1 closed), presence (> 0: the hand is in view). Interpolated
    over the chunk. ``"mano"``: ``Dict(camera (chunk, 7) [t, q] camera-to-world, params (chunk, 2, 51)
    MANO-style (global_orient, hand_pose, transl), visible (chunk, 2))``. ``"keypoints"``: ``Dict(camera,
    joints (chunk, 2, 21, 3) world, visible)``, fitted by inverse kinematics. Every space is bounded
    by the joint limits and the workspace; values outside are clamped with a warning.

    ## Observation Space
    ``Dict(frames, static, hand_prompt: (chunk, H, W, 3) uint8; camera (7,); hands (2, 51); hands_visible (2,))``.

    ## Rewards
    With a ``task``: the scorer's value (``region_psnr`` by default: PSNR in dB over the goal region,
    where the oracle-made goal image differs from the start) of the chunk's last frame. Without: 0.

    ## Episode End
    ``terminated`` when the task's success test holds (physics state with the oracle; the goal-region
    PSNR at least 3 dB above the start view's with a learned model). Truncation: ``TimeLimit``
    (``max_episode_steps`` from registration, 8 steps).

    ## Arguments
    ``scene`` (built-in name or ``.ply`` path), ``task`` (built-in task name or None), ``world_model``
    ("default", "oracle", or a path), ``action_mode``, ``prompt_kind`` ("mesh"), ``width``, ``height``,
    ``chunk`` (frames per step), ``render_mode`` ("rgb_array"), ``device``, ``scorer``, ``num_steps``
    (denoising steps), ``fov_y`` (degrees).

    ## Version History
    * v0: first version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, scene: str | None = None, task: str | None = None, world_model: Any = "default",
                 action_mode: str = "delta", prompt_kind: str = "mesh", width: int = 128, height: int = 128,
                 chunk: int = 8, render_mode: str | None = None, device: str = "cpu", scorer: str = "region_psnr",
                 num_steps: int | None = None, fov_y: float = 60.0, clamp: str = "warn") -> None:  # fmt: skip
        from .tasks import TASKS

        if task is not None and task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
        self.task = TASKS[task] if task else None
        scene = scene or (self.task.scene if self.task else "tabletop")
        if self.task and scene != self.task.scene:
            raise ValueError(f"task {task!r} runs in scene {self.task.scene!r}, not {scene!r}")
        if action_mode not in ACTION_MODES:
            raise ValueError(f"`action_mode` must be one of {ACTION_MODES}, got {action_mode!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"`render_mode` must be None or 'rgb_array', got {render_mode!r}")
        if prompt_kind not in ("mesh", "skeleton", "depth", "mask"):
            raise ValueError(f"`prompt_kind` must be mesh, skeleton, depth or mask, got {prompt_kind!r}")
        if clamp not in ("warn", "silent", "error"):
            raise ValueError(f"`clamp` must be 'warn', 'silent' or 'error', got {clamp!r}")
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"`chunk` must be a positive int, got {chunk!r}")
        self.width, self.height, self.chunk = width, height, chunk
        self.action_mode, self.prompt_kind, self.render_mode, self.clamp = action_mode, prompt_kind, render_mode, clamp
        self.device, self.num_steps, self.fov_y = device, num_steps, fov_y
        self.bundle = scene_bundle(scene)
        self.world_model = self._world_model(world_model)
        from ..geometry.camera import PinholeIntrinsics
        from ..hands.model import HandModel
        from ..scoring import make_scorer

        self.K = PinholeIntrinsics.from_fov(fov_y, width, height).K(torch.float64)
        self.hand_models = (HandModel("left", limits="clamp"), HandModel("right", limits="clamp"))
        self.scorer = make_scorer(scorer)
        self.goal = None
        self.action_space = self._action_space()
        self.observation_space = spaces.Dict({
            "frames": spaces.Box(0, 255, (chunk, height, width, 3), np.uint8),
            "static": spaces.Box(0, 255, (chunk, height, width, 3), np.uint8),
            "hand_prompt": spaces.Box(0, 255, (chunk, height, width, 3), np.uint8),
            "camera": spaces.Box(-100.0, 100.0, (7,), np.float64),
            "hands": spaces.Box(-100.0, 100.0, (2, 51), np.float64),
            "hands_visible": spaces.MultiBinary(2),
        })  # fmt: skip
        self._last: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------------------- set-up
    def _world_model(self, wm: Any) -> Any:
        from ..worldmodel import load

        if not isinstance(wm, str):
            return wm
        if wm == "oracle":
            if self.bundle.spec is None:
                raise ValueError("world_model='oracle' needs a built-in scene (it simulates the scene's physics)")
            return load("oracle", scene=self.bundle.name, width=self.width, height=self.height, window=self.chunk + 1,
                        fov_y=self.fov_y)  # fmt: skip
        model = load(wm, device=self.device)
        if (model.width, model.height) != (self.width, self.height):
            raise ValueError(f"world model {wm!r} works at {model.width}x{model.height}; create the env with "
                             f"width={model.width}, height={model.height}")  # fmt: skip
        return model

    def _limits(self) -> tuple[np.ndarray, np.ndarray]:
        from ..hands.skeleton import joint_limits

        lim = joint_limits(torch.float64).abs().amax(-1).amax(-1).numpy()[1:]  # (15,) widest bound per joint
        return np.repeat(lim, 3), -np.repeat(lim, 3)

    def _action_space(self) -> spaces.Space:
        c = self.chunk
        lo, hi = self.bundle.workspace
        cam_lo = np.concatenate((lo - np.array([0.5, 0.8, 0.0]), -np.ones(4)))
        cam_hi = np.concatenate((hi + np.array([0.5, 0.3, 0.6]), np.ones(4)))
        camera = spaces.Box(np.tile(cam_lo, (c, 1)), np.tile(cam_hi, (c, 1)), dtype=np.float64)
        visible = spaces.MultiBinary((c, 2))
        if self.action_mode == "delta":
            return spaces.Box(-1.0, 1.0, (21,), np.float32)
        if self.action_mode == "mano":
            hp_hi, hp_lo = self._limits()
            # ``transl`` moves the hand model's origin, which sits up to ~1 m from the wrist: a wider box
            p_lo = np.concatenate((np.full(3, -np.pi), hp_lo, lo - 1.0))
            p_hi = np.concatenate((np.full(3, np.pi), hp_hi, hi + 1.0))
            params = spaces.Box(np.tile(p_lo, (c, 2, 1)), np.tile(p_hi, (c, 2, 1)), dtype=np.float64)
            return spaces.Dict({"camera": camera, "params": params, "visible": visible})
        joints = spaces.Box(np.tile(lo, (c, 2, 21, 1)), np.tile(hi, (c, 2, 21, 1)), dtype=np.float64)
        return spaces.Dict({"camera": camera, "joints": joints, "visible": visible})

    # ------------------------------------------------------------------------------ state
    def _start_state(self, rng: np.random.Generator) -> None:
        from ..geometry.camera import look_at
        from ..geometry.se3 import viewmat_to_pose7

        cx, cy, th = self.bundle.table
        jitter = rng.uniform(-0.02, 0.02, 3)
        if self.bundle.start_camera is not None:
            self.camera = self.bundle.start_camera.copy()
            self.camera[:3] += jitter
        else:
            eye = np.array([cx, cy - 0.6, th + 0.45]) + jitter
            self.camera = viewmat_to_pose7(look_at(torch.from_numpy(eye), torch.tensor([cx, cy - 0.02, th]))).numpy()
        down = _frame(np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]))
        self.wrist_R = np.stack([down, down])
        self.palm = np.array([[cx - 0.18, cy - 0.12, th + 0.12], [cx + 0.18, cy - 0.12, th + 0.12]])
        self.grasp = np.zeros(2)
        self.visible = np.array([False, False])
        self.hand_params = self._params_now()
        self.history: list[dict[str, np.ndarray]] = []
        self.context: dict[str, np.ndarray] | None = None

    def _params_now(self, palm: np.ndarray | None = None, R: np.ndarray | None = None,
                    grasp: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        from ..physics.actions import HOOK, RELAXED, _params

        palm = self.palm if palm is None else palm
        R = self.wrist_R if R is None else R
        grasp = self.grasp if grasp is None else grasp
        return np.stack([_params(R[h], palm[h], (1 - grasp[h]) * RELAXED + grasp[h] * HOOK, side)
                         for h, side in enumerate(("left", "right"))])  # fmt: skip

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._start_state(self.np_random)
        if self.task is not None:
            from ..scoring import Goal
            from .tasks import goal_for

            g = goal_for(self.task.name, self.width, self.height)
            self.goal = Goal(image=g["image"], text=g["text"], start=g["start"])
        cams = np.repeat(self.camera[None], self.chunk, 0)
        static, _ = self._render_static(cams)
        prompt = np.zeros_like(static)
        self._last = {"frames": static, "static": static, "hand_prompt": prompt}
        self._start_score = None
        if self.goal is not None:
            self._start_score = float(self.scorer.score(static[None], self.goal)[0])
        return self._obs(), {"task": None if self.task is None else self.task.name,
                             "goal_text": None if self.goal is None else self.goal.text}  # fmt: skip

    # --------------------------------------------------------------------------- rendering
    def _render_static(self, cams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from ..scene.render import render

        vms = pose7_to_viewmat(torch.from_numpy(cams)).float()
        K = self.K.float()
        poses = None if self.bundle.rest_motions is None else self.bundle.rest_motions.expand(len(cams), -1, -1, -1)
        out = render(self.bundle.scene, vms, K, self.width, self.height, background=BACKGROUND, object_poses=poses)
        fixed = out if self.bundle.spec is None else render(self.bundle.background, vms, K, self.width, self.height)
        return out.rgb_uint8().numpy(), fixed.depth.numpy()

    def _render_prompt(self, cams: np.ndarray, params: np.ndarray, visible: np.ndarray,
                       depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        from ..hands.prompts import depth_picture, mask_picture, render_prompt

        verts, joints = [], []
        for h in range(2):
            p = torch.from_numpy(params[:, h].astype(np.float32))
            o = self.hand_models[h](p[:, :3], p[:, 3:48], p[:, 48:])
            verts.append(o.vertices)
            joints.append(o.joints)
        v = torch.stack(verts, 1).double()
        j = torch.stack(joints, 1).double()
        vms = pose7_to_viewmat(torch.from_numpy(cams)).double()
        faces = (self.hand_models[0].faces, self.hand_models[1].faces)
        vis = torch.from_numpy(visible)
        kind = "skeleton" if self.prompt_kind == "skeleton" else "mesh"
        pr = render_prompt(kind, vms, self.K, self.width, self.height, j, vis, v if kind == "mesh" else None,
                           faces if kind == "mesh" else None, scene_depth=depth)  # fmt: skip
        img = {"mesh": pr.rgb, "skeleton": pr.rgb}.get(self.prompt_kind)
        if img is None:
            img = depth_picture(pr.depth) if self.prompt_kind == "depth" else mask_picture(pr.mask)
        return img, j.float().numpy()

    # ------------------------------------------------------------------------------ actions
    def _clamp(self, name: str, value: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        clipped = np.clip(value, lo, hi)
        if not np.array_equal(clipped, value):
            msg = (
                f"action `{name}` outside its bounds (max excess {float(np.max(np.abs(clipped - value))):.3g}): clamped"
            )
            if self.clamp == "error":
                raise ValueError(msg)
            if self.clamp == "warn":
                warnings.warn(msg, stacklevel=3)
        return clipped

    def _chunk_from_action(self, action: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(chunk, 7) cameras, (chunk, 2, 51) params, (chunk, 2) visible."""
        c = self.chunk
        if self.action_mode == "delta":
            return self._chunk_from_delta(np.asarray(action, np.float64))
        sp = self.action_space
        if not isinstance(action, dict):
            raise ValueError(f"action_mode {self.action_mode!r} takes a dict with keys {sorted(sp.spaces)}")
        missing = set(sp.spaces) - set(action)
        if missing:
            raise ValueError(f"the action lacks {sorted(missing)}")
        cam = np.asarray(action["camera"], np.float64).reshape(c, 7)
        cam = self._clamp("camera", cam, sp["camera"].low, sp["camera"].high)
        q = cam[:, 3:]
        n = np.linalg.norm(q, axis=-1, keepdims=True)
        cam[:, 3:] = np.where(n > 1e-6, q / np.maximum(n, 1e-12), np.array([1.0, 0, 0, 0]))
        visible = np.asarray(action["visible"]).reshape(c, 2).astype(bool)
        if self.action_mode == "mano":
            params = np.asarray(action["params"], np.float64).reshape(c, 2, 51)
            params = self._clamp("params", params, sp["params"].low, sp["params"].high)
        else:
            joints = np.asarray(action["joints"], np.float64).reshape(c, 2, 21, 3)
            joints = self._clamp("joints", joints, sp["joints"].low, sp["joints"].high)
            params = self._fit(joints, visible)
        return cam, params, visible

    def _fit(self, joints: np.ndarray, visible: np.ndarray) -> np.ndarray:
        from ..hands.ik import fit_hand

        out = np.repeat(self.hand_params[None], self.chunk, 0)
        for h, side in enumerate(("left", "right")):
            if visible[:, h].any():
                res = fit_hand(torch.from_numpy(joints[:, h]).float(), side, model=self.hand_models[h], adam_steps=60,
                               lbfgs_steps=10)  # fmt: skip
                out[:, h] = res.params.double().numpy()
        return out

    def _chunk_from_delta(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from ..geometry.rotations import axis_angle_to_quat, quat_multiply, quat_to_matrix

        if a.shape != (21,):
            raise ValueError(f"a delta action has shape (21,), got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"the action has non-finite values: {a}")
        a = self._clamp("delta", a, -1.0, 1.0)
        s = np.linspace(1.0 / self.chunk, 1.0, self.chunk)[:, None]
        lo, hi = self.bundle.workspace
        # camera: translate in the world, turn about world z (yaw) and the camera's x axis (pitch)
        R_cam = quat_to_matrix(torch.from_numpy(self.camera[3:])).numpy()
        t_end = np.clip(
            self.camera[:3] + DELTA_SCALE["camera_move"] * a[:3], lo - [0.5, 0.8, 0.0], hi + [0.5, 0.3, 0.6]
        )
        pitch_axis = torch.from_numpy(R_cam[:, 0])
        cams = np.empty((self.chunk, 7))
        q0 = torch.from_numpy(self.camera[3:])
        for i, f in enumerate(s[:, 0]):
            qy = axis_angle_to_quat(
                torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64) * DELTA_SCALE["camera_turn"] * a[3] * f
            )
            qp = axis_angle_to_quat(pitch_axis * DELTA_SCALE["camera_turn"] * a[4] * f)
            cams[i, 3:] = quat_multiply(qy, quat_multiply(qp, q0)).numpy()
            cams[i, :3] = (1 - f) * self.camera[:3] + f * t_end
        params = np.empty((self.chunk, 2, 51))
        visible = np.zeros((self.chunk, 2), bool)
        palm_end, R_end, grasp_end = self.palm.copy(), self.wrist_R.copy(), self.grasp.copy()
        for h in range(2):
            d = a[5 + 8 * h : 13 + 8 * h]
            palm_end[h] = np.clip(self.palm[h] + DELTA_SCALE["wrist_move"] * d[:3], lo, hi)
            rot = axis_angle_to_matrix(torch.from_numpy(DELTA_SCALE["wrist_turn"] * d[3:6])).numpy()
            R_end[h] = rot @ self.wrist_R[h]
            grasp_end[h] = (d[6] + 1.0) / 2.0
            visible[:, h] = d[7] > 0
        turn = [matrix_to_axis_angle(torch.from_numpy(R_end[h] @ self.wrist_R[h].T)).numpy() for h in range(2)]
        for i, f in enumerate(s[:, 0]):
            R_i = np.stack(
                [axis_angle_to_matrix(torch.from_numpy(f * turn[h])).numpy() @ self.wrist_R[h] for h in range(2)]
            )
            params[i] = self._params_now((1 - f) * self.palm + f * palm_end, R_i, (1 - f) * self.grasp + f * grasp_end)
        self.palm, self.wrist_R, self.grasp = palm_end, R_end, grasp_end
        return cams, params, visible

    # --------------------------------------------------------------------------------- step
    def prepare(self, action: Any) -> dict[str, Any]:
        """Everything before the world-model call (the vector env batches that call across envs)."""
        t0 = time.perf_counter()
        cams, params, visible = self._chunk_from_action(action)
        static, depth = self._render_static(cams)
        prompt, joints = self._render_prompt(cams, params, visible, depth)
        self.camera, self.hand_params, self.visible = cams[-1].copy(), params[-1].copy(), visible[-1].copy()
        self.history.append({"camera": cams, "params": params, "visible": visible, "joints": joints})
        req = {"static": static, "prompt": prompt, "context": None, "hands": self._trajectory()}
        if self.context is not None and self.world_model.context_frames > 0:
            c = self.world_model.context_frames
            req["static"] = np.concatenate((self.context["static"][-c:], static))
            req["prompt"] = np.concatenate((self.context["prompt"][-c:], prompt))
            req["context"] = self.context["frames"][-c:]
        req["render_s"] = time.perf_counter() - t0
        return req

    def preview(self, actions: np.ndarray) -> Any:
        """A planner :class:`~dexsim.planners.Rollout` of N candidate ``delta`` action sequences (N, H, 21)
        from the current state, which is left unchanged. Candidates must share the camera dims
        (so they share the static video)."""
        from ..planners.rank import Rollout

        if self.action_mode != "delta":
            raise ValueError("preview() takes `delta` actions")
        actions = np.asarray(actions, np.float64)
        if actions.ndim != 3 or actions.shape[-1] != 21:
            raise ValueError(f"`actions` must be (N, H, 21), got {actions.shape}")
        if not np.allclose(actions[:, :, :5], actions[:1, :, :5]):
            raise ValueError("candidates must share the camera part (dims 0-4) of their actions")
        state = (self.camera.copy(), self.palm.copy(), self.wrist_R.copy(), self.grasp.copy(), self.visible.copy(),
                 self.hand_params.copy(), list(self.history))  # fmt: skip
        prompts, hands = [], []
        static: np.ndarray | None = None
        depth0: np.ndarray | None = None
        for cand in actions:
            self.camera, self.palm, self.wrist_R, self.grasp, self.visible, self.hand_params = (
                x.copy() for x in state[:6])  # fmt: skip
            self.history = list(state[6])
            vids = []
            for a in cand:
                cams, params, visible = self._chunk_from_action(a)
                vids.append((cams, params, visible))
                self.camera, self.hand_params, self.visible = cams[-1].copy(), params[-1].copy(), visible[-1].copy()
            cams = np.concatenate([v[0] for v in vids])
            if static is None:
                static, depth0 = self._render_static(cams)
            prompt, joints = self._render_prompt(cams, np.concatenate([v[1] for v in vids]),
                                                 np.concatenate([v[2] for v in vids]), depth0)  # fmt: skip
            prompts.append(prompt)
            self.history = list(state[6]) + [
                {
                    "camera": cams,
                    "params": np.concatenate([v[1] for v in vids]),
                    "visible": np.concatenate([v[2] for v in vids]),
                    "joints": joints,
                }
            ]
            hands.append(self._trajectory())
        self.camera, self.palm, self.wrist_R, self.grasp, self.visible, self.hand_params = state[:6]
        self.history = state[6]
        return Rollout(static=static, prompts=np.stack(prompts), hands=hands)

    def _trajectory(self) -> HandTrajectory:
        cam = np.concatenate([h["camera"] for h in self.history])
        n = len(cam)
        return HandTrajectory(t=np.arange(n) / 8.0, joints=np.concatenate([h["joints"] for h in self.history]),
                              visible=np.concatenate([h["visible"] for h in self.history]),
                              params=np.concatenate([h["params"] for h in self.history]), camera=cam,
                              K=self.K.numpy(), width=self.width, height=self.height)  # fmt: skip

    def finish(self, req: dict[str, Any], frames: np.ndarray, wm_s: float) -> tuple[dict, float, bool, bool, dict]:
        """Everything after the world-model call: observation, reward, success."""
        new = frames[-self.chunk :]
        static, prompt = req["static"][-self.chunk :], req["prompt"][-self.chunk :]
        self.context = {"frames": new, "static": static, "prompt": prompt}
        self._last = {"frames": new, "static": static, "hand_prompt": prompt}
        #: wall times of the last step (kept out of ``info``, which must be deterministic)
        self.last_timings = {"render_s": req["render_s"], "world_model_s": wm_s}
        reward, success, info = 0.0, False, {}
        if self.goal is not None:
            from ..scoring import hand_masks_from_prompts

            reward = float(self.scorer.score(new[None], self.goal, hand_masks_from_prompts(prompt[None]))[0])
            info["score"] = reward
            sims = getattr(self.world_model, "last_sims", None)
            if sims:
                res = sims[req.get("batch_index", 0)]
                physics = {"object_poses": res.object_poses, "drawer": res.drawer}
                info["measure"] = self.task.measure(physics, self.bundle.spec)
                success = self.task.success(physics, self.bundle.spec)
            else:
                success = reward >= (self._start_score or 0.0) + self.task.image_margin_db
        info["success"] = success
        return self._obs(), reward, success, False, info

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        if self._last is None:
            raise RuntimeError("call reset() before step()")
        req = self.prepare(action)
        t0 = time.perf_counter()
        frames = self.world_model.generate(req["static"][None], req["prompt"][None],
                                           context=None if req["context"] is None else req["context"][None],
                                           text=None if self.goal is None else self.goal.text,
                                           generator=torch.Generator().manual_seed(int(self.np_random.integers(2**31))),
                                           num_steps=self.num_steps, hands=[req["hands"]])[0]  # fmt: skip
        return self.finish(req, frames, time.perf_counter() - t0)

    def _obs(self) -> dict[str, np.ndarray]:
        return {**{k: v.copy() for k, v in self._last.items()}, "camera": self.camera.copy(),  # type: ignore[union-attr]
                "hands": self.hand_params.copy(), "hands_visible": self.visible.astype(np.int8)}  # fmt: skip

    def render(self) -> np.ndarray | None:
        """``rgb_array``: the last generated frame, with the static view and the hand prompt beside it."""
        if self.render_mode is None or self._last is None:
            return None
        return np.concatenate((self._last["static"][-1], self._last["hand_prompt"][-1], self._last["frames"][-1]), 1)
