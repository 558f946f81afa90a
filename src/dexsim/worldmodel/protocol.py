"""The ``WorldModel`` protocol: what the env and the planners call."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["WorldModel"]


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
    models ignore them). Returns (B, T, H, W, 3) uint8; the same ``generator`` seed gives the same frames.
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
        generator: torch.Generator | None = None,
        num_steps: int | None = None,
        hands: list[Any] | None = None,
    ) -> np.ndarray: ...
