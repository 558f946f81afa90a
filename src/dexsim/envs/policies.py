"""Scripted policies for the built-in tasks (reference behaviour, demos, policy evaluation)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ScriptedPolicy"]


class ScriptedPolicy:
    """Plays a task's scripted action (randomized by ``seed``) chunk by chunk as ``mano`` actions.

    ``episode_frames`` frames of the action are played; an env with ``chunk`` c needs
    ``episode_frames / c`` steps.
    """

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
