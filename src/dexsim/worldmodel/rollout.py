"""Long-horizon rollout: chunk after chunk, each conditioned on the last generated frames."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["iter_rollout", "rollout", "window_starts"]


def window_starts(total: int, window: int, context: int) -> list[int]:
    """Start frames of the windows covering ``total`` frames: the first has no context, each later
    one starts ``context`` frames before the first frame it adds (the last may overlap more)."""
    if window <= context:
        raise ValueError(f"`window` ({window}) must exceed `context` ({context})")
    if total <= window:
        return [0]
    starts, s = [0], window - context
    while s + window < total:
        starts.append(s)
        s += window - context
    starts.append(total - window)
    return starts


def iter_rollout(model: Any, static: np.ndarray, prompt: np.ndarray, text: str | list[str] | None = None,
                 generator: torch.Generator | None = None, hands: list[Any] | None = None,
                 progress: bool = False) -> Iterator[tuple[int, np.ndarray]]:  # fmt: skip
    """Yield ``(first_frame, new_frames)`` for a (B, N, H, W, 3) episode, window by window.

    Only the last ``context_frames`` generated frames are kept between windows, so memory stays flat.
    """
    static, prompt = np.asarray(static), np.asarray(prompt)
    total, w, c = prompt.shape[1], model.window, model.context_frames
    last: np.ndarray | None = None
    done = 0
    for s in tqdm(window_starts(total, w, c), disable=not progress, desc="rollout", unit="window"):
        e = min(s + w, total)
        ctx = None if s == 0 else last[:, last.shape[1] - (done - s) :]
        hs = None if hands is None else [h.slice(0, e) for h in hands]
        frames = model.generate(static[:, s:e], prompt[:, s:e], context=ctx, text=text, generator=generator,
                                hands=hs).frames  # fmt: skip
        new = frames[:, done - s :]
        yield done, new
        done = e
        last = frames[:, -c:] if c else frames[:, :0]


def rollout(model: Any, static: np.ndarray, prompt: np.ndarray, **kwargs: Any) -> np.ndarray:
    """The whole (B, N, H, W, 3) uint8 video of :func:`iter_rollout`."""
    prompt = np.asarray(prompt)
    out = np.empty(prompt.shape, np.uint8)
    for first, new in iter_rollout(model, static, prompt, **kwargs):
        out[:, first : first + new.shape[1]] = new
    return out
