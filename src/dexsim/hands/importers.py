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

Every row is checked before projectaria-tools reads the file (it stops at the first bad row and
reads an empty field as 0). A CSV row must have the header's column count, an integer in each
``*_timestamp_us`` / ``*_timestamp_ns`` column and a finite number in every other column
(``graph_uid`` is text); trajectory quaternions must be unit (within 1e-3). A calibration line must
be a JSON object with an integer ``tracking_timestamp_us`` and lists ``CameraCalibrations`` and
``ImuCalibrations`` that projectaria-tools can read. A row that fails, or repeats the previous
row's time stamp, is skipped and recorded in the file's :class:`ImportReport` (line number,
reason). A file is refused (``ValueError`` naming it, the line and the reason) when a required
column is missing, when its time stamps go backwards, when no row is left, or when more than
``max_skipped`` (default 5%) of its rows were skipped. Blank lines hold no data: they are ignored
and noted. Hands the format marks as not tracked (confidence <= 0) are no error: those rows are
kept with the hand not visible, and counted in the report's notes.
"""

from __future__ import annotations

import bisect
import datetime
import json
import math
import os
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._deps import require
from ..geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quat, quat_to_matrix
from ..geometry.trajectory import interpolate_poses
from .model import HandModel
from .trajectory import HandTrajectory

__all__ = [
    "ARIA_TO_MANO",
    "MAX_SKIPPED",
    "MEDIAPIPE_TO_MANO",
    "ImportReport",
    "import_aria",
    "import_aria_with_report",
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


#: the largest fraction of a file's rows that may be skipped before the file is refused
MAX_SKIPPED = 0.05
_US = datetime.timedelta(microseconds=1)
_INT = r"\s*[+-]?\d+\s*"
_FLOAT = r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*"
_TEXT_COLUMNS = frozenset({"graph_uid"})
_QUAT_TOLERANCE = 1e-3


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


@dataclass
class ImportReport:
    """What an importer did with one file: data rows read, rows skipped as ``(line number, reason,
    detail)`` in file order, and notes counting kept rows with a condition the format marks
    (a hand not tracked) or that dexsim handles (frames outside the trajectory)."""

    path: Path
    rows_read: int = 0
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def rows_skipped(self) -> int:
        return len(self.skipped)

    @property
    def rows_kept(self) -> int:
        return self.rows_read - len(self.skipped)

    @property
    def reasons(self) -> dict[str, int]:
        """The number of skipped rows per reason."""
        return dict(Counter(reason for _, reason, _ in self.skipped))

    def skip(self, line: int, reason: str, detail: str) -> None:
        bisect.insort(self.skipped, (line, reason, detail))

    def note(self, what: str, count: int = 1) -> None:
        if count:
            self.notes[what] = self.notes.get(what, 0) + count

    def summary(self) -> str:
        """One line: rows read, skipped and why (with the first skipped line), and the notes."""
        text = f"{self.path.name}: {self.rows_read} rows read, {self.rows_skipped} skipped"
        if self.skipped:
            line, _, detail = self.skipped[0]
            text += f" ({_counts(self.reasons)}; the first at line {line}: {detail})"
        return text + (f"; {_counts(self.notes)}" if self.notes else "")

    def to_dict(self, listed: int = 10) -> dict[str, Any]:
        """A JSON-ready summary; ``skipped`` lists the first ``listed`` skipped rows."""
        return {
            "file": str(self.path), "rows_read": self.rows_read, "rows_kept": self.rows_kept,
            "rows_skipped": self.rows_skipped, "reasons": self.reasons, "notes": dict(self.notes),
            "skipped": [{"line": n, "reason": r, "detail": d} for n, r, d in self.skipped[:listed]],
        }  # fmt: skip

    def refuse_if_lossy(self, what: str, max_skipped: float) -> None:
        """Raise ``ValueError`` when no row is left or more than ``max_skipped`` of the rows were skipped."""
        if self.rows_read == 0:
            raise ValueError(f"{self.path}: no {what} rows")
        if self.rows_kept == 0 or self.rows_skipped > max_skipped * self.rows_read:
            line, _, detail = self.skipped[0]
            raise ValueError(f"{self.path}: {self.rows_skipped} of {self.rows_read} {what} rows are unreadable "
                             f"({_counts(self.reasons)}), more than the {100 * max_skipped:g}% dexsim skips; "
                             f"the first is line {line}: {detail}")  # fmt: skip


class _BadRow(Exception):
    """A row to skip: ``reason`` (a short kind, counted) and ``detail`` (what is wrong)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class _Rows:
    """The rows of a checked file that are kept: header, text, line numbers and time stamps (us)."""

    header: str | None
    lines: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)
    complete: bool = False  # every line of the file is kept: projectaria-tools reads the file itself

    def take(self, path: Path, number: int, line: str, stamp: int, report: ImportReport) -> None:
        """Keep a row, or skip it when it repeats the last time stamp; refuse a time stamp going backwards."""
        if self.stamps and stamp == self.stamps[-1]:
            report.skip(number, "repeated time stamp", f"tracking_timestamp_us {stamp} repeats line {self.numbers[-1]}")
        elif self.stamps and stamp < self.stamps[-1]:
            raise ValueError(f"{path}: line {number}: tracking_timestamp_us {stamp} is earlier than "
                             f"{self.stamps[-1]} on line {self.numbers[-1]}: the rows are out of order")  # fmt: skip
        else:
            self.lines.append(line)
            self.numbers.append(number)
            self.stamps.append(stamp)


