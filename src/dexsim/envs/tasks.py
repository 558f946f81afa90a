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
    the reference policy); ``success``: the physics test on the oracle's state, ``min_move`` metres
    of the target (or drawer opening); with a learned world model success is the image test
    (goal-region PSNR at least ``image_margin_db`` above the start view's)."""

    name: str
    scene: str
    kind: str
    target: str | None
    text: str
    min_move: float = 0.05
    goal_seed: int = 1
    image_margin_db: float = 3.0

    def measure(self, physics: dict[str, np.ndarray], spec: Any) -> float:
        """The continuous outcome: how far the target moved (m), or the drawer opening change (m)."""
        if self.target is None:
            d = physics["drawer"]
            return float(d[-1] - d[0])
        k = spec.object_names.index(self.target)
        p = physics["object_poses"]
        return float(np.linalg.norm(p[-1, k, :2] - p[0, k, :2]))

    def success(self, physics: dict[str, np.ndarray], spec: Any) -> bool:
        return self.measure(physics, spec) >= self.min_move


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
    clip = Oracle(spec, width, height, density_scale=0.35).run(action.trajectory)
    physics = {"object_poses": clip.sim.object_poses, "drawer": clip.sim.drawer}
    return {"image": clip.scene[-1], "start": clip.static[0], "action": action, "text": task.text,
            "measure": task.measure(physics, spec)}  # fmt: skip
