"""Replay a keyboard session of ``dexsim play`` without a browser and measure where the world model puts the
target against where physics puts it, chunk by chunk (the frame-reading success detector on both)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

__all__ = ["DEFAULT_KEYS", "parse_keys", "replay_keys", "replay_sheet"]

#: a keyboard push of push-red-box (seeds 0-2): switch to the left hand, left twice, down, then right into the box
DEFAULT_KEYS = "T J J,O O,L L,L L,U U,K K"


def parse_keys(text: str) -> list[list[str]]:
    """``"T J J,O O"`` -> ``[["T", "J", "J"], ["O", "O"]]``: the keys pressed before each step (comma between
    steps, spaces between keys; an empty group is a step with nothing pressed). Unknown keys are named."""
    from .session import KEYS

    groups = [g.split() for g in text.split(",")]
    composing = sorted(set(KEYS) - {"N", "space"})  # reset and step are the replay's own
    bad = sorted({k for g in groups for k in g if k not in composing})
    if bad:
        raise ValueError(f"unknown keys {bad} in {text!r}; the composing keys are {composing}")
    return groups


def _read(det: Any) -> dict[str, Any] | None:
    """A :class:`~dexsim.envs.detect.Detection` as JSON-ready numbers (None stays None)."""
    return None if det is None else {"frame": int(det.frame), "position_px": [float(v) for v in det.position_px],
                                     "measure_m": float(det.measure), "visible": float(det.visible)}  # fmt: skip


def replay_keys(task: str = "push-red-box", world_model: Any = "default", keys: str = DEFAULT_KEYS, seed: int = 0,
                progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Press ``keys`` (:func:`parse_keys`) in a :class:`~dexsim.play.session.PlaySession` of ``task`` from ``seed``,
    one step per group, with the physics oracle beside the world model; after each step read the target in the
    generated and the physics frames. ``error_px`` per chunk: the distance between the two readings when both read
    the same frame (None otherwise); ``median_error_px`` over the chunks with one; ``physics_moved_px`` /
    ``generated_moved_px``: how far each moved the target from its first reading. Also returns the chunks' last
    frames (static, prompt, generated, physics) under ``"_frames"`` for :func:`replay_sheet`."""
    from .session import PlaySession

    groups = parse_keys(keys)
    if world_model == "oracle":
        raise ValueError("world_model 'oracle' is the physics itself: replay a learned world model against it")
    session = PlaySession(task=task, world_model=world_model, seed=seed, physics=True)
    if session.env.world.spec is None:
        raise ValueError(f"task {task!r} has no physics oracle to compare with")
    chunks, frames = [], []
    for group in tqdm(groups, disable=not progress, desc="replay", unit="step"):
        for key in group:
            session.press(key)
        view = session.step(physics=True)
        gen, phys = (session.env.core.detect_chunk(0, f) for f in (view.generated, view.physics))
        error = None
        if gen is not None and phys is not None and gen.frame == phys.frame:
            error = float(np.linalg.norm(np.asarray(gen.position_px) - np.asarray(phys.position_px)))
        chunks.append({"keys": group, "generated": _read(gen), "physics": _read(phys), "error_px": error})
        frames.append(np.stack((view.static[-1], view.prompt[-1], view.generated[-1], view.physics[-1])))
    errors = [c["error_px"] for c in chunks if c["error_px"] is not None]
    return {"task": task, "world_model": world_model if isinstance(world_model, str) else type(world_model).__name__,
            "seed": seed, "keys": keys, "chunks": chunks,
            "median_error_px": float(np.median(errors)) if errors else None,
            "physics_moved_px": _moved(chunks, "physics"), "generated_moved_px": _moved(chunks, "generated"),
            "rule": "error_px: |generated - physics| target centre on the chunk's last readable frame, when both "
                    "read the same frame; moved: largest distance from the first reading",
            "_frames": np.stack(frames)}  # fmt: skip


def _moved(chunks: list[dict[str, Any]], which: str) -> float | None:
    """The largest distance (px) of ``which`` reading ("generated" / "physics") from its first one."""
    points = [np.asarray(c[which]["position_px"]) for c in chunks if c[which] is not None]
    return float(max(np.linalg.norm(p - points[0]) for p in points)) if points else None


def replay_sheet(results: list[dict[str, Any]], path: Path) -> Path:
    """A PNG: one block per replay, a row per step of its last frames static | prompt | generated | physics."""
    from PIL import Image

    from .._io import atomic_write

    blocks = [np.concatenate([np.concatenate(list(row), 1) for row in r["_frames"]], 0) for r in results]
    if len({b.shape[0] for b in blocks}) != 1:
        raise ValueError("replays of different lengths do not share a sheet")
    sheet = np.concatenate(blocks, 1)
    return atomic_write(path, lambda tmp: Image.fromarray(sheet).save(tmp, format="PNG"))