def _file_lines(path: Path) -> list[str]:
    """The lines of a text file without line ends (a byte that is not UTF-8 fails the row's checks)."""
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    return [ln.removesuffix("\r") for ln in lines]


def _check_columns(path: Path, header: list[str], required: list[str], what: str) -> None:
    """Refuse a CSV header that lacks required columns or repeats a column, naming them."""
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path}: missing columns {missing[:6]}{' ...' if len(missing) > 6 else ''} "
                         f"({len(missing)} in all); is this an Aria MPS {what} file?")  # fmt: skip
    repeated = sorted(c for c, k in Counter(header).items() if k > 1)
    if repeated:
        raise ValueError(f"{path}: the header repeats columns {repeated[:6]}")


def _column_pattern(name: str) -> str:
    if name in _TEXT_COLUMNS:
        return r"[^,]*"
    return _INT if name.endswith(("_timestamp_us", "_timestamp_ns")) else _FLOAT


def _syntax_problem(line: str, header: list[str]) -> _BadRow:
    """Why a CSV row does not match its header."""
    fields = line.split(",")
    if len(fields) != len(header):
        return _BadRow("column count", f"{len(fields)} columns where the header has {len(header)}")
    for name, value in zip(header, fields, strict=True):
        pattern = _column_pattern(name)
        if not re.fullmatch(pattern, value):
            kind = "an integer" if pattern == _INT else "a number"
            return _BadRow("non-numeric value", f"{name} = {value!r} is not {kind}")
    return _BadRow("malformed row", "the row does not match the header")


def _value_problems(values: np.ndarray, names: list[str], quaternion: list[str]) -> dict[int, _BadRow]:
    """Rows (index into ``values``) holding a number that is not finite or a quaternion that is not unit."""
    problems: dict[int, _BadRow] = {}
    finite = np.isfinite(values)
    for i in np.nonzero(~finite.all(1))[0]:
        j = int(np.argmin(finite[i]))
        problems[int(i)] = _BadRow("non-finite value", f"{names[j]} = {values[i, j]} is not finite")
    if quaternion:
        norm = np.linalg.norm(values[:, [names.index(c) for c in quaternion]], axis=1)
        for i in np.nonzero(np.abs(norm - 1) > _QUAT_TOLERANCE)[0]:
            problems.setdefault(int(i), _BadRow("not a unit quaternion", f"{quaternion} has norm {norm[i]:.6g}"))
    return problems


