"""The batched env core and ``DexWorldEnv``, its one-env case.

One step, as data: action -> hand controller (``dexsim.hands.controllers``) -> per-frame cameras and
hand states -> conditions (``World.render_conditions``: static video + hand prompt) -> world model
(``generate`` -> ``Generation``) -> task (reward, success). The core holds N envs' states and runs
their world-model calls as one batch; it owns no rendering, posing or physics math.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from ..hands.controllers import ACTION_MODES, Chunk, HandState, initial_state, make_controller
from ..hands.trajectory import HandTrajectory
from ..world import HandStates, World

__all__ = ["ACTION_MODES", "DexWorldCore", "DexWorldEnv"]

PROMPT_KINDS = ("mesh", "skeleton", "depth", "mask")


@dataclass
class _Slot:
    """One env's episode: its random stream, controller state, the chunks played, the last window."""

    rng: np.random.Generator | None = None
    state: HandState | None = None
    chunks: list[Chunk] = field(default_factory=list)
    joints: list[np.ndarray] = field(default_factory=list)
    context: dict[str, np.ndarray] | None = None
    last: dict[str, np.ndarray] | None = None
    detection: Any = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Request:
    """One env's world-model request for a step."""

    index: int
    chunk: Chunk
    next_state: HandState
    static: np.ndarray
    prompt: np.ndarray
    joints: np.ndarray
    context: np.ndarray | None
    timings: dict[str, float]  # seconds: controller, static, prompt


