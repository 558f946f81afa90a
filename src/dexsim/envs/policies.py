"""Scripted policies for the built-in tasks: the reference behaviour, demos, and the policy ladder
that policy evaluation is checked against.

The ladder (:data:`LADDER`) is a set of policies per built-in task whose true (physics) success
rates spread from about 0 to about 1, so that a world model's verdicts can be compared with
physics across good and bad policies (``dexsim bench evaluate``):

==================  ============================================================================
``reference``       the task's scripted action (push, pick and place, pull the drawer), its
                    random parameters drawn from the episode seed; a draw whose hand travels
                    less than 1.5 x the task's ``min_move`` is redrawn, so it aims for a clear
                    success
``noise-2cm``...    the reference with a constant random offset of the acting hand (the wrist
                    target), N(0, sigma) per axis with sigma = 2, 4 and 8 cm
``stop-short``      the reference played at half speed: it stops half-way through its motion
``wrong-target``    the same action on another object (chosen by the seed); for the drawer, the
                    wrong way: the pull played backwards pushes on the closed drawer
``wave``            a hand waving above the table without touching anything
``random-delta``    uniform random ``delta`` actions (camera and both hands)
==================  ============================================================================

Every ladder policy is a class made with one env (:class:`~dexsim.envs.DexWorldEnv`) and reset
with an episode seed (``reset(seed=...)``); it holds the head camera where the episode started
and plays ``mano`` actions (``random-delta``: ``delta``), as its ``action_mode`` says.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["LADDER", "LadderPolicy", "RandomDeltaPolicy", "ScriptedPolicy", "ladder_policy"]

#: the ladder's policy names, roughly from the best to the worst
LADDER = ("reference", "noise-2cm", "noise-4cm", "noise-8cm", "stop-short", "wrong-target", "wave", "random-delta")
#: wrist-target noise (m) of the noise rungs
NOISE = {"noise-2cm": 0.02, "noise-4cm": 0.04, "noise-8cm": 0.08}
#: the fraction of the reference motion that ``stop-short`` plays
STOP_SHORT = 0.5
#: a reference draw must move the acting hand at least this many times the task's ``min_move``
REFERENCE_TRAVEL = 1.5


class ScriptedPolicy:
    """Plays a task's scripted action (randomized by ``seed``) chunk by chunk as ``mano`` actions.

    ``episode_frames`` frames of the action are played; an env with ``chunk`` c needs
    ``episode_frames / c`` steps.
    """

    action_mode = "mano"

    def __init__(self, task: str, chunk: int = 8, seed: int = 0, episode_frames: int = 16, kind: str | None = None,
                 target: str | None = None) -> None:  # fmt: skip
        from ..physics.actions import make_action
        from ..physics.spec import builtin_scene
        from .tasks import TASKS

        t = TASKS[task]
        spec = builtin_scene(t.scene)
        self.action = make_action(spec, kind or t.kind, np.random.default_rng(seed), episode_frames,
                                  target=target if kind else t.target, camera="static")  # fmt: skip
        self.chunk, self.step_index = chunk, 0
        self.num_steps = episode_frames // chunk

    def reset(self) -> None:
        self.step_index = 0

    def __call__(self, obs: Any = None) -> dict[str, np.ndarray]:
        tr = self.action.trajectory
        s = min(self.step_index, self.num_steps - 1) * self.chunk
        self.step_index += 1
        sl = slice(s, s + self.chunk)
        return {
            "camera": tr.camera[sl].copy(),
            "params": tr.params[sl].copy(),
            "visible": tr.visible[sl].astype(np.int8),
        }


def _acting_hand(visible: np.ndarray) -> int:
    """The hand (0 left, 1 right) a scripted action moves: the one visible in most frames."""
    return int(np.argmax(np.asarray(visible).sum(0)))


def _travel(params: np.ndarray, visible: np.ndarray) -> float:
    """How far (m, on the table plane) the acting hand's model origin moves from the first to the last frame."""
    h = _acting_hand(visible)
    return float(np.linalg.norm(params[-1, h, 48:50] - params[0, h, 48:50]))


def _resample(params: np.ndarray, fraction: float) -> np.ndarray:
    """(T, 2, 51) parameters played at ``fraction`` of their speed: frame i shows frame ``fraction * i``
    (linear between neighbouring frames, which differ little)."""
    s = fraction * np.arange(len(params))
    lo = np.floor(s).astype(int)
    hi = np.minimum(lo + 1, len(params) - 1)
    w = (s - lo)[:, None, None]
    return (1 - w) * params[lo] + w * params[hi]


