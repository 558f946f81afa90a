"""Built-in tasks: a scene, a goal (image made by the physics oracle, and a text), a success test."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

__all__ = ["TASKS", "Task", "goal_for"]


@dataclass(frozen=True)
class Task:
    """``kind``/``target``: the scripted action that reaches the goal (it makes the goal image and is
    the reference policy); ``success``: the physics test on the oracle's state, the target moved at
    least ``min_move`` metres on the table (or the drawer opened by as much); with a learned world
    model the same test is read from the frames by :class:`~dexsim.envs.detect.SuccessDetector`.
    ``horizon``: the frames of an evaluation episode (2 steps at chunk 8)."""

    name: str
    scene: str
    kind: str
    target: str | None
    text: str
    min_move: float = 0.05
    goal_seed: int = 1
    horizon: int = 16

    def measure(self, object_poses: np.ndarray, drawer: np.ndarray, spec: Any) -> float:
        """The continuous outcome of an episode's physics record (``object_poses`` (N, K, 7), ``drawer``
        (N,)): how far the target moved on the table (m), or how much the drawer opened (m)."""
        if self.target is None:
            return float(drawer[-1] - drawer[0])
        k = spec.object_names.index(self.target)
        return float(np.linalg.norm(object_poses[-1, k, :2] - object_poses[0, k, :2]))

    def success(self, object_poses: np.ndarray, drawer: np.ndarray, spec: Any) -> bool:
        return self.measure(object_poses, drawer, spec) >= self.min_move

    def outcome(self, generation: Any, index: int, spec: Any) -> float | None:
        """:meth:`measure` of item ``index`` of a :class:`~dexsim.worldmodel.Generation`; None when the
        world model returned no physics."""
        if not generation.has_physics:
            return None
        return self.measure(generation.object_poses[index], generation.drawer[index], spec)


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("push-red-box", "tabletop", "push", "red_box", "push the red box away"),
        Task("push-yellow-block", "tabletop", "push", "yellow_block", "push the yellow block away"),
        Task("pick-place-green-can", "tabletop", "pick_place", "green_can", "pick up the green can and put it down"),
        Task("open-drawer", "drawer", "open_drawer", None, "open the drawer", min_move=0.06),
    )
}  # fmt: skip


@cache
def goal_for(task_name: str, width: int, height: int, frames: int = 16) -> dict[str, Any]:
    """The task's goal, made by the physics oracle running the task's scripted action from the start
    camera (held still): ``image`` (last frame), ``start`` (first static frame), the action, the text."""
    from ..physics.actions import make_action
    from ..physics.oracle import Oracle
    from ..physics.spec import builtin_scene

    task = TASKS[task_name]
    spec = builtin_scene(task.scene)
    action = make_action(spec, task.kind, np.random.default_rng(task.goal_seed), frames, target=task.target,
                         camera="static")  # fmt: skip
    clip = Oracle(spec, width, height).run(action.trajectory)
    return {"image": clip.scene[-1], "start": clip.static[0], "action": action, "text": task.text,
            "measure": task.measure(clip.sim.object_poses, clip.sim.drawer, spec)}  # fmt: skip
