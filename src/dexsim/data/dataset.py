"""The paired-clip dataset in the DWM layout, plus dexsim's own parts.

One clip ``ID`` is::

    videos/ID.mp4          ground-truth interaction video          (DWM)
    videos_static/ID.mp4   static-scene render along the same path (DWM)
    videos_hands/ID.mp4    visual action prompt (mesh, DWM colours) (DWM)
    prompts/ID.txt         text (DWM's own data has prompts_rewrite/ID.txt; both are read)
    actions/ID.npz         the hand trajectory (the DESIGN.md .npz contract)
    masks/ID.npz           ``masks`` (T, H, W) int8: object id per pixel (-1 none, -2 left hand, -3 right hand)
    meta/ID.npz            physics record: ``object_poses`` (T, K, 7), ``contacts`` (T, 2, K'), ``drawer`` (T,)
    meta/ID.json           scene, seeds, action kind, text, fps, size; written last: a clip is complete iff it exists

Every file is written atomically; an interrupted clip leaves no ``meta/ID.json`` and is redone.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write, write_json
from ..video import write_mp4

__all__ = [
    "DWM_PARTS",
    "EXTRA_PARTS",
    "Clip",
    "ClipRecord",
    "check_dataset",
    "clip_ids",
    "is_complete",
    "read_clip",
    "write_clip",
]

DWM_PARTS = {"videos": ".mp4", "videos_static": ".mp4", "videos_hands": ".mp4"}
EXTRA_PARTS = {"actions": ".npz", "masks": ".npz", "meta": ".json"}


@dataclass
class ClipRecord:
    """Everything one clip writes (videos (T, H, W, 3) uint8)."""

    clip_id: str
    interaction: np.ndarray
    static: np.ndarray
    prompt: np.ndarray
    text: str
    actions: bytes  # the trajectory .npz, already serialised
    masks: np.ndarray
    physics: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def write_clip(root: str | os.PathLike[str], rec: ClipRecord, fps: float = 8.0) -> None:
    """Write one clip; ``meta/ID.json`` goes last, so a clip without it is incomplete."""
    root = Path(root)
    i = rec.clip_id
    write_mp4(root / "videos" / f"{i}.mp4", rec.interaction, fps=fps)
    write_mp4(root / "videos_static" / f"{i}.mp4", rec.static, fps=fps)
    write_mp4(root / "videos_hands" / f"{i}.mp4", rec.prompt, fps=fps)
    atomic_write(root / "prompts" / f"{i}.txt", lambda p: p.write_text(rec.text + "\n"))
    atomic_write(root / "actions" / f"{i}.npz", lambda p: p.write_bytes(rec.actions))
    atomic_write(root / "masks" / f"{i}.npz", lambda p: p.write_bytes(_npz_bytes(masks=rec.masks)))
    atomic_write(root / "meta" / f"{i}.npz", lambda p: p.write_bytes(_npz_bytes(**rec.physics)))
    write_json(root / "meta" / f"{i}.json", {"id": i, "text": rec.text, "fps": fps, **rec.meta})


def is_complete(root: str | os.PathLike[str], clip_id: str) -> bool:
    return (Path(root) / "meta" / f"{clip_id}.json").is_file()


def clip_ids(root: str | os.PathLike[str]) -> list[str]:
    """IDs of the clips that have a ground-truth video."""
    d = Path(root) / "videos"
    return sorted(p.stem for p in d.glob("*.mp4")) if d.is_dir() else []


def _video_info(path: Path) -> dict[str, Any]:
    import imageio.v2 as imageio

    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        meta = reader.get_meta_data()
        frames = reader.count_frames()
    finally:
        reader.close()
    return {"frames": int(frames), "size": tuple(meta["size"]), "fps": float(meta["fps"])}


def check_dataset(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Validate a dataset folder: counts, frames, resolution and fps per clip, missing parts.

    The DWM parts (the three videos and a text) are required; a missing ``actions/``, ``masks/``
    or ``meta/`` folder is reported (DWM's released data has none), a clip missing one file of a
    folder that exists is an error, and so are videos of one clip that disagree in frames or size.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such dataset folder: {root}")
    ids = clip_ids(root)
    errors: list[str] = []
    missing: dict[str, int] = {}
    absent_parts = [p for p in EXTRA_PARTS if not (root / p).is_dir()]
    text_dirs = [d for d in ("prompts", "prompts_rewrite") if (root / d).is_dir()]
    frames, sizes, fpss = set(), set(), set()
    complete = 0
    for i in ids:
        ok = True
        infos = {}
        for part, ext in DWM_PARTS.items():
            path = root / part / f"{i}{ext}"
            if not path.is_file():
                missing[part] = missing.get(part, 0) + 1
                errors.append(f"{i}: {part}/{i}{ext} is missing")
                ok = False
                continue
            try:
                infos[part] = _video_info(path)
            except Exception as exc:  # an unreadable video is an error of that clip, not of the check
                errors.append(f"{i}: {part}/{i}{ext} cannot be read ({exc})")
                ok = False
        if not any((root / d / f"{i}.txt").is_file() for d in text_dirs):
            missing["prompts"] = missing.get("prompts", 0) + 1
            errors.append(f"{i}: no prompts/{i}.txt or prompts_rewrite/{i}.txt")
            ok = False
        for part, ext in EXTRA_PARTS.items():
            if part not in absent_parts and not (root / part / f"{i}{ext}").is_file():
                missing[part] = missing.get(part, 0) + 1
                errors.append(f"{i}: {part}/{i}{ext} is missing")
                ok = False
        if len({(v["frames"], v["size"]) for v in infos.values()}) > 1:
            errors.append(f"{i}: the videos disagree: " + ", ".join(f"{k} {v['frames']} frames {v['size']}"
                                                                     for k, v in infos.items()))  # fmt: skip
            ok = False
        for v in infos.values():
            frames.add(v["frames"])
            sizes.add(v["size"])
            fpss.add(round(v["fps"], 3))
        complete += ok
    stray = [p.name for p in (root / "meta").glob("*.json")] if (root / "meta").is_dir() else []
    orphans = sorted({Path(s).stem for s in stray} - set(ids))
    if orphans:
        errors.append(f"meta without videos: {orphans[:5]}")
    return {
        "root": str(root), "clips": len(ids), "complete": int(complete),
        "frames": sorted(frames), "resolutions": sorted(list(s) for s in sizes), "fps": sorted(fpss),
        "absent_parts": absent_parts, "missing": missing, "errors": errors, "ok": not errors and len(ids) > 0,
    }  # fmt: skip


@dataclass
class Clip:
    """One clip as read back: videos (T, H, W, 3) uint8, the text, and dexsim's parts when present
    (``None`` for DWM's own data): the hand trajectory, object masks, physics arrays, metadata."""

    clip_id: str
    interaction: np.ndarray
    static: np.ndarray
    prompt: np.ndarray
    text: str
    trajectory: object | None = None
    masks: np.ndarray | None = None
    physics: dict[str, np.ndarray] | None = None
    meta: dict[str, Any] | None = None


def read_clip(root: str | os.PathLike[str], clip_id: str) -> Clip:
    """Read one clip of a DWM-layout dataset (``prompts/`` or DWM's ``prompts_rewrite/``)."""
    from ..hands.trajectory import HandTrajectory
    from ..video import read_mp4

    root = Path(root)
    videos = {}
    for part, ext in DWM_PARTS.items():
        path = root / part / f"{clip_id}{ext}"
        if not path.is_file():
            raise FileNotFoundError(f"clip {clip_id!r}: {path} is missing")
        videos[part] = read_mp4(path)
    text_path = next((root / d / f"{clip_id}.txt" for d in ("prompts", "prompts_rewrite")
                      if (root / d / f"{clip_id}.txt").is_file()), None)  # fmt: skip
    if text_path is None:
        raise FileNotFoundError(f"clip {clip_id!r}: no prompts/{clip_id}.txt or prompts_rewrite/{clip_id}.txt")
    actions = root / "actions" / f"{clip_id}.npz"
    masks = root / "masks" / f"{clip_id}.npz"
    physics = root / "meta" / f"{clip_id}.npz"
    meta = root / "meta" / f"{clip_id}.json"

    def arrays(p: Path) -> dict[str, np.ndarray]:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    return Clip(
        clip_id=clip_id, interaction=videos["videos"], static=videos["videos_static"], prompt=videos["videos_hands"],
        text=text_path.read_text().strip(),
        trajectory=HandTrajectory.load(actions) if actions.is_file() else None,
        masks=arrays(masks)["masks"] if masks.is_file() else None,
        physics=arrays(physics) if physics.is_file() else None,
        meta=json.loads(meta.read_text()) if meta.is_file() else None,
    )  # fmt: skip
