from __future__ import annotations

import csv
import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

from dexsim.hands.importers import MEDIAPIPE_TO_MANO, import_aria, import_keypoints
from dexsim.hands.skeleton import FINGER_CHAINS

from ..conftest import shared_file

HT = "aria_mps_sample/hand_tracking/hand_tracking_results.csv"
WP = "aria_mps_sample/hand_tracking/wrist_and_palm_poses.csv"
TRAJ = "aria_mps_sample/trajectory/closed_loop_trajectory.csv"
CALIB = "aria_mps_sample/trajectory/online_calibration.jsonl"


def confidences(path: Path) -> np.ndarray:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return np.array([[float(r["left_tracking_confidence"]), float(r["right_tracking_confidence"])] for r in rows])


needs_aria = pytest.mark.skipif(
    importlib.util.find_spec("projectaria_tools") is None, reason="the Aria importer needs the `aria` extra"
)


@needs_aria
def test_real_hand_tracking_imports_with_plausible_bones() -> None:
    path = shared_file(HT)
    traj = import_aria(hand_tracking=path)
    conf = confidences(path)
    assert traj.num_frames == len(conf) == 8
    assert np.array_equal(traj.visible, conf > 0)  # visibility matches the confidence column
    assert np.isfinite(traj.joints).all()
    assert not traj.joint_valid[..., 13].any()  # Aria has no thumb CMC
    for f, h in zip(*np.nonzero(traj.visible), strict=True):
        for chain in FINGER_CHAINS.values():
            pts = [j for j in chain[1:] if traj.joint_valid[f, h, j]]
            for a, b in itertools.pairwise(pts):
                seg = np.linalg.norm(traj.joints[f, h, b] - traj.joints[f, h, a])
                assert 0.01 <= seg <= 0.07, (f, h, a, b, seg)
    # the right-hand wrist of row 2 equals the CSV's landmark 5 (Aria's wrist)
    with open(path) as f:
        row = list(csv.DictReader(f))[1]
    wrist = [float(row[f"t{a}_right_landmark_5_device"]) for a in "xyz"]
    assert np.allclose(traj.joints[1, 1, 0], wrist, atol=1e-6)


@needs_aria
def test_csv_without_normal_columns_reads_the_same(tmp_path: Path) -> None:
    path = shared_file(HT)
    with open(path) as f:
        rows = list(csv.reader(f))
    keep = [i for i, name in enumerate(rows[0]) if not name.startswith(("nx_", "ny_", "nz_"))]
    assert len(keep) == len(rows[0]) - 12
    old = tmp_path / "old.csv"
    with open(old, "w", newline="") as f:
        csv.writer(f).writerows([[r[i] for i in keep] for r in rows])
    a, b = import_aria(hand_tracking=path), import_aria(hand_tracking=old)
    assert np.array_equal(a.joints, b.joints) and np.array_equal(a.visible, b.visible)


@needs_aria
def test_time_ranges_must_overlap() -> None:
    with pytest.raises(ValueError, match=r"1762\.609-1817\.200 s.*149\.203-160\.598 s.*do not overlap"):
        import_aria(hand_tracking=shared_file(HT), trajectory=shared_file(TRAJ))


@needs_aria
def test_wrist_and_palm_lands_in_the_world_frame() -> None:
    traj = import_aria(wrist_and_palm=shared_file(WP), trajectory=shared_file(TRAJ), calibration=shared_file(CALIB))
    vis = np.nonzero(traj.visible[:, 1])[0]
    assert len(vis) == 6 and not traj.visible[:, 0].any()
    assert traj.joint_valid[vis, 1, 0].all() and not traj.joint_valid[vis, 1, 1:].any()
    # the wrist is within arm's reach of the camera (the device) in the world frame
    cam = traj.camera[vis, :3]
    d = np.linalg.norm(traj.joints[vis, 1, 0] - cam, axis=-1)
    assert (d > 0.05).all() and (d < 0.8).all()
    # and it is not the device-frame position (the trajectory moved it)
    with open(shared_file(WP)) as f:
        row = next(r for r in csv.DictReader(f) if float(r["right_tracking_confidence"]) > 0)
    device = np.array([float(row[f"t{a}_right_wrist_device"]) for a in "xyz"])
    assert np.linalg.norm(traj.joints[vis[0], 1, 0] - device) > 0.1
    assert traj.K is not None and traj.width == 512 and traj.params is not None


@needs_aria
def test_bad_files_get_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        import_aria(hand_tracking=tmp_path / "empty.csv")
    (tmp_path / "cols.csv").write_text("tracking_timestamp_us,left_tracking_confidence\n1,0.5\n")
    with pytest.raises(ValueError, match=r"missing columns .*tx_left_landmark_0_device"):
        import_aria(hand_tracking=tmp_path / "cols.csv")
    with pytest.raises(FileNotFoundError):
        import_aria(hand_tracking=tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="exactly one of"):
        import_aria()


def test_keypoint_orders() -> None:
    rng = np.random.default_rng(0)
    mano = rng.normal(size=(3, 2, 21, 3))
    mp = np.empty_like(mano)
    mp[:, :, MEDIAPIPE_TO_MANO] = mano
    a = import_keypoints(mano, "mano")
    b = import_keypoints(mp, "mediapipe")
    assert np.allclose(a.joints, b.joints, atol=1e-6)
    # MediaPipe: 4 = thumb tip, 8 = index tip -> DESIGN.md 16, 17
    assert np.allclose(b.joints[:, :, 16], mp[:, :, 4]) and np.allclose(b.joints[:, :, 17], mp[:, :, 8])
    nan = mano.copy()
    nan[1, 0] = np.nan
    nan[2, 1, 5] = np.nan
    c = import_keypoints(nan)
    assert not c.visible[1, 0] and c.visible[2, 1] and not c.joint_valid[2, 1, 5]
    with pytest.raises(ValueError, match="`order` must be"):
        import_keypoints(mano, "coco")


def test_mano_parameter_files_refuse_untrusted_pickles(tmp_path: Path) -> None:
    from dexsim.hands.importers import import_mano_params

    np.save(tmp_path / "seq.mano.npy", np.array({"right": {"rot": np.zeros((2, 3))}}, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled dict; pass trust_pickle=True"):
        import_mano_params(tmp_path / "seq.mano.npy", mano_model_dir=tmp_path)
    (tmp_path / "x.txt").write_text("no")
    with pytest.raises(ValueError, match=r"expected a \.npz or an ARCTIC \.npy"):
        import_mano_params(tmp_path / "x.txt", mano_model_dir=tmp_path)
