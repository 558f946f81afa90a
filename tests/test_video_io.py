from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dexsim._io import atomic_write
from dexsim.video import colorize_depth, contact_sheet, read_mp4, write_mp4


def test_mp4_round_trip_and_odd_sizes(tmp_path: Path) -> None:
    frames = np.zeros((4, 31, 45, 3), np.uint8)
    frames[:, 8:20, 10:30] = (200, 40, 40)
    path = write_mp4(tmp_path / "a.mp4", frames, fps=8)
    back = read_mp4(path)
    assert back.shape == (4, 32, 46, 3)
    assert np.abs(back[:, :31, :45].astype(int) - frames).mean() < 6


def test_video_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"`frames` must have shape \(T, H, W, 3\), got \(4, 4, 3\)"):
        write_mp4(tmp_path / "b.mp4", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="`frames` must be uint8, got float32"):
        write_mp4(tmp_path / "b.mp4", np.zeros((1, 4, 4, 3), np.float32))


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old")

    def boom(p: Path) -> None:
        p.write_text("half")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_contact_sheet_layout() -> None:
    a = np.full((5, 8, 10, 3), 50, np.uint8)
    b = np.full((5, 8, 10, 3), 200, np.uint8)
    sheet = contact_sheet([("a", a), ("b", b)], max_frames=3, label_height=14)
    assert sheet.shape == (2 * 22, 30, 3)
    assert (sheet[14:22, :, 0] == 50).all() and (sheet[36:44, :, 0] == 200).all()
    d = colorize_depth(np.linspace(1, 2, 16).reshape(4, 4))
    assert d.shape == (4, 4, 3) and d[0, 0].sum() > d[3, 3].sum()  # near is brighter
