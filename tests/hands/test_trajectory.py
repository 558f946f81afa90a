from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dexsim.hands.trajectory import HandTrajectory


def make(n: int = 10, fps: float = 10.0) -> HandTrajectory:
    rng = np.random.default_rng(0)
    t = np.arange(n) / fps
    joints = rng.normal(size=(n, 2, 21, 3)).astype(np.float32) * 0.01
    joints += np.linspace(0, 1, n)[:, None, None, None].astype(np.float32)
    visible = np.ones((n, 2), bool)
    return HandTrajectory(t=t, joints=joints, visible=visible, joint_valid=np.ones((n, 2, 21), bool),
                          camera=np.tile([0, 0, 0, 1, 0, 0, 0], (n, 1)).astype(np.float32))  # fmt: skip


def test_npz_round_trip_readable_without_dexsim(tmp_path: Path) -> None:
    traj = make()
    path = traj.save(tmp_path / "t.npz")
    raw = np.load(path, allow_pickle=False)
    assert set(raw.files) == {"t", "joints", "visible", "joint_valid", "camera"}
    assert raw["joints"].shape == (10, 2, 21, 3) and raw["visible"].dtype == bool
    back = HandTrajectory.load(path)
    assert np.array_equal(back.joints, traj.joints) and np.array_equal(back.t, traj.t)


def test_resample_never_bridges_gaps() -> None:
    traj = make(20, fps=10.0)
    traj.visible[5:12, 1] = False  # a 0.7 s gap in the right hand
    out = traj.resample(30.0, max_gap=0.2)
    assert out.num_frames == 58
    assert np.allclose(np.diff(out.t), 1 / 30)
    gap = (out.t > 0.4 + 1e-9) & (out.t < 1.2 - 1e-9)
    assert not out.visible[gap, 1].any()
    assert out.visible[:, 0].all()
    assert (out.joints[~out.visible[:, 1], 1] == 0).all()
    # linear in between visible frames
    half = traj.resample(20.0)
    assert np.allclose(half.joints[1, 0], 0.5 * (traj.joints[0, 0] + traj.joints[1, 0]), atol=1e-5)


def test_resample_respects_time_spacing() -> None:
    traj = make(4)
    traj = HandTrajectory(t=np.array([0.0, 0.1, 1.0, 1.1]), joints=traj.joints, visible=traj.visible)
    out = traj.resample(10.0, max_gap=0.2)
    between = (out.t > 0.1 + 1e-9) & (out.t < 1.0 - 1e-9)
    assert between.any() and not out.visible[between].any()  # 0.9 s without samples is a gap


def test_chunks_and_smooth() -> None:
    traj = make(25)
    chunks = traj.chunks(8)
    assert [c.num_frames for c in chunks] == [8, 8, 8]
    assert np.array_equal(chunks[1].joints, traj.joints[8:16])
    assert len(traj.chunks(8, drop_last=False)) == 4
    traj.visible[10, 0] = False
    sm = traj.smooth(2.0)
    # noise shrinks, the invisible frame is untouched, runs do not leak across it
    assert np.std(np.diff(sm.joints[:10, 0], axis=0)) < np.std(np.diff(traj.joints[:10, 0], axis=0))
    assert np.array_equal(sm.joints[10, 0], traj.joints[10, 0])


def test_validation_errors(tmp_path: Path) -> None:
    traj = make(3)
    with pytest.raises(ValueError, match=r"`joints` must have shape \(3, 2, 21, 3\), got \(3, 2, 20, 3\)"):
        HandTrajectory(t=traj.t, joints=traj.joints[:, :, :20], visible=traj.visible)
    bad = traj.joints.copy()
    bad[1, 0, 4, 2] = np.nan
    with pytest.raises(ValueError, match=r"finite where visible, got .* at frame 1, hand 0, joint 4"):
        HandTrajectory(t=traj.t, joints=bad, visible=traj.visible)
    with pytest.raises(ValueError, match="strictly increasing"):
        HandTrajectory(t=np.array([0.0, 0.0, 1.0]), joints=traj.joints, visible=traj.visible)
    with pytest.raises(ValueError, match="`K`, `width` and `height` go together"):
        HandTrajectory(t=traj.t, joints=traj.joints, visible=traj.visible, K=np.eye(3))
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"not a readable \.npz"):
        HandTrajectory.load(tmp_path / "empty.npz")
    np.savez(tmp_path / "extra.npz", t=traj.t, joints=traj.joints, visible=traj.visible, cameras=np.zeros(3))
    with pytest.raises(ValueError, match=r"unknown keys \['cameras'\]"):
        HandTrajectory.load(tmp_path / "extra.npz")
