"""Importers: Project Aria MPS hand tracking, keypoint arrays, MANO parameter files.

Aria MPS (through projectaria-tools, the ``aria`` extra):

- ``hand_tracking_results.csv``: 21 landmarks per hand in the device frame, Aria's order
  (0-4 fingertips thumb..pinky, 5 wrist, 6-7 thumb intermediate/distal, 8-19 index, middle,
  ring, pinky proximal/intermediate/distal, 20 palm centre). Converted to the DESIGN.md order;
  the thumb CMC has no Aria landmark and is marked not valid (IK fills it). Both released
  versions of the file (with and without the palm/wrist normal columns) are read.
- ``wrist_and_palm_poses.csv``: wrists and palms only: a neutral (flat) hand is placed at the
  wrist, pointing at the palm, its back facing away from the palm normal; only the wrist joint is
  marked valid.
- ``closed_loop_trajectory.csv`` (optional): device poses, putting hands and camera in the world.
- ``online_calibration.jsonl`` (optional): the RGB camera's pose on the device and its lens; the
  camera is replaced by a rectified pinhole (projectaria-tools' linear calibration) of the
  same focal length, so prompts align with undistorted RGB frames.

Time stamps are device ``tracking_timestamp`` seconds. Files that must be joined in time are
checked for overlap; frames outside the other file's time range are marked not visible.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from .._deps import require
from ..geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quat, quat_to_matrix
from ..geometry.trajectory import interpolate_poses
from .model import HandModel
from .trajectory import HandTrajectory

__all__ = [
    "ARIA_TO_MANO",
    "MEDIAPIPE_TO_MANO",
    "import_aria",
    "import_keypoints",
    "import_mano_params",
    "nominal_aria_rgb_camera",
]

#: for each DESIGN.md joint, the Aria MPS landmark index (-1: Aria has none)
ARIA_TO_MANO = [5, 8, 9, 10, 11, 12, 13, 17, 18, 19, 14, 15, 16, -1, 6, 7, 0, 1, 2, 3, 4]
#: for each DESIGN.md joint, the MediaPipe / OpenPose hand keypoint index
MEDIAPIPE_TO_MANO = [0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3, 4, 8, 12, 16, 20]


def _check_file(path: str | os.PathLike[str] | None, what: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    if p.stat().st_size == 0:
        raise ValueError(f"{what} {p} is empty")
    return p


def _check_columns(path: Path, required: list[str]) -> None:
    """Refuse a CSV whose header lacks columns, naming them (projectaria-tools would crash or skip rows)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline().strip().split(",")
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path}: missing columns {missing[:6]}{' ...' if len(missing) > 6 else ''} "
                         f"({len(missing)} in all); is this an Aria MPS hand-tracking file?")  # fmt: skip


def _hand_tracking_columns() -> list[str]:
    cols = ["tracking_timestamp_us"]
    for side in ("left", "right"):
        cols.append(f"{side}_tracking_confidence")
        cols += [f"{a}_{side}_landmark_{i}_device" for i in range(21) for a in ("tx", "ty", "tz")]
    return cols


def _wrist_palm_columns() -> list[str]:
    cols = ["tracking_timestamp_us"]
    for side in ("left", "right"):
        cols.append(f"{side}_tracking_confidence")
        cols += [f"{a}_{side}_{p}_device" for p in ("wrist", "palm") for a in ("tx", "ty", "tz")]
    return cols


