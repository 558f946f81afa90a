"""Video and picture output: mp4 (imageio + ffmpeg) and PNG contact sheets (Pillow)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._io import atomic_path

__all__ = ["colorize_depth", "contact_sheet", "read_mp4", "write_mp4", "write_png"]


def _check_video(name: str, frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"`{name}` must have shape (T, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"`{name}` must be uint8, got {frames.dtype}")
    return frames


def write_mp4(path: str | os.PathLike[str], frames: np.ndarray, fps: float = 8.0) -> Path:
    """Write (T, H, W, 3) uint8 frames as an H.264 mp4 (yuv420p), atomically.

    Odd sizes are padded by one black pixel row/column (H.264 needs even sizes).
    """
    import imageio.v2 as imageio

    frames = _check_video("frames", frames)
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    with atomic_path(path) as tmp:
        writer = imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                                    pixelformat="yuv420p", macro_block_size=1)  # fmt: skip
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()
    return Path(path)


def read_mp4(path: str | os.PathLike[str]) -> np.ndarray:
    """All frames (T, H, W, 3) uint8 of a video file."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        return np.stack([np.asarray(f) for f in reader])
    finally:
        reader.close()


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 image as PNG, atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")
    return Path(path)


def colorize_depth(depth: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(…, H, W) depth -> (…, H, W, 3) uint8 (near = bright), 1st-99th percentile normalised."""
    d = np.asarray(depth, dtype=np.float64)
    mask = (d > 0) if valid is None else valid
    if not mask.any():
        return np.zeros((*d.shape, 3), np.uint8)
    lo, hi = np.percentile(d[mask], [1, 99])
    x = 1.0 - np.clip((d - lo) / max(hi - lo, 1e-9), 0, 1)
    x = np.where(mask, 0.15 + 0.85 * x, 0.0)
    # a simple blue-to-yellow ramp
    rgb = np.stack((x, x**0.8 * 0.9, (1 - x) * 0.6 * (x > 0) + 0.2 * x), axis=-1)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def contact_sheet(rows: Sequence[tuple[str, np.ndarray]], max_frames: int = 8, label_height: int = 14) -> np.ndarray:
    """A grid image: one row per labelled video (T, H, W, 3), ``max_frames`` evenly spread columns.

    Returns an (rows * (label_height + H), cols * W, 3) uint8 image.
    """
    from PIL import Image, ImageDraw

    if not rows:
        raise ValueError("`rows` must not be empty")
    videos = [_check_video(f"rows[{i}]", v) for i, (_, v) in enumerate(rows)]
    _, h, w, _ = videos[0].shape
    for i, v in enumerate(videos):
        if v.shape[1:3] != (h, w):
            raise ValueError(f"rows[{i}] frames are {v.shape[1:3]}, expected {(h, w)} like rows[0]")
    cols = min(max_frames, min(v.shape[0] for v in videos))
    idx = np.round(np.linspace(0, min(v.shape[0] for v in videos) - 1, cols)).astype(int)
    sheet = np.zeros((len(rows) * (h + label_height), cols * w, 3), np.uint8)
    for r, v in enumerate(videos):
        y = r * (h + label_height) + label_height
        for c, k in enumerate(idx):
            sheet[y : y + h, c * w : (c + 1) * w] = v[k]
    img = Image.fromarray(sheet)
    draw = ImageDraw.Draw(img)
    for r, (label, _) in enumerate(rows):
        draw.text((3, r * (h + label_height) + 1), label, fill=(255, 255, 255))
    return np.asarray(img)
