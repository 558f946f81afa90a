"""One player's episode behind ``dexsim play``: the env, the motion being composed, recording.

A :class:`PlaySession` owns a :class:`~dexsim.envs.DexWorldEnv` in ``delta`` mode. Key presses
(:data:`KEYS`) and wrist drags compose the next step's action; :meth:`PlaySession.preview` renders it as
the hand prompt before anything is generated; :meth:`PlaySession.step` runs it (the world model's chunk,
and on built-in scenes the physics oracle's frames of the same chunk). It holds no UI: the viewer
(:mod:`dexsim.play.app`) calls it from a worker thread, tests call it directly.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KEYS", "PlaySession", "StepView"]

#: key -> (what it does, help text). Moves add half of a full step (wrist 4 cm, wrist turn 0.25 rad,
#: head 2.5 cm, head turn 0.075 rad) to the composed action; W/A/S/D/Q/E and the arrows stay the 3D view's.
KEYS: dict[str, tuple[str, str]] = {
    "I": ("wrist +y", "active wrist forward"),
    "K": ("wrist -y", "active wrist back"),
    "J": ("wrist -x", "active wrist left"),
    "L": ("wrist +x", "active wrist right"),
    "U": ("wrist +z", "active wrist up"),
    "O": ("wrist -z", "active wrist down"),
    "Y": ("turn +", "turn the active wrist left"),
    "H": ("turn -", "turn the active wrist right"),
    "G": ("grasp", "close / open the active hand"),
    "T": ("switch", "switch the active hand"),
    "V": ("show", "show / hide the active hand"),
    "Z": ("head yaw +", "turn the head left"),
    "X": ("head yaw -", "turn the head right"),
    "R": ("head pitch +", "tilt the head up"),
    "F": ("head pitch -", "tilt the head down"),
    "C": ("head +y", "move the head forward"),
    "B": ("head -y", "move the head back"),
    "backspace": ("clear", "forget the composed motion"),
    "space": ("step", "generate the next chunk"),
    "N": ("reset", "new episode (the seed field)"),
}
_MOVE = 0.5
_WRIST_AXES = {"wrist +y": (1, 1), "wrist -y": (1, -1), "wrist -x": (0, -1), "wrist +x": (0, 1),
               "wrist +z": (2, 1), "wrist -z": (2, -1)}  # fmt: skip
_HEAD = {"head yaw +": (3, 1), "head yaw -": (3, -1), "head pitch +": (4, 1), "head pitch -": (4, -1),
         "head +y": (1, 1), "head -y": (1, -1)}  # fmt: skip


@dataclass
class StepView:
    """What the viewer shows of the last chunk: (C, H, W, 3) uint8 ``static``, ``prompt``, ``generated`` and
    ``physics`` (None without a physics oracle), the reward, the success verdict, the step count and the
    seconds the step took."""

    static: np.ndarray
    prompt: np.ndarray
    generated: np.ndarray
    physics: np.ndarray | None
    reward: float
    success: bool
    steps: int
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    #: the first frame this chunk got in a Rerun recording (None: not logged)
    log_start: int | None = None

    def panel(self, i: int) -> np.ndarray:
        """Frame ``i`` of the chunk as one strip: static | prompt | generated (| physics), (H, W*n, 3)."""
        rows = [self.static, self.prompt, self.generated] + ([] if self.physics is None else [self.physics])
        return np.concatenate([r[i % len(r)] for r in rows], 1)


class PlaySession:
    """See the module docstring. ``task`` or ``scene`` chooses the world (as ``DexWorldEnv`` takes them);
    ``physics``: also run the physics oracle on built-in scenes (its frames beside the generated ones)."""

    def __init__(self, task: str | None = None, scene: str | None = None, world_model: Any = "default",
                 seed: int = 0, physics: bool = True, width: int = 128, height: int = 128) -> None:  # fmt: skip
        from ..envs import DexWorldEnv

        self.scene_path = None if scene is None or task is not None else Path(scene)
        self.env = DexWorldEnv(scene=scene, task=task, world_model=world_model, width=width, height=height,
                               clamp="silent")  # fmt: skip
        self.world_model_name = world_model if isinstance(world_model, str) else type(world_model).__name__
        self.physics = physics and world_model != "oracle"
        self.lock = threading.Lock()
        self._oracle: Any = None
        self.reset(seed)

    # ------------------------------------------------------------------------------ episode
    def reset(self, seed: int) -> StepView:
        """A new episode from ``seed``: both hands shown, grasps open, nothing composed, nothing recorded."""
        with self.lock:
            obs, _ = self.env.reset(seed=int(seed))
            self.seed, self.steps = int(seed), 0
            self.active = 1
            self.shown = np.array([True, True])
            self.grasp = np.array([-1.0, -1.0])
            self.motion = np.zeros(21)
            self.actions: list[np.ndarray] = []
            self.rewards: list[float] = []
            self._spool_dir = tempfile.TemporaryDirectory(prefix="dexsim-play-")  # earlier chunks, on disk
            self.successes: list[bool] = []
            self.last = StepView(obs["static"], obs["hand_prompt"], obs["frames"], None, 0.0, False, 0)
            return self.last

    def press(self, key: str) -> str:
        """Apply a composing key of :data:`KEYS` (not space / N, which the caller runs); returns its action."""
        if key not in KEYS:
            raise ValueError(f"unknown key {key!r}; the keys are {sorted(KEYS)}")
        what = KEYS[key][0]
        base = 5 + 8 * self.active
        if what in _WRIST_AXES:
            axis, sign = _WRIST_AXES[what]
            self._add(base + axis, sign)
        elif what in ("turn +", "turn -"):
            self._add(base + 5, 1 if what == "turn +" else -1)
        elif what in _HEAD:
            self._add(*_HEAD[what])
        elif what == "grasp":
            self.grasp[self.active] *= -1
        elif what == "switch":
            self.active = 1 - self.active
        elif what == "show":
            self.shown[self.active] = not self.shown[self.active]
        elif what == "clear":
            self.motion[:] = 0.0
        return what

    def _add(self, index: int, sign: int) -> None:
        self.motion[index] = float(np.clip(self.motion[index] + sign * _MOVE, -1.0, 1.0))

    def drag_wrist(self, hand: int, position: np.ndarray) -> None:
        """Compose a wrist move towards a dragged ``position`` (3,) world metres (as far as one step goes)."""
        from ..hands.controllers import DELTA_SCALE

        state = self.env.state
        move = (np.asarray(position, np.float64) - state.palm[hand]) / DELTA_SCALE["wrist_move"]
        self.motion[5 + 8 * hand : 8 + 8 * hand] = np.clip(move, -1.0, 1.0)
        self.active = hand

    def action(self) -> np.ndarray:
        """The composed ``delta`` action (21,): moves, grasps and which hands are in view."""
        a = self.motion.copy()
        for h in range(2):
            a[5 + 8 * h + 6] = self.grasp[h]
            a[5 + 8 * h + 7] = 1.0 if self.shown[h] else -1.0
        return a.astype(np.float32)

    def preview(self) -> np.ndarray:
        """The composed motion as the hand prompt over the static view, (C, H, W, 3) uint8; nothing is generated."""
        with self.lock:
            return self.env.preview(self.action()[None, None]).prompts[0]

    def step(self, physics: bool = True) -> StepView:
        """Run the composed action: the world model's chunk and, with ``physics`` (and a physics oracle), the
        oracle's frames of it (else call :meth:`add_physics` later). The composed motion is consumed."""
        with self.lock:
            t0 = time.perf_counter()
            action, moved = self.action(), self.motion.copy()
            self.motion[:] = 0.0  # consumed now: keys pressed while it generates compose the next step
            try:
                obs, reward, terminated, _, info = self.env.step(action)
            except Exception:
                self.motion += moved
                raise
            view = StepView(obs["static"], obs["hand_prompt"], obs["frames"], None, float(reward), bool(terminated),
                            self.steps + 1, time.perf_counter() - t0, info)  # fmt: skip
            self._spool(view)  # before the counters: a failed write leaves the episode consistent
            self.steps += 1
            self.actions.append(action)
            self.rewards.append(float(reward))
            self.successes.append(view.success)
            self.last = view
        if physics:
            self.add_physics()
        return self.last

    def _spool(self, view: StepView) -> None:
        """Keep a step's static | prompt | generated frames on disk (memory stays flat however long the episode)."""
        strip = np.concatenate((view.static, view.prompt, view.generated), 2)
        np.save(Path(self._spool_dir.name) / f"{view.steps - 1:05d}.npy", strip)

    def add_physics(self) -> StepView:
        """Fill the last step's ``physics`` frames (when this session runs the oracle and they are missing)."""
        with self.lock:
            view = self.last
            if self.physics and view.physics is None and self.steps > 0:
                view.physics = self._physics_chunk()
            return view

    def _physics_chunk(self, whole: bool = False) -> np.ndarray | None:
        """The physics oracle's frames of the last chunk (``whole``: of the episode), the whole episode
        simulated (built-in scenes only)."""
        spec = self.env.world.spec
        if spec is None:
            return None
        if self._oracle is None:
            from ..physics.oracle import Oracle

            self._oracle = Oracle(spec, self.env.width, self.env.height, world=self.env.world)
        traj = self.env.episode_hands()
        start = 0 if whole else traj.num_frames - self.env.chunk
        return self._oracle.run(traj, start=start, masks=False).interaction

    # ---------------------------------------------------------------------------- scene set-up
    def metadata(self) -> Any:
        """The captured scene's :class:`~dexsim.scene.metadata.SceneMetadata` now (its sidecar's, or estimated)."""
        from ..scene.metadata import estimate_metadata, read_metadata, sidecar_path
        from ..scene.ply import read_scene

        if self.scene_path is None:
            raise ValueError("scene set-up is for captured scenes (--scene PLY), not built-in tasks")
        if getattr(self, "_meta", None) is None:
            side = sidecar_path(self.scene_path)
            self._meta = read_metadata(side) if side.is_file() else estimate_metadata(read_scene(self.scene_path))
        return self._meta

    def set_up_scene(self, surface_point: np.ndarray, surface_normal: np.ndarray, start_camera: np.ndarray,
                     half_size: tuple[float, float] = (0.35, 0.3), save: bool = False) -> Path | None:  # fmt: skip
        """Re-frame the captured scene from what the person set (all in the current world frame: see
        :func:`~dexsim.scene.metadata.metadata_from_surface`), rebuild the env on it (same world model) and
        start a new episode, so the hands appear in front of the new head pose; ``save``: also write the
        sidecar the env reads (returns its path)."""
        from ..envs import DexWorldEnv
        from ..scene.metadata import metadata_from_surface, sidecar_path, write_metadata
        from ..world import World

        meta = metadata_from_surface(self.metadata(), surface_point, surface_normal, start_camera, half_size)
        with self.lock:
            old = self.env
            world = World.from_ply(self.scene_path, old.width, old.height, old.fov_y, metadata=meta)
            self.env = DexWorldEnv(scene=world, world_model=old.world_model, width=old.width, height=old.height,
                                   clamp="silent")  # fmt: skip
            self._meta, self._oracle = meta, None
        self.reset(self.seed)
        return write_metadata(meta, sidecar_path(self.scene_path)) if save else None

    # ----------------------------------------------------------------------------- recording
    def record(self, out: str | Path) -> list[Path]:
        """Save the episode: ``OUT.mp4`` (static | prompt | generated | physics per frame), ``OUT.npz`` (the
        hand trajectory, :meth:`HandTrajectory.load` reads it) and ``OUT.json`` (task, seed, actions, rewards)."""
        from .._io import write_json
        from ..video import write_mp4

        with self.lock:
            if not self.steps:
                raise RuntimeError("nothing to record: take a step first")
            out = Path(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            frames = np.concatenate([np.load(Path(self._spool_dir.name) / f"{k:05d}.npy") for k in range(self.steps)])
            if self.physics and self.env.world.spec is not None:  # the whole episode in one physics run
                frames = np.concatenate((frames, self._physics_chunk(whole=True)), 2)
            paths = [write_mp4(out.with_suffix(".mp4"), frames), self.env.episode_hands().save(out.with_suffix(".npz"))]
            task = self.env.task
            paths.append(write_json(out.with_suffix(".json"), {
                "task": None if task is None else task.name, "seed": self.seed, "world_model": self.world_model_name,
                "scene": None if self.scene_path is None else str(self.scene_path),
                "metadata": None if getattr(self, "_meta", None) is None else asdict(self._meta),
                "action_mode": "delta", "actions": np.stack(self.actions).round(6).tolist(), "rewards": self.rewards,
                "success": self.successes}))  # fmt: skip
            return [Path(p) for p in paths]

    # ------------------------------------------------------------------------- 3D scene facts
    def scene_points(self, max_points: int = 60_000) -> tuple[np.ndarray, np.ndarray]:
        """The splat's centres and base colours (float32 (N, 3) metres, uint8 (N, 3)), at most ``max_points``
        of the most opaque Gaussians, those within 1.2 m of the working surface first."""
        from .rerun import splat_points

        return splat_points(self.env.world.scene, max_points, (self.env.world.table, 1.2))

    def hand_segments(self) -> np.ndarray:
        """Bones of the shown hands at the current state, (M, 2, 3) world metres."""
        from ..hands.skeleton import BONES
        from ..world import HandStates

        _, joints = self.env.world.pose_hands(HandStates(self.env.hand_params[None], self.shown[None]))
        j = joints[0].numpy()
        segs = [(j[h, a], j[h, b]) for h in range(2) if self.shown[h] for a, b in BONES]
        return np.asarray(segs, np.float32).reshape(-1, 2, 3)

    def target_position(self) -> np.ndarray | None:
        """Where the task's target sits at rest (world metres), the drawer's handle side for open-drawer;
        None without a task or a built-in scene."""
        task, spec = self.env.task, self.env.world.spec
        if task is None or spec is None:
            return None
        top = float(spec.table_height)
        if task.target is None:
            if spec.drawer is None:
                return None
            (x, y), (_, depth, height) = spec.drawer.position, spec.drawer.size
            return np.array([x, y - depth / 2, top + height / 2])
        obj = spec.objects[spec.object_names.index(task.target)]
        return np.array([*obj.position, top + obj.size[2] / 2])

    def status(self) -> dict[str, Any]:
        """Task text, reward, success, steps, active hand (JSON-ready)."""
        task = self.env.task
        return {"task": None if task is None else task.text, "reward": round(self.last.reward, 3),
                "success": self.last.success, "steps": self.steps, "active": ("left", "right")[self.active],
                "grasp": ["closed" if g > 0 else "open" for g in self.grasp], "seed": self.seed}  # fmt: skip