class DexWorldCore:
    """N envs over one world, one controller, one world model and one task (see the module docstring).

    Each env has its own random stream (``reset`` gives it), so env i of a core reproduces a single
    env reset with the same seed and given the same actions. Arguments are checked at construction;
    the scene, the world model and the goal are built by :meth:`build` (at the first ``reset``), so
    making an env is cheap and forks safely (Gymnasium's ``AsyncVectorEnv``).
    """

    def __init__(self, num_envs: int = 1, scene: str | World | None = None, task: str | None = None,
                 world_model: Any = "default", action_mode: str = "delta", prompt_kind: str = "mesh",
                 width: int = 128, height: int = 128, chunk: int = 8, device: str = "cpu",
                 scorer: str = "region_psnr", num_steps: int | None = None, fov_y: float = 60.0,
                 clamp: str = "warn") -> None:  # fmt: skip
        from .._fork import check_async_parent
        from .._validate import positive_int
        from ..scoring import SCORERS
        from .tasks import TASKS

        check_async_parent("DexWorld-v0")
        positive_int("num_envs", num_envs)
        if task is not None and task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
        self.task = TASKS[task] if task else None
        if prompt_kind not in PROMPT_KINDS:
            raise ValueError(f"`prompt_kind` must be mesh, skeleton, depth or mask, got {prompt_kind!r}")
        if num_steps is not None and (not isinstance(num_steps, (int, np.integer)) or num_steps < 1):
            raise ValueError(f"`num_steps` must be a positive int or None, got {num_steps!r}")
        if scorer not in SCORERS:
            raise ValueError(f"`scorer` must be one of {SCORERS}, got {scorer!r}")
        positive_int("width", width), positive_int("height", height)
        self.action_mode, self.prompt_kind, self.chunk = action_mode, prompt_kind, chunk
        self.width, self.height, self.fov_y, self.device, self.num_steps = width, height, fov_y, device, num_steps
        self._scene, self._scorer_name, self._world_model_arg = scene, scorer, world_model
        self._world: World | None = None
        self._world_model: Any = None
        self._detector: Any = None
        self.scene_name, workspace, spec = self._scene_facts(scene)
        if self.task and self.scene_name != self.task.scene:
            raise ValueError(f"task {self.task.name!r} runs in scene {self.task.scene!r}, not {self.scene_name!r}")
        self.controller = make_controller(action_mode, chunk, workspace, clamp)
        self._check_world_model(world_model, spec)
        self.slots = [_Slot() for _ in range(int(num_envs))]

    # ------------------------------------------------------------------------------- set-up
    def _scene_facts(self, scene: str | World | None) -> tuple[str, tuple[np.ndarray, np.ndarray], Any]:
        """(name, workspace, physics spec) without building a built-in scene's splat."""
        from ..physics.build import spec_workspace
        from ..physics.spec import BUILTIN_SCENES, builtin_scene

        if isinstance(scene, World):
            self._world = scene.at(self.width, self.height, self.fov_y)
            return scene.name, scene.workspace, scene.spec
        name = scene or (self.task.scene if self.task else "tabletop")
        if name in BUILTIN_SCENES:
            spec = builtin_scene(name)
            return name, spec_workspace(spec), spec
        self._world = World.from_ply(name, self.width, self.height, self.fov_y)
        return name, self._world.workspace, None

    def _check_world_model(self, wm: Any, spec: Any) -> None:
        from ..worldmodel.models import frame_size

        if isinstance(wm, str) and wm == "oracle":
            if spec is None:
                raise ValueError("world_model='oracle' needs a built-in scene (it simulates the scene's physics)")
            return
        size = frame_size(wm) if isinstance(wm, (str, os.PathLike)) else (wm.width, wm.height)
        if size != (self.width, self.height):
            raise ValueError(f"world model {getattr(wm, 'name', wm)!r} works at {size[0]}x{size[1]}; create the env "
                             f"with width={size[0]}, height={size[1]}")  # fmt: skip

    def build(self) -> None:
        """Build the scene, the world model, the scorer and the goal (once)."""
        if self._world_model is not None:
            return
        from .._fork import check_fork_safe
        from ..physics.build import scene_world
        from ..scoring import make_scorer
        from ..worldmodel import load

        check_fork_safe("DexWorld-v0")
        if self._world is None:
            self._world = scene_world(self.scene_name, self.width, self.height, self.fov_y)
        wm = self._world_model_arg
        if isinstance(wm, str) and wm == "oracle":
            wm = load("oracle", width=self.width, height=self.height, window=self.chunk + 1, fov_y=self.fov_y,
                      world=self._world)  # fmt: skip
        elif isinstance(wm, (str, os.PathLike)):
            wm = load(wm, device=self.device)
        self.scorer = make_scorer(self._scorer_name)
        self._goal = self._make_goal()
        self._world_model = wm

    @property
    def world(self) -> World:
        self.build()
        assert self._world is not None
        return self._world

    @property
    def world_model(self) -> Any:
        self.build()
        return self._world_model

    @property
    def goal(self) -> Any:
        self.build()
        return self._goal

    def _make_goal(self) -> Any:
        if self.task is None:
            return None
        from ..scoring import Goal
        from .tasks import goal_for

        g = goal_for(self.task.name, self.width, self.height)
        return Goal(image=g["image"], text=g["text"], start=g["start"])

    @property
    def num_envs(self) -> int:
        return len(self.slots)

    def observation_space(self) -> spaces.Dict:
        c, h, w = self.chunk, self.height, self.width
        return spaces.Dict({
            "frames": spaces.Box(0, 255, (c, h, w, 3), np.uint8),
            "static": spaces.Box(0, 255, (c, h, w, 3), np.uint8),
            "hand_prompt": spaces.Box(0, 255, (c, h, w, 3), np.uint8),
            "camera": spaces.Box(-100.0, 100.0, (7,), np.float64),
            "hands": spaces.Box(-100.0, 100.0, (2, 51), np.float64),
            "hands_visible": spaces.MultiBinary(2),
        })  # fmt: skip

    # -------------------------------------------------------------------------------- reset
    def reset(self, i: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start env ``i``'s episode with its random stream ``rng``."""
        self.build()
        slot = _Slot(rng=rng, state=initial_state(self.world.table, self.world.start_camera, rng))
        static = self.world.render_static(np.repeat(slot.state.camera[None], self.chunk, 0))
        slot.last = {"frames": static, "static": static, "hand_prompt": np.zeros_like(static)}
        self.slots[i] = slot
        return self.observation(i), {"task": None if self.task is None else self.task.name,
                                     "goal_text": None if self.goal is None else self.goal.text}  # fmt: skip

    def check_started(self, indices: list[int]) -> None:
        not_started = [i for i in indices if self.slots[i].state is None]
        if not_started:
            raise RuntimeError(f"call reset() before step(): env(s) {not_started} have no episode")

    # --------------------------------------------------------------------------------- step
    def step(self, actions: dict[int, Any]) -> dict[int, tuple[dict, float, bool, bool, dict]]:
        """Step the envs in ``actions`` (index -> one env's action) with one world-model call per
        window shape; returns index -> (obs, reward, terminated, truncated, info)."""
        self.check_started(list(actions))
        planned, controller_s = {}, {}
        for i, a in actions.items():  # validates all first
            t0 = time.perf_counter()
            planned[i] = self.controller.step(self.slots[i].state, a)
            controller_s[i] = time.perf_counter() - t0
        requests = [self._request(i, *planned[i], controller_s[i]) for i in actions]
        out: dict[int, tuple[dict, float, bool, bool, dict]] = {}
        for group in self._groups(requests):
            t0 = time.perf_counter()
            generation = self._generate(group)
            wm_s = (time.perf_counter() - t0) / len(group)
            for j, req in enumerate(group):
                out[req.index] = self._finish(req, generation, j, wm_s)
        return out

    def _request(self, i: int, chunk: Chunk, next_state: HandState, controller_s: float) -> _Request:
        timings = {"controller": controller_s}
        cond = self.world.render_conditions(chunk.cameras, HandStates(chunk.params, chunk.visible),
                                            kinds=(self.prompt_kind,), timings=timings)  # fmt: skip
        static, prompt, context = cond.static, cond.prompt(self.prompt_kind), None
        slot, c = self.slots[i], self.world_model.context_frames
        if slot.context is not None and c > 0:
            static = np.concatenate((slot.context["static"][-c:], static))
            prompt = np.concatenate((slot.context["prompt"][-c:], prompt))
            context = slot.context["frames"][-c:]
        return _Request(i, chunk, next_state, static, prompt, cond.joints, context, timings)

    @staticmethod
    def _groups(requests: list[_Request]) -> list[list[_Request]]:
        """Requests that can share one world-model call: same window length, all with or all without context."""
        groups: dict[tuple[int, bool], list[_Request]] = {}
        for r in requests:
            groups.setdefault((len(r.prompt), r.context is not None), []).append(r)
        return list(groups.values())

    def _generate(self, group: list[_Request]) -> Any:
        hands = [self._trajectory(self.slots[r.index].chunks + [r.chunk], self.slots[r.index].joints + [r.joints])
                 for r in group]  # fmt: skip
        generators = [torch.Generator().manual_seed(int(self.slots[r.index].rng.integers(2**31))) for r in group]
        text = None if self.goal is None else [self.goal.text] * len(group)
        return self.world_model.generate(
            np.stack([r.static for r in group]), np.stack([r.prompt for r in group]),
            context=None if group[0].context is None else np.stack([r.context for r in group]),
            text=text, generator=generators, num_steps=self.num_steps, hands=hands)  # fmt: skip

    def _finish(self, req: _Request, generation: Any, j: int, wm_s: float) -> tuple[dict, float, bool, bool, dict]:
        slot = self.slots[req.index]
        slot.state = req.next_state
        slot.chunks.append(req.chunk)
        slot.joints.append(req.joints)
        new = generation.frames[j, -self.chunk :]
        static, prompt = req.static[-self.chunk :], req.prompt[-self.chunk :]
        slot.context = {"frames": new, "static": static, "prompt": prompt}
        slot.last = {"frames": new, "static": static, "hand_prompt": prompt}
        reward, success, info = 0.0, False, {}
        t0 = time.perf_counter()
        if self.task is not None:
            from ..scoring import hand_masks_from_prompts

            reward = float(self.scorer.score(new[None], self.goal, hand_masks_from_prompts(prompt[None]))[0])
            info["score"] = reward
            measure = self.task.outcome(generation, j, self.world.spec)
            if measure is None:  # a learned model: read the outcome from the frames
                measure = self._read_outcome(slot, req, new, prompt)
            if measure is not None:
                info["measure"] = measure
                success = measure >= self.task.min_move
        info["success"] = success
        #: wall seconds of the last step by stage (kept out of ``info``, which must be deterministic); ``scorer``
        #: holds the reward and the success reading, ``world_model`` this env's share of the batched call
        slot.timings = {**req.timings, "world_model": wm_s, "scorer": time.perf_counter() - t0}
        return self.observation(req.index), reward, success, False, info

    @property
    def detector(self) -> Any:
        """The task's :class:`~dexsim.envs.detect.SuccessDetector` (built on first use)."""
        if self._detector is None:
            from .detect import SuccessDetector

            self._detector = SuccessDetector(self.task, self.world)
        return self._detector

    def _read_outcome(self, slot: _Slot, req: _Request, frames: np.ndarray, prompt: np.ndarray) -> float | None:
        """The detector's reading of the episode so far: the last readable frame of this chunk, else
        the one an earlier chunk gave (None: no frame was readable yet)."""
        from .detect import hand_masks

        done = sum(len(c) for c in slot.chunks[:-1])
        det = self.detector.detect(frames, req.chunk.cameras, hand_masks(prompt), first_frame=done,
                                   joints=req.joints, visible=req.chunk.visible)  # fmt: skip
        if det is not None:
            slot.detection = det
        return None if slot.detection is None else slot.detection.measure

    def detect_chunk(self, i: int, frames: np.ndarray) -> Any:
        """The task's detector on other frames of env ``i``'s last chunk (e.g. the physics oracle's), read as
        the env reads its own: frames (C, H, W, 3) uint8 -> :class:`~dexsim.envs.detect.Detection` or None."""
        from .detect import hand_masks

        slot = self.slots[i]
        if not slot.chunks or slot.last is None:
            raise ValueError(f"env {i} has not stepped yet: no chunk to read")
        chunk = slot.chunks[-1]
        done = sum(len(c) for c in slot.chunks[:-1])
        return self.detector.detect(frames, chunk.cameras, hand_masks(slot.last["hand_prompt"]), first_frame=done,
                                    joints=slot.joints[-1], visible=chunk.visible)  # fmt: skip

    def detection(self, i: int) -> Any:
        """Env ``i``'s last :class:`~dexsim.envs.detect.Detection` this episode (None with physics, or
        while no frame was readable)."""
        return self.slots[i].detection

    # ------------------------------------------------------------------------------ queries
    def observation(self, i: int) -> dict[str, np.ndarray]:
        slot = self.slots[i]
        assert slot.last is not None and slot.state is not None
        return {**{k: v.copy() for k, v in slot.last.items()}, "camera": slot.state.camera.copy(),
                "hands": slot.state.params.copy(), "hands_visible": slot.state.visible.astype(np.int8)}  # fmt: skip

    def _trajectory(self, chunks: list[Chunk], joints: list[np.ndarray]) -> HandTrajectory:
        whole = Chunk.concatenate(chunks)
        return HandTrajectory(t=np.arange(len(whole)) / 8.0, joints=np.concatenate(joints).astype(np.float32),
                              visible=whole.visible, params=whole.params, camera=whole.cameras,
                              K=self.world.K.numpy(), width=self.width, height=self.height)  # fmt: skip

    def episode_hands(self, i: int) -> HandTrajectory:
        """Env ``i``'s episode so far (cameras, hand parameters and joints, visibility) as a trajectory."""
        slot = self.slots[i]
        if not slot.chunks:
            raise RuntimeError("the episode has no step yet")
        return self._trajectory(slot.chunks, slot.joints)

    def forecast(self, i: int, k: int = 8, forecaster: Any = "default", use_goal: bool = True,
                 text: str | None = None, generator: Any = None) -> Any:  # fmt: skip
        """The hand forecaster's ``k`` proposals for env ``i``'s next chunk (a
        :class:`~dexsim.forecast.Forecast`; ``Forecast.mano_action(j)`` is sample j as a ``mano`` action):
        it sees the last frame, the episode's trajectory so far, and (``use_goal``) the task's goal image
        and text (``text`` overrides it). ``forecaster``: ``"default"``, a folder or a model (kept). The network
        samples (``start="noise"``): an episode's newest frames are not the start of a clip, which is what the
        forecaster's bank retrieval matches."""
        from ..forecast import forecast, load_forecaster

        self.check_started([i])
        if isinstance(forecaster, str):
            cache = self.__dict__.setdefault("_forecasters", {})
            if forecaster not in cache:
                cache[forecaster] = load_forecaster(forecaster)
            forecaster = cache[forecaster]
        slot = self.slots[i]
        assert slot.last is not None and slot.state is not None
        if slot.chunks:
            history = self.episode_hands(i)
        else:
            st = slot.state
            history = {"params": st.params[None], "visible": st.visible[None], "camera": st.camera[None]}
        goal = self.goal if use_goal else None
        image = None if goal is None or goal.image.shape != slot.last["frames"][-1].shape else goal.image
        words = text if text is not None else (None if goal is None else goal.text)
        horizon = min(self.chunk, forecaster.config.horizon)
        return forecast(forecaster, slot.last["frames"][-1], slot.state.camera, self.world.K.numpy(), history,
                        image, words, k=k, horizon=horizon, generator=generator, start="noise")  # fmt: skip

    def preview(self, i: int, actions: np.ndarray) -> Any:
        """A :class:`~dexsim.worldmodel.Rollout` of N candidate ``delta`` action sequences (N, H, 21) from
        env ``i``'s state, which is not changed. Candidates must share the camera dims (dims 0-4) so
        they share the static video."""
        from ..worldmodel import Rollout

        self.check_started([i])
        if self.action_mode != "delta":
            raise ValueError("preview() takes `delta` actions")
        actions = np.asarray(actions, np.float64)
        if actions.ndim != 3 or actions.shape[-1] != 21 or actions.shape[0] < 1 or actions.shape[1] < 1:
            raise ValueError(f"`actions` must be (N, H, 21) with N, H >= 1, got {actions.shape}")
        if not np.allclose(actions[:, :, :5], actions[:1, :, :5]):
            raise ValueError("candidates must share the camera part (dims 0-4) of their actions")
        slot = self.slots[i]
        plans = [self._play(slot.state, cand) for cand in actions]
        cameras = plans[0].cameras
        static = self.world.render_scene(cameras, with_occluder=True)
        occluder = self.world.occluder_depth(cameras, static)
        prompts, hands = [], []
        for plan in plans:
            pics, _, joints = self.world.render_hands(plan.cameras, HandStates(plan.params, plan.visible),
                                                      (self.prompt_kind,), occluder)  # fmt: skip
            prompts.append(pics[self.prompt_kind])
            hands.append(self._trajectory(slot.chunks + [plan], slot.joints + [joints]))
        return Rollout(static=static.rgb_uint8().numpy(), prompts=np.stack(prompts), hands=hands)

    def _play(self, state: HandState, actions: np.ndarray) -> Chunk:
        chunks = []
        for a in actions:
            chunk, state = self.controller.step(state, a)
            chunks.append(chunk)
        return Chunk.concatenate(chunks)


class DexWorldEnv(gym.Env):
    """## Description
    Two hands and a head-mounted camera in a static 3D scene (a Gaussian splat). Each step moves
    the camera and the hands for ``chunk`` frames; dexsim renders the static scene and the visual
    action prompt along the camera path, and the world model generates what the camera sees,
    including the objects the hands moved (DWM formulation). With ``world_model="oracle"`` the
    frames come from the MuJoCo physics of the built-in scene instead. It is the one-env case of
    :class:`DexWorldCore` (``DexWorldVectorEnv`` is its N-env case).

    ## Action Space
    ``action_mode="delta"`` (default): ``Box(-1, 1, (21,))``: camera move (3, x 5 cm) and turn (yaw,
    pitch; x 0.15 rad); per hand (left, then right): wrist move (3, x 8 cm), wrist turn (axis-angle,
    x 0.5 rad), grasp closure (-1 open .. 1 closed), presence (> 0: the hand is in view). Interpolated
    over the chunk. ``"mano"``: ``Dict(camera (chunk, 7) [t, q] camera-to-world, params (chunk, 2, 51)
    MANO-style (global_orient, hand_pose, transl), visible (chunk, 2))``. ``"keypoints"``: ``Dict(camera,
    joints (chunk, 2, 21, 3) world, visible)``, fitted by inverse kinematics (optional ``joint_valid``
    declares missing joints). Every space is bounded by the joint limits and the workspace; values
    outside are clamped with a warning; values that cannot be an action raise ``ActionError``
    (a ``ValueError``). See :mod:`dexsim.hands.controllers`.

    ## Observation Space
    ``Dict(frames, static, hand_prompt: (chunk, H, W, 3) uint8; camera (7,); hands (2, 51); hands_visible (2,))``.

    ## Rewards
    With a ``task``: the scorer's value (``region_psnr`` by default: PSNR in dB over the goal region,
    where the oracle-made goal image differs from the start) of the chunk's last frame. Without: 0.

    ## Episode End
    ``terminated`` when the task's success test holds: the target moved at least the task's
    ``min_move`` on the table (or the drawer opened as much), measured on the physics state when the
    world model returns it (the oracle), else read from the generated frames by the task's
    :class:`~dexsim.envs.detect.SuccessDetector` (``info["measure"]``: metres). Truncation:
    ``TimeLimit`` (``max_episode_steps`` from registration, 8 steps).

    ## Arguments
    ``scene`` (built-in name, ``.ply`` path or a :class:`~dexsim.world.World`), ``task`` (built-in task
    name or None), ``world_model`` ("default", "oracle", a path, or a model object), ``action_mode``,
    ``prompt_kind`` ("mesh"), ``width``, ``height``, ``chunk`` (frames per step), ``render_mode``
    ("rgb_array"), ``device``, ``scorer``, ``num_steps`` (denoising steps), ``fov_y`` (degrees),
    ``clamp`` ("warn", "silent", "error").

    ## Version History
    * v0: first version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, scene: str | World | None = None, task: str | None = None, world_model: Any = "default",
                 action_mode: str = "delta", prompt_kind: str = "mesh", width: int = 128, height: int = 128,
                 chunk: int = 8, render_mode: str | None = None, device: str = "cpu", scorer: str = "region_psnr",
                 num_steps: int | None = None, fov_y: float = 60.0, clamp: str = "warn") -> None:  # fmt: skip
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"`render_mode` must be None or 'rgb_array', got {render_mode!r}")
        self.core = DexWorldCore(1, scene, task, world_model, action_mode, prompt_kind, width, height, chunk, device,
                                 scorer, num_steps, fov_y, clamp)  # fmt: skip
        self.render_mode = render_mode
        self.action_space = self.core.controller.action_space
        self.observation_space = self.core.observation_space()

    # views of the core, for readers of the env
    task = property(lambda self: self.core.task)
    world = property(lambda self: self.core.world)
    world_model = property(lambda self: self.core.world_model)
    goal = property(lambda self: self.core.goal)
    chunk = property(lambda self: self.core.chunk)
    width = property(lambda self: self.core.width)
    height = property(lambda self: self.core.height)
    fov_y = property(lambda self: self.core.fov_y)
    action_mode = property(lambda self: self.core.action_mode)
    num_steps = property(lambda self: self.core.num_steps)
    state = property(lambda self: self.core.slots[0].state, doc="the controller state (camera and hands) now")
    hand_params = property(lambda self: self.core.slots[0].state.params)
    last_timings = property(lambda self: self.core.slots[0].timings, doc="wall times of the last step")

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        return self.core.reset(0, self.np_random)

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        return self.core.step({0: action})[0]

    def forecast(self, k: int = 8, forecaster: Any = "default", use_goal: bool = True, text: str | None = None,
                 generator: Any = None) -> Any:  # fmt: skip
        """The hand forecaster's ``k`` proposals for the next chunk: see :meth:`DexWorldCore.forecast`."""
        return self.core.forecast(0, k, forecaster, use_goal, text, generator)

    def preview(self, actions: np.ndarray) -> Any:
        """See :meth:`DexWorldCore.preview` (the env's state is not changed)."""
        return self.core.preview(0, actions)

    def episode_hands(self) -> HandTrajectory:
        """The episode so far as a hand trajectory (what the physics oracle would replay)."""
        return self.core.episode_hands(0)

    def render(self) -> np.ndarray | None:
        """``rgb_array``: the last generated frame, with the static view and the hand prompt beside it."""
        last = self.core.slots[0].last
        if self.render_mode is None or last is None:
            return None
        return np.concatenate((last["static"][-1], last["hand_prompt"][-1], last["frames"][-1]), 1)
