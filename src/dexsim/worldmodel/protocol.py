"""The ``WorldModel`` protocol: what the env and the planners call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["Generation", "Rollout", "WorldModel"]


@dataclass
class Generation:
    """What a world model returns. ``frames`` (B, T, H, W, 3) uint8: the generated window. When the
    model simulates physics (the oracle), per item i the episode's physics record from its first
    frame to the window's last: ``object_poses[i]`` (N_i, K, 7) world ``[t, q]`` of the K movable
    objects and ``drawer[i]`` (N_i,) the drawer's opening in metres (zeros without a drawer);
    None for learned models."""

    frames: np.ndarray
    object_poses: list[np.ndarray] | None = None
    drawer: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.frames.ndim != 5 or self.frames.dtype != np.uint8:
            raise ValueError(f"`frames` must be (B, T, H, W, 3) uint8, got {self.frames.shape} {self.frames.dtype}")
        for name in ("object_poses", "drawer"):
            v = getattr(self, name)
            if v is not None and len(v) != len(self.frames):
                raise ValueError(f"`{name}` has {len(v)} items for a batch of {len(self.frames)}")

    @property
    def has_physics(self) -> bool:
        return self.object_poses is not None

    def __len__(self) -> int:
        return len(self.frames)

    def item(self, i: int) -> Generation:
        """Item ``i`` as a batch of one."""
        pick = lambda v: None if v is None else [v[i]]  # noqa: E731
        return Generation(self.frames[i : i + 1], pick(self.object_poses), pick(self.drawer))

    @staticmethod
    def concatenate(parts: list[Generation]) -> Generation:
        """One batch from several (physics kept only when every part has it)."""
        physics = all(p.has_physics for p in parts)
        return Generation(np.concatenate([p.frames for p in parts]),
                          [x for p in parts for x in p.object_poses] if physics else None,  # type: ignore[union-attr]
                          [x for p in parts for x in p.drawer] if physics else None)  # type: ignore[union-attr]  # fmt: skip


@dataclass
class Rollout:
    """What a planner simulates for one scene and camera path: the static video (T, H, W, 3) shared by
    every candidate, and per candidate the hand-prompt video (N, T, H, W, 3), its text and (for the
    physics oracle) its hand trajectory. The small protocol between planners and whatever makes
    candidates (an env's ``preview``, a benchmark), so planners need no env."""

    static: np.ndarray
    prompts: np.ndarray
    hands: list[Any] | None = None
    texts: list[str] | None = None


@runtime_checkable
class WorldModel(Protocol):
    """Generates what the head camera sees while the hands act.

    Attributes: ``width``, ``height`` (pixels), ``window`` (frames per call, context included),
    ``context_frames`` (known frames a continuation call starts with), ``fps``.

    ``generate(static, prompt, context=None, text=None, generator=None, num_steps=None, hands=None)``:
    ``static`` (B|1, T, H, W, 3) uint8 (a batch of one is shared by all B items and its cost paid
    once), ``prompt`` (B, T, H, W, 3) uint8, ``context`` (B, C, H, W, 3) the last frames so far
    (they come back unchanged as the first C frames), ``text`` one or B strings, ``hands`` the
    episode's hand trajectories so far, one per item (the physics oracle needs them; learned
    models ignore them). ``generator``: one, or one per item (item i's noise then depends on its own
    generator only). Returns a :class:`Generation`; the same generators give the same frames.
    """

    width: int
    height: int
    window: int
    context_frames: int
    fps: float

    def generate(
        self,
        static: np.ndarray,
        prompt: np.ndarray,
        context: np.ndarray | None = None,
        text: str | list[str] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_steps: int | None = None,
        hands: list[Any] | None = None,
    ) -> Generation: ...
