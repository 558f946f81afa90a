from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dexsim.data import DatagenConfig, check_dataset, clip_seed, generate, read_clip
from dexsim.data.generate import generate_clip

from ..conftest import shared_file

SMALL = dict(width=32, height=32, frames=4, density_scale=0.15)


def test_real_dwm_triplets_pass_the_check() -> None:
    root = shared_file("dwm_realworld")
    report = check_dataset(root)
    assert report["ok"] and report["clips"] == 2 and report["complete"] == 2
    assert report["frames"] == [49] and report["resolutions"] == [[720, 480]] and report["fps"] == [8.0]
    assert set(report["absent_parts"]) == {"actions", "masks", "meta"}
    clip = read_clip(root, "00013")
    assert clip.interaction.shape == clip.static.shape == clip.prompt.shape == (49, 480, 720, 3)
    assert clip.text.startswith("I approach") and clip.trajectory is None and clip.meta is None


def test_generated_dataset_is_complete_deterministic_and_split(tmp_path: Path) -> None:
    a = generate(DatagenConfig(out=str(tmp_path / "a"), clips=2, seed=5, **SMALL), progress=False)
    assert a["clips"] == 2 and a["generated"] == 2
    report = check_dataset(tmp_path / "a")
    assert report["ok"] and report["frames"] == [4] and report["resolutions"] == [[32, 32]]
    # the same seed makes the same clips
    generate(DatagenConfig(out=str(tmp_path / "b"), clips=1, seed=5, **SMALL), progress=False)
    for part in ("actions/train_000000.npz", "masks/train_000000.npz"):
        x, y = np.load(tmp_path / "a" / part), np.load(tmp_path / "b" / part)
        assert all(np.array_equal(x[k], y[k]) for k in x.files)
    meta = json.loads((tmp_path / "a/meta/train_000000.json").read_text())
    assert meta["text"] == (tmp_path / "a/prompts/train_000000.txt").read_text().strip()
    clip = read_clip(tmp_path / "a", "train_000000")
    assert clip.trajectory.num_frames == 4 and clip.masks.shape == (4, 32, 32) and clip.meta == meta
    assert clip.physics["object_poses"].shape[:2] == (4, len(meta["objects"]) - ("drawer" in meta["objects"]))
    # a resumed run makes nothing new
    again = generate(DatagenConfig(out=str(tmp_path / "a"), clips=2, seed=5, **SMALL), progress=False)
    assert again["generated"] == 0 and again["clips"] == 2
    # held-out clips come from other seeds
    assert {clip_seed(5, "train", i) for i in range(100)}.isdisjoint({clip_seed(5, "heldout", i) for i in range(100)})


def test_interrupted_clip_is_redone(tmp_path: Path) -> None:
    cfg = DatagenConfig(out=str(tmp_path), clips=1, seed=1, **SMALL)
    generate_clip(cfg, 0)
    good = np.load(tmp_path / "actions/train_000000.npz")["joints"]
    (tmp_path / "meta/train_000000.json").unlink()  # as if killed before the last file
    (tmp_path / "actions/train_000000.npz").write_bytes(b"half")
    assert not check_dataset(tmp_path)["ok"]
    assert generate(cfg, progress=False)["generated"] == 1
    assert np.array_equal(np.load(tmp_path / "actions/train_000000.npz")["joints"], good)
    assert check_dataset(tmp_path)["ok"]


def test_check_reports_broken_clips(tmp_path: Path) -> None:
    generate(DatagenConfig(out=str(tmp_path), clips=2, seed=2, **SMALL), progress=False)
    (tmp_path / "videos_static/train_000001.mp4").unlink()
    shutil.copy(tmp_path / "videos_hands/train_000000.mp4", tmp_path / "videos_hands/train_000001.mp4")
    from dexsim.video import read_mp4, write_mp4

    write_mp4(tmp_path / "videos_hands/train_000000.mp4", read_mp4(tmp_path / "videos_hands/train_000000.mp4")[:3])
    report = check_dataset(tmp_path)
    assert not report["ok"] and report["complete"] == 0
    text = " ".join(report["errors"])
    assert "videos_static/train_000001.mp4 is missing" in text and "disagree" in text


def _datagen(out: Path, clips: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "dexsim", "datagen", "--out", str(out), "--clips", str(clips), "--seed", "3",
            "--width", "32", "--height", "32", "--frames", "4"]  # fmt: skip
    return subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_killed_run_resumes_to_exactly_n_clips(tmp_path: Path) -> None:
    proc = _datagen(tmp_path, 5)
    deadline = time.time() + 240
    while not list((tmp_path / "meta").glob("*.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _datagen(tmp_path, 5).wait(timeout=600) == 0
    report = check_dataset(tmp_path)
    assert report["ok"] and report["clips"] == 5 and report["complete"] == 5


@pytest.mark.slow
def test_two_ranks_share_the_work(tmp_path: Path) -> None:
    procs = [_datagen(tmp_path, 4, {"RANK": str(r), "WORLD_SIZE": "2"}) for r in range(2)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    report = check_dataset(tmp_path)
    assert report["ok"] and report["clips"] == 4
    ranks = {json.loads(p.read_text())["clip_seed"] for p in (tmp_path / "meta").glob("*.json")}
    assert len(ranks) == 4