def _scan_csv(
    path: Path, required: list[str], what: str, report: ImportReport, max_skipped: float, quaternion: Sequence[str] = ()
) -> _Rows:  # fmt: skip
    """Check every row of an Aria CSV (see the module docstring): the kept rows; skipped ones go to ``report``."""
    lines = _file_lines(path)
    header = [c.strip() for c in lines[0].split(",")]
    _check_columns(path, header, required, what)
    pattern = re.compile(",".join(f"(?:{_column_pattern(c)})" for c in header))
    candidates: list[tuple[int, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            report.note("blank lines (ignored)")
            continue
        report.rows_read += 1
        if pattern.fullmatch(line) is None:
            bad = _syntax_problem(line, header)
            report.skip(number, bad.reason, bad.detail)
        else:
            candidates.append((number, line))
    numeric = [i for i, c in enumerate(header) if c not in _TEXT_COLUMNS]
    values = np.zeros((0, len(numeric)))
    if candidates:
        values = np.loadtxt([ln for _, ln in candidates], delimiter=",", usecols=numeric, ndmin=2, comments=None)
    problems = _value_problems(values, [header[i] for i in numeric], list(quaternion))
    rows = _Rows(lines[0])
    stamp_col = header.index("tracking_timestamp_us")
    for k, (number, line) in enumerate(candidates):
        if k in problems:
            report.skip(number, problems[k].reason, problems[k].detail)
        else:
            rows.take(path, number, line, int(line.split(",")[stamp_col]), report)
    report.refuse_if_lossy(what, max_skipped)
    rows.complete = len(rows.lines) == len(lines) - 1
    return rows


def _record_stamp(line: str) -> int:
    """The time stamp of one online-calibration JSON line, or :class:`_BadRow`."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadRow("invalid JSON", f"{exc.msg} at column {exc.colno}") from None
    if not isinstance(record, dict):
        raise _BadRow("not a calibration record", f"a JSON {type(record).__name__}, not an object")
    stamp = record.get("tracking_timestamp_us")
    if type(stamp) is not int:
        raise _BadRow("not a calibration record", f"tracking_timestamp_us is {stamp!r}, not an integer")
    for key in ("CameraCalibrations", "ImuCalibrations"):
        if not isinstance(record.get(key), list) or not all(isinstance(c, dict) for c in record[key]):
            raise _BadRow("not a calibration record", f"{key} is missing or not a list of objects")
    return stamp


def _scan_jsonl(path: Path, report: ImportReport) -> _Rows:
    """Check every line of an online-calibration file: the kept lines; skipped ones go to ``report``."""
    lines = _file_lines(path)
    rows = _Rows(None)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            report.note("blank lines (ignored)")
            continue
        report.rows_read += 1
        try:
            stamp = _record_stamp(line)
        except _BadRow as bad:
            report.skip(number, bad.reason, bad.detail)
            continue
        rows.take(path, number, line, stamp, report)
    rows.complete = len(rows.lines) == len(lines)
    return rows


def _aria_read(path: Path, rows: _Rows, reader: Callable[[str], Any]) -> list[Any]:
    """``reader`` (projectaria-tools) on the kept rows: the file itself when all are kept, else a copy
    holding only them. Refuses a result whose time stamps are not those of the kept rows."""
    if rows.complete:
        records = list(reader(str(path)))
    else:
        with tempfile.TemporaryDirectory(prefix="dexsim-aria-") as tmp:
            copy = Path(tmp) / path.name
            head = [] if rows.header is None else [rows.header]
            copy.write_text("\n".join([*head, *rows.lines]) + "\n", encoding="utf-8")
            records = list(reader(str(copy)))
    if [r.tracking_timestamp // _US for r in records] != rows.stamps:
        raise ValueError(f"{path}: projectaria-tools read {len(records)} rows where dexsim's checks kept "
                         f"{len(rows.stamps)} (or read other time stamps): is this an Aria MPS file?")  # fmt: skip
    return records


def _read_calibration(path: Path, report: ImportReport, max_skipped: float) -> list[Any]:
    """The online-calibration records of ``path``; records projectaria-tools cannot read are skipped."""
    read = require("projectaria_tools", "the Aria MPS importer").core.mps.read_online_calibration
    rows = _scan_jsonl(path, report)
    report.refuse_if_lossy("calibration", max_skipped)
    try:
        return _aria_read(path, rows, read)
    except RuntimeError:  # projectaria-tools refuses the whole file: find the records it cannot read
        pass
    readable = _Rows(None)
    for number, line, stamp in zip(rows.numbers, rows.lines, rows.stamps, strict=True):
        try:
            _aria_read(path, _Rows(None, [line], [number], [stamp]), read)
        except RuntimeError as exc:
            report.skip(number, "unreadable record", f"projectaria-tools: {str(exc)[:160]}")
            continue
        readable.take(path, number, line, stamp, report)
    report.refuse_if_lossy("calibration", max_skipped)
    return _aria_read(path, readable, read)


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


_TRAJECTORY_QUAT = ["qw_world_device", "qx_world_device", "qy_world_device", "qz_world_device"]


def _trajectory_columns() -> list[str]:
    return ["tracking_timestamp_us", "tx_world_device", "ty_world_device", "tz_world_device", *_TRAJECTORY_QUAT]


def _read_hand_tracking(
    path: Path, report: ImportReport, max_skipped: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, None]:
    """(t (T,), joints (T, 2, 21, 3) device frame, visible (T, 2), joint_valid (T, 2, 21), no params)."""
    ht = require("projectaria_tools", "the Aria MPS importer").core.mps.hand_tracking
    checked = _scan_csv(path, _hand_tracking_columns(), "hand-tracking", report, max_skipped)
    rows = _aria_read(path, checked, ht.read_hand_tracking_results)
    n = len(rows)
    t = np.array([r.tracking_timestamp.total_seconds() for r in rows])
    joints = np.zeros((n, 2, 21, 3), np.float32)
    visible = np.zeros((n, 2), bool)
    idx = np.array(ARIA_TO_MANO)
    for i, r in enumerate(rows):
        for h, one in enumerate((r.left_hand, r.right_hand)):
            if one is None or one.confidence <= 0:
                report.note(f"{('left', 'right')[h]} hand not tracked")
                continue
            lm = np.asarray(one.landmark_positions_device, dtype=np.float64)
            if lm.shape != (21, 3) or not np.isfinite(lm).all():  # the row checks make this impossible
                raise ValueError(f"{path}: line {checked.numbers[i]}: unusable landmarks {lm.shape}")
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


def _read_wrist_palm(
    path: Path, report: ImportReport, max_skipped: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`_read_hand_tracking`, plus the neutral hands' parameters (T, 2, 51) (device frame)."""
    ht = require("projectaria_tools", "the Aria MPS importer").core.mps.hand_tracking
    checked = _scan_csv(path, _wrist_palm_columns(), "wrist-and-palm", report, max_skipped)
    with warnings.catch_warnings():  # projectaria-tools announces the format's deprecation
        warnings.simplefilter("ignore")
        rows = _aria_read(path, checked, ht.read_wrist_and_palm_poses)
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
            side = ("left", "right")[h]
            if one is None or one.confidence <= 0:
                report.note(f"{side} hand not tracked")
                continue
            wrist = np.asarray(one.wrist_position_device, np.float64)
            palm = np.asarray(one.palm_position_device, np.float64)
            if np.linalg.norm(palm - wrist) < 1e-4:  # no direction to place the hand along
                report.note(f"{side} hand tracked with wrist = palm (not visible)")
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
    max_skipped: float = MAX_SKIPPED,
) -> HandTrajectory:
    """Import Aria MPS hand tracking into a :class:`HandTrajectory` (see the module docstring).

    As :func:`import_aria_with_report`, without the reports: skipped rows are announced by a warning.
    """
    traj, reports = import_aria_with_report(hand_tracking, wrist_and_palm, trajectory, calibration,
                                            camera_label, width, height, max_skipped)  # fmt: skip
    for report in reports:
        if report.rows_skipped:
            warnings.warn(f"skipped rows: {report.summary()}", stacklevel=2)
    return traj


def import_aria_with_report(
    hand_tracking: str | os.PathLike[str] | None = None,
    wrist_and_palm: str | os.PathLike[str] | None = None,
    trajectory: str | os.PathLike[str] | None = None,
    calibration: str | os.PathLike[str] | None = None,
    camera_label: str = "camera-rgb",
    width: int = 512,
    height: int = 512,
    max_skipped: float = MAX_SKIPPED,
) -> tuple[HandTrajectory, list[ImportReport]]:
    """Import Aria MPS hand tracking into a :class:`HandTrajectory` (see the module docstring), with
    an :class:`ImportReport` per file read (hands, then trajectory and calibration when given).

    Exactly one of ``hand_tracking`` and ``wrist_and_palm``. Without ``trajectory`` the world frame
    is the device frame. ``width`` x ``height`` is the size of the rectified pinhole camera. A file
    more than ``max_skipped`` (a fraction) of whose rows are unreadable is refused.
    """
    if not 0.0 <= max_skipped <= 1.0:
        raise ValueError(f"`max_skipped` must be a fraction in [0, 1], got {max_skipped!r}")
    ht_path = _check_file(hand_tracking, "hand-tracking CSV")
    wp_path = _check_file(wrist_and_palm, "wrist-and-palm CSV")
    traj_path = _check_file(trajectory, "closed-loop trajectory CSV")
    calib_path = _check_file(calibration, "online calibration JSONL")
    if (ht_path is None) == (wp_path is None):
        raise ValueError("give exactly one of `hand_tracking` and `wrist_and_palm`")
    hands_path: Path = ht_path if ht_path is not None else wp_path  # type: ignore[assignment]
    report = ImportReport(hands_path)
    reports = [report]
    if ht_path is not None:
        t, joints, visible, valid, params = _read_hand_tracking(ht_path, report, max_skipped)
        source = f"hand tracking {ht_path.name}"
    else:
        t, joints, visible, valid, params = _read_wrist_palm(hands_path, report, max_skipped)
        source = f"wrist and palm poses {hands_path.name}"
    world_device = np.tile(np.array([0, 0, 0, 1.0, 0, 0, 0]), (len(t), 1))
    if traj_path is not None:
        mps = require("projectaria_tools", "the Aria MPS importer").core.mps
        reports.append(ImportReport(traj_path))
        checked = _scan_csv(traj_path, _trajectory_columns(), "closed-loop trajectory", reports[-1], max_skipped,
                            quaternion=_TRAJECTORY_QUAT)  # fmt: skip
        poses = _aria_read(traj_path, checked, mps.read_closed_loop_trajectory)
        tt = np.array([p.tracking_timestamp.total_seconds() for p in poses])
        _check_overlap(source, t, f"trajectory {traj_path.name}", tt)
        p7 = np.stack([_pose7_from_sophus(p.transform_world_device) for p in poses])
        inside = (t >= tt[0]) & (t <= tt[-1])
        report.note("frames outside the trajectory's time range (not visible)", int((~inside).sum()))
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
        calibration_mod = require("projectaria_tools", "the Aria MPS importer").core.calibration
        reports.append(ImportReport(calib_path))
        records = _read_calibration(calib_path, reports[-1], max_skipped)
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
    traj = HandTrajectory(
        t=t, joints=joints_w, visible=visible, joint_valid=valid, params=params,
        camera=None if camera is None else camera.astype(np.float32),
        K=None if K is None else K.astype(np.float32),
        width=None if K is None else int(width), height=None if K is None else int(height),
    )  # fmt: skip
    return traj, reports


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