def _read_hand_tracking(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, None]:
    """(t (T,), joints (T, 2, 21, 3) device frame, visible (T, 2), joint_valid (T, 2, 21), no params)."""
    ht = require("projectaria_tools", "the Aria MPS importer").core.mps.hand_tracking
    _check_columns(path, _hand_tracking_columns())
    rows = ht.read_hand_tracking_results(str(path))
    if len(rows) == 0:
        raise ValueError(f"{path}: no hand-tracking rows")
    n = len(rows)
    t = np.array([r.tracking_timestamp.total_seconds() for r in rows])
    joints = np.zeros((n, 2, 21, 3), np.float32)
    visible = np.zeros((n, 2), bool)
    idx = np.array(ARIA_TO_MANO)
    for i, r in enumerate(rows):
        for h, one in enumerate((r.left_hand, r.right_hand)):
            if one is None or one.confidence <= 0:
                continue
            lm = np.asarray(one.landmark_positions_device, dtype=np.float64)
            if lm.shape != (21, 3) or not np.isfinite(lm).all():
                continue
            j = lm[np.maximum(idx, 0)]
            j[idx < 0] = 0.0
            joints[i, h] = j
            visible[i, h] = True
    valid = np.repeat(visible[..., None], 21, axis=-1)
    valid[..., idx < 0] = False
    return t, joints, visible, valid, None


def _frame_from(direction: np.ndarray, dorsal: np.ndarray) -> np.ndarray:
    d = direction / np.linalg.norm(direction)
    u = dorsal - (dorsal @ d) * d
    n = np.linalg.norm(u)
    if n < 1e-6:  # no usable normal: any vector orthogonal to the direction
        u = np.cross(d, [0.0, 0.0, 1.0] if abs(d[2]) < 0.9 else [1.0, 0.0, 0.0])
        n = np.linalg.norm(u)
    u /= n
    return np.stack((d, u, np.cross(d, u)), axis=1)


def _read_wrist_palm(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`_read_hand_tracking`, plus the neutral hands' parameters (T, 2, 51) (device frame)."""
    ht = require("projectaria_tools", "the Aria MPS importer").core.mps.hand_tracking
    _check_columns(path, _wrist_palm_columns())
    import warnings

    with warnings.catch_warnings():  # projectaria-tools announces the format's deprecation
        warnings.simplefilter("ignore")
        rows = ht.read_wrist_and_palm_poses(str(path))
    if len(rows) == 0:
        raise ValueError(f"{path}: no wrist-and-palm rows")
    n = len(rows)
    t = np.array([r.tracking_timestamp.total_seconds() for r in rows])
    joints = np.zeros((n, 2, 21, 3), np.float32)
    params = np.zeros((n, 2, 51), np.float32)
    visible = np.zeros((n, 2), bool)
    models = (HandModel("left", limits="off"), HandModel("right", limits="off"))
    rest = [m.rest_joints().double().numpy() for m in models]
    # the rest hand's wrist -> palm-centre direction (palm centre ~ middle of wrist and knuckles)
    for i, r in enumerate(rows):
        for h, one in enumerate((r.left_hand, r.right_hand)):
            if one is None or one.confidence <= 0:
                continue
            wrist = np.asarray(one.wrist_position_device, np.float64)
            palm = np.asarray(one.palm_position_device, np.float64)
            if not (np.isfinite(wrist).all() and np.isfinite(palm).all()) or np.linalg.norm(palm - wrist) < 1e-4:
                continue
            normals = one.wrist_and_palm_normal_device
            palm_n = np.asarray(normals.palm_normal_device, np.float64) if normals is not None else np.zeros(3)
            rest_palm = rest[h][[0, 1, 4, 7, 10]].mean(0)
            F_rest = _frame_from(rest_palm - rest[h][0], np.array([0.0, 1.0, 0.0]))
            F_now = _frame_from(palm - wrist, -palm_n)
            R = F_now @ F_rest.T
            joints[i, h] = (rest[h] @ R.T + wrist).astype(np.float32)
            params[i, h, :3] = matrix_to_axis_angle(torch.from_numpy(R)).numpy()
            params[i, h, 48:] = wrist  # the default hand's wrist is its origin
            visible[i, h] = True
    valid = np.zeros((n, 2, 21), bool)
    valid[..., 0] = visible
    return t, joints, visible, valid, params


def _pose7_from_sophus(T: object) -> np.ndarray:
    m = np.asarray(T.to_matrix(), dtype=np.float64)  # type: ignore[attr-defined]
    q = matrix_to_quat(torch.from_numpy(m[:3, :3])).numpy()
    return np.concatenate((m[:3, 3], q))


def _check_overlap(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray) -> None:
    if a[-1] < b[0] or b[-1] < a[0]:
        raise ValueError(
            f"the time stamps of {a_name} ({a[0]:.3f}-{a[-1]:.3f} s) and {b_name} ({b[0]:.3f}-{b[-1]:.3f} s) "
            "do not overlap: they come from different recordings"
        )


def nominal_aria_rgb_camera(width: int = 512, height: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """A default Aria RGB camera: its pose on the device (7,) ``[t, q]`` (a 39 degree downward
    tilt, read off a real Aria online calibration) and a pinhole K (3, 3) of the RGB lens' focal
    length (1220 px at 2880 px width) at ``width`` x ``height``."""
    tilt = math.radians(39.0)
    R = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(tilt), -math.sin(tilt)], [0.0, math.sin(tilt), math.cos(tilt)]])
    q = matrix_to_quat(torch.from_numpy(R)).numpy()
    f = 1220.0 * width / 2880.0
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    return np.concatenate((np.zeros(3), q)), K