def ladder_trajectory(task_name: str, name: str, rng: np.random.Generator,
                      frames: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The hands of ladder policy ``name`` (any but ``random-delta``) on ``task_name`` for one episode:
    ``params`` (frames, 2, 51) and ``visible`` (frames, 2), drawn from ``rng``."""
    from ..physics.actions import make_action
    from ..physics.spec import builtin_scene
    from .tasks import TASKS

    task = TASKS[task_name]
    spec = builtin_scene(task.scene)

    def draw(kind: str, target: str | None) -> tuple[np.ndarray, np.ndarray]:
        tr = make_action(spec, kind, rng, frames, target=target, camera="static").trajectory
        return tr.params.astype(np.float64), tr.visible.copy()

    if name == "wave":
        return draw("wave", None)
    if name == "wrong-target" and task.target is not None:
        others = [o.name for o in spec.objects if o.name != task.target]
        return draw(task.kind, others[int(rng.integers(len(others)))])
    params, visible = draw(task.kind, task.target)
    for _ in range(31):  # the reference aims for a clear success (pick and place also draws short moves)
        if _travel(params, visible) >= REFERENCE_TRAVEL * task.min_move:
            break
        params, visible = draw(task.kind, task.target)
    if name == "reference":
        return params, visible
    if name in NOISE:
        h = _acting_hand(visible)
        params[:, h, 48:51] += rng.normal(0.0, NOISE[name], 3)
        return params, visible
    if name == "stop-short":
        return _resample(params, STOP_SHORT), visible
    if name == "wrong-target":  # the drawer: the pull played backwards pushes on the closed drawer
        return params[::-1].copy(), visible[::-1].copy()
    raise ValueError(f"unknown ladder policy {name!r}; choose one of {LADDER}")


class LadderPolicy:
    """A ladder policy (see the module docstring) playing ``mano`` actions in ``env``'s task.

    Made with one env (its task and chunk); ``reset(seed=...)`` draws the episode's hands; each
    call returns the next chunk, the camera held where the episode started (the first
    observation's ``camera``)."""

    action_mode = "mano"

    def __init__(self, env: Any, name: str = "reference", frames: int | None = None) -> None:
        if name not in LADDER or name == "random-delta":
            raise ValueError(f"`name` must be a mano ladder policy {LADDER[:-1]}, got {name!r}")
        task = getattr(env, "task", None)
        if task is None:
            raise ValueError("ladder policies need an env with a built-in task")
        self.task, self.name, self.chunk = task, name, int(env.chunk)
        self.frames = int(frames or task.horizon)
        self.params: np.ndarray | None = None  # drawn by reset() (seed 0 when the first call comes first)

    def reset(self, seed: int | None = None) -> None:
        rng = np.random.default_rng(None if seed is None else [int(seed), 0x1ADDE])
        self.params, self.visible = ladder_trajectory(self.task.name, self.name, rng, self.frames)
        self.step_index, self.camera = 0, None

    def __call__(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        if self.params is None:
            self.reset(seed=0)
        assert self.params is not None
        if self.camera is None:
            self.camera = np.asarray(obs["camera"], np.float64).copy()
        last = max(len(self.params) - self.chunk, 0)
        s = min(self.step_index * self.chunk, last)
        self.step_index += 1
        params, visible = self.params[s : s + self.chunk], self.visible[s : s + self.chunk]
        if len(params) < self.chunk:  # a chunk longer than the action: hold its last frame
            pad = self.chunk - len(params)
            params = np.concatenate((params, np.repeat(params[-1:], pad, 0)))
            visible = np.concatenate((visible, np.repeat(visible[-1:], pad, 0)))
        return {"camera": np.repeat(self.camera[None], self.chunk, 0), "params": params.copy(),
                "visible": visible.astype(np.int8)}  # fmt: skip


class RandomDeltaPolicy:
    """Uniform random ``delta`` actions in [-1, 1]^21 (camera and both hands), drawn from the episode seed."""

    action_mode = "delta"

    def __init__(self, env: Any) -> None:
        self.reset(seed=0)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(None if seed is None else [int(seed), 0x2ADDE])

    def __call__(self, obs: Any) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, 21).astype(np.float32)


def ladder_policy(name: str) -> Any:
    """A factory of ladder policy ``name``: call it with one env; its ``action_mode`` says what it plays."""
    if name == "random-delta":
        return RandomDeltaPolicy
    if name not in LADDER:
        raise ValueError(f"unknown policy {name!r}: not a built-in policy {list(LADDER)} nor module:attribute")
    factory = functools.partial(LadderPolicy, name=name)
    factory.action_mode = LadderPolicy.action_mode  # type: ignore[attr-defined]
    return factory