def import_aria(
    hand_tracking: str | os.PathLike[str] | None = None,
    wrist_and_palm: str | os.PathLike[str] | None = None,
    trajectory: str | os.PathLike[str] | None = None,
    calibration: str | os.PathLike[str] | None = None,
    camera_label: str = "camera-rgb",
    width: int = 512,
    height: int = 512,
) -> HandTrajectory:
    """Import Aria MPS hand tracking into a :class:`HandTrajectory` (see the module docstring).

    Exactly one of ``hand_tracking`` and ``wrist_and_palm``. Without ``trajectory`` the world frame
    is the device frame. ``width`` x ``height`` is the size of the rectified pinhole camera.
    """
    ht_path = _check_file(hand_tracking, "hand-tracking CSV")
    wp_path = _check_file(wrist_and_palm, "wrist-and-palm CSV")
    traj_path = _check_file(trajectory, "closed-loop trajectory CSV")
    calib_path = _check_file(calibration, "online calibration JSONL")
    if (ht_path is None) == (wp_path is None):
        raise ValueError("give exactly one of `hand_tracking` and `wrist_and_palm`")
    if ht_path is not None:
        t, joints, visible, valid, params = _read_hand_tracking(ht_path)
        source = f"hand tracking {ht_path.name}"
    else:
        t, joints, visible, valid, params = _read_wrist_palm(wp_path)  # type: ignore[arg-type]
        source = f"wrist and palm poses {wp_path.name}"  # type: ignore[union-attr]
    keep = np.argsort(t, kind="stable")
    keep = keep[np.concatenate(([True], np.diff(t[keep]) > 0))]  # duplicate time stamps: keep the first
    t, joints, visible, valid = t[keep], joints[keep], visible[keep], valid[keep]
    params = None if params is None else params[keep]
    mps = None
    world_device = np.tile(np.array([0, 0, 0, 1.0, 0, 0, 0]), (len(t), 1))
    if traj_path is not None:
        mps = require("projectaria_tools", "the Aria MPS importer").core.mps
        poses = mps.read_closed_loop_trajectory(str(traj_path))
        if len(poses) == 0:
            raise ValueError(f"{traj_path}: no trajectory rows")
        tt = np.array([p.tracking_timestamp.total_seconds() for p in poses])
        _check_overlap(source, t, f"trajectory {traj_path.name}", tt)
        p7 = np.stack([_pose7_from_sophus(p.transform_world_device) for p in poses])
        o = np.argsort(tt, kind="stable")
        tt, p7 = tt[o], p7[o]
        keep_t = np.concatenate(([True], np.diff(tt) > 0))
        tt, p7 = tt[keep_t], p7[keep_t]
        inside = (t >= tt[0]) & (t <= tt[-1])
        visible &= inside[:, None]
        valid &= inside[:, None, None]
        world_device = interpolate_poses(torch.from_numpy(tt), torch.from_numpy(p7), torch.from_numpy(t)).numpy()
    Twd = _pose7_to_mat(world_device)  # (T, 4, 4)
    joints_w = np.einsum("tab,thjb->thja", Twd[:, :3, :3], joints.astype(np.float64)) + Twd[:, None, None, :3, 3]
    joints_w = np.where(visible[..., None, None], joints_w, 0.0).astype(np.float32)
    if params is not None:  # global orientation and translation into the world frame
        rot = quat_to_matrix(torch.from_numpy(world_device[:, None, 3:]).expand(-1, 2, 4)).numpy()
        go = matrix_to_axis_angle(
            torch.from_numpy(rot @ axis_angle_to_matrix(torch.from_numpy(params[..., :3].astype(np.float64))).numpy())
        ).numpy()
        tr = np.einsum("thab,thb->tha", rot, params[..., 48:].astype(np.float64)) + world_device[:, None, :3]
        params = np.concatenate((go, params[..., 3:48], tr), -1)
        params = np.where(visible[..., None], params, 0.0).astype(np.float32)
    camera, K = None, None
    if calib_path is not None:
        mps = mps or require("projectaria_tools", "the Aria MPS importer").core.mps
        calibration_mod = require("projectaria_tools", "the Aria MPS importer").core.calibration
        records = mps.read_online_calibration(str(calib_path))
        if len(records) == 0:
            raise ValueError(f"{calib_path}: no calibration records")
        tc = np.array([r.tracking_timestamp.total_seconds() for r in records])
        _check_overlap(source, t, f"calibration {calib_path.name}", tc)
        rec = records[int(np.argmin(np.abs(tc - np.clip(t.mean(), tc.min(), tc.max()))))]
        cam = rec.get_camera_calib(camera_label)
        if cam is None:
            labels = [c.get_label() for c in rec.camera_calibs]
            raise ValueError(f"{calib_path}: no camera {camera_label!r}; the file has {labels}")
        full_w = int(cam.get_image_size()[0])
        f = float(cam.get_focal_lengths()[0]) * width / full_w
        lin = calibration_mod.get_linear_camera_calibration(width, height, f, camera_label,
                                                           cam.get_transform_device_camera())  # fmt: skip
        fx, fy = (float(v) for v in lin.get_focal_lengths())
        cx, cy = (float(v) for v in lin.get_principal_point())
        # projectaria puts pixel centres at integers, dexsim at integer + 0.5
        K = np.array([[fx, 0, cx + 0.5], [0, fy, cy + 0.5], [0, 0, 1.0]])
        T_dc = np.asarray(lin.get_transform_device_camera().to_matrix(), np.float64)
        camera = _mat_to_pose7(Twd @ T_dc)
    elif traj_path is not None:
        dev_cam, K = nominal_aria_rgb_camera(width, height)
        camera = _mat_to_pose7(Twd @ _pose7_to_mat(dev_cam[None])[0])
    return HandTrajectory(
        t=t, joints=joints_w, visible=visible, joint_valid=valid, params=params,
        camera=None if camera is None else camera.astype(np.float32),
        K=None if K is None else K.astype(np.float32),
        width=None if K is None else int(width), height=None if K is None else int(height),
    )  # fmt: skip


def _pose7_to_mat(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    m = np.tile(np.eye(4), (len(p), 1, 1))
    m[:, :3, :3] = quat_to_matrix(torch.from_numpy(p[:, 3:])).numpy()
    m[:, :3, 3] = p[:, :3]
    return m


def _mat_to_pose7(m: np.ndarray) -> np.ndarray:
    q = matrix_to_quat(torch.from_numpy(np.asarray(m[:, :3, :3], np.float64))).numpy()
    return np.concatenate((m[:, :3, 3], q), axis=-1)


def import_keypoints(
    joints: np.ndarray, order: str = "mano", fps: float = 30.0, t: np.ndarray | None = None,
    visible: np.ndarray | None = None,
) -> HandTrajectory:  # fmt: skip
    """Keypoint arrays (T, 2, 21, 3) (hand axis: left, right) in ``order`` "mano" (DESIGN.md),
    "mediapipe" or "openpose" (the same 21-point layout). NaN keypoints are marked not valid; a
    hand with no finite keypoint in a frame is not visible."""
    arr = np.asarray(joints, np.float64)
    if arr.ndim != 4 or arr.shape[1:] != (2, 21, 3):
        raise ValueError(f"`joints` must have shape (T, 2, 21, 3), got {arr.shape}")
    if order not in ("mano", "mediapipe", "openpose"):
        raise ValueError(f"`order` must be 'mano', 'mediapipe' or 'openpose', got {order!r}")
    if order != "mano":
        arr = arr[:, :, MEDIAPIPE_TO_MANO]
    valid = np.isfinite(arr).all(-1)
    vis = valid.any(-1) if visible is None else np.asarray(visible, bool) & valid.any(-1)
    valid &= vis[..., None]
    times = np.arange(len(arr)) / fps if t is None else np.asarray(t, np.float64)
    clean = np.where(valid[..., None], arr, 0.0).astype(np.float32)
    return HandTrajectory(t=times, joints=clean, visible=vis, joint_valid=valid)


def import_mano_params(
    path: str | os.PathLike[str], mano_model_dir: str | os.PathLike[str], fps: float = 30.0,
    trust_pickle: bool = False,
) -> HandTrajectory:  # fmt: skip
    """MANO parameters per hand (ARCTIC-style: ``{"left"|"right": {"rot": (T, 3), "pose": (T, 45),
    "trans": (T, 3), "shape": (10,)}}``) -> a trajectory with joints from the real MANO model.

    ``.npz`` files use flat keys ``left_rot``, ``right_pose`` ...; ARCTIC's own ``.npy`` files are
    pickled dicts and are read only with ``trust_pickle=True`` (you trust that file). Poses must be
    relative to the flat hand (``flat_hand_mean``), as everywhere in dexsim.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such MANO parameter file: {p}")
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            data = {s: {k: z[f"{s}_{k}"] for k in ("rot", "pose", "trans", "shape") if f"{s}_{k}" in z.files}
                    for s in ("left", "right")}  # fmt: skip
    elif p.suffix == ".npy":
        if not trust_pickle:
            raise ValueError(f"{p} is a pickled dict; pass trust_pickle=True only if you trust this file")
        data = np.load(p, allow_pickle=True).item()
    else:
        raise ValueError(f"{p}: expected a .npz or an ARCTIC .npy MANO file")
    lengths = {len(np.asarray(v["rot"])) for v in data.values() if v and "rot" in v}
    if len(lengths) != 1:
        raise ValueError(f"{p}: both hands need 'rot', 'pose', 'trans' of one length, got lengths {lengths}")
    n = lengths.pop()
    joints = np.zeros((n, 2, 21, 3), np.float32)
    params = np.zeros((n, 2, 51), np.float32)
    betas = np.zeros((2, 10), np.float32)
    visible = np.zeros((n, 2), bool)
    for h, side in enumerate(("left", "right")):
        d = data.get(side)
        if not d or "rot" not in d:
            continue
        model = HandModel(side, mano_model_dir=mano_model_dir, limits="off")  # type: ignore[arg-type]
        go, hp, tr = (torch.as_tensor(np.asarray(d[k], np.float32)) for k in ("rot", "pose", "trans"))
        b = torch.as_tensor(np.asarray(d.get("shape", np.zeros(10)), np.float32)).reshape(-1)[:10]
        out = model(go, hp, tr, b, with_mesh=False)
        joints[:, h] = out.joints.numpy()
        params[:, h] = torch.cat((go, hp, tr), -1).numpy()
        betas[h] = b.numpy()
        visible[:, h] = True
    return HandTrajectory(t=np.arange(n) / fps, joints=joints, visible=visible, params=params, betas=betas)
