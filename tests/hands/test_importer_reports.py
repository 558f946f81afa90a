"""Aria importers skip bad rows and say so (ImportReport), and refuse files that lose too much."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dexsim.hands.importers import MAX_SKIPPED, import_aria, import_aria_with_report

from ..conftest import shared_file

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("projectaria_tools") is None, reason="the Aria importer needs the `aria` extra"
)

HT = "aria_mps_sample/hand_tracking/hand_tracking_results.csv"
WP = "aria_mps_sample/hand_tracking/wrist_and_palm_poses.csv"
TRAJ = "aria_mps_sample/trajectory/closed_loop_trajectory.csv"
CALIB = "aria_mps_sample/trajectory/online_calibration.jsonl"
EXAMPLES = int(os.environ.get("DEXSIM_FUZZ_EXAMPLES", "40"))

HEADER = ["tracking_timestamp_us"]
for _side in ("left", "right"):
    HEADER += [f"{_side}_tracking_confidence"]
    HEADER += [f"{a}_{_side}_landmark_{i}_device" for i in range(21) for a in ("tx", "ty", "tz")]
#: corruption -> the reason the report gives
CORRUPTIONS = {"drop": "column count", "extra": "column count", "text": "non-numeric value",
               "overflow": "non-finite value", "repeat": "repeated time stamp"}  # fmt: skip
BAD_TEXT = ["abc", "", "nan", "inf", "-inf", "0x10", "1_0", "1.2.3", "--1", "1e", "\ufffd"]


def hand_rows(n: int, seed: int) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """``n`` valid hand-tracking rows (fields), their time stamps (us) and confidences (n, 2)."""
    rng = np.random.default_rng(seed)
    stamps = 1_000_000 + np.cumsum(rng.integers(1, 200_000, n))
    conf = rng.choice([-1.0, 0.0, 0.25, 0.999], size=(n, 2))
    rows = []
    for i in range(n):
        row = [str(stamps[i])]
        for h in range(2):
            lm = rng.uniform(-0.5, 0.5, 63) if conf[i, h] > 0 else np.zeros(63)
            row += [f"{conf[i, h]:g}", *(f"{v:.6f}" for v in lm)]
        rows.append(row)
    return rows, stamps, conf


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return path


def corrupt(row: list[str], kind: str, previous_stamp: str, pick: int, text: str) -> list[str]:
    """``row`` with one corruption of ``kind``; ``pick`` chooses the column."""
    row = list(row)
    column = pick % len(row)
    if kind == "drop":
        del row[column]
    elif kind == "extra":
        row.append("0.5")
    elif kind == "text":
        row[column] = text
    elif kind == "overflow":
        row[1 + pick % (len(row) - 1)] = "-1e999"  # any column but the (integer) time stamp
    else:
        row[0] = previous_stamp
    return row


@st.composite
def corrupted_files(draw: st.DrawFn) -> tuple[list[list[str]], np.ndarray, np.ndarray, dict[int, str]]:
    """Valid rows with some corrupted: (rows, stamps, confidences, {row index: expected reason})."""
    n = draw(st.integers(2, 40))
    rows, stamps, conf = hand_rows(n, draw(st.integers(0, 2**32 - 1)))
    bad = draw(st.sets(st.integers(0, n - 1), max_size=n - 1))
    expected = {}
    for i in sorted(bad):
        kind = draw(st.sampled_from(sorted(CORRUPTIONS)))
        if kind == "repeat" and (i == 0 or i - 1 in bad):  # repeats only the time stamp of a kept row
            kind = "text"
        text = draw(st.sampled_from(BAD_TEXT))
        rows[i] = corrupt(rows[i], kind, str(stamps[i - 1]), draw(st.integers(0, 10_000)), text)
        expected[i] = CORRUPTIONS[kind]
    return rows, stamps, conf, expected


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(corrupted_files())
def test_corrupted_rows_are_counted_and_valid_rows_survive_in_order(
    tmp_path: Path, case: tuple[list[list[str]], np.ndarray, np.ndarray, dict[int, str]]
) -> None:
    rows, stamps, conf, expected = case
    good = [i for i in range(len(rows)) if i not in expected]
    path = write_csv(tmp_path / "ht.csv", rows)
    traj, (report,) = import_aria_with_report(hand_tracking=path, max_skipped=1.0)
    assert report.rows_read == len(rows) and report.rows_kept == len(good)
    assert report.rows_skipped == len(expected)
    assert report.reasons == dict(Counter(expected.values()))
    assert [line for line, _, _ in report.skipped] == [i + 2 for i in sorted(expected)]  # header is line 1
    # the valid rows, all of them, in file order, read as a file holding only them reads
    assert np.array_equal(traj.t, stamps[good] / 1e6)
    assert np.array_equal(traj.visible, conf[good] > 0)
    clean = import_aria(hand_tracking=write_csv(tmp_path / "clean.csv", [rows[i] for i in good]))
    assert np.array_equal(traj.joints, clean.joints) and np.array_equal(traj.joint_valid, clean.joint_valid)
    assert report.notes.get("left hand not tracked", 0) == int((conf[good, 0] <= 0).sum())
    # the default rule: refused, naming the file and the first bad line, when more than 5% are skipped
    if len(expected) > MAX_SKIPPED * len(rows):
        message = rf"{re.escape(str(path))}: {len(expected)} of {len(rows)} .* line {min(expected) + 2}:"
        with pytest.raises(ValueError, match=message):
            import_aria_with_report(hand_tracking=path)
    else:
        assert np.array_equal(import_aria_with_report(hand_tracking=path)[0].t, traj.t)


def test_one_bad_row_no_longer_ends_the_import(tmp_path: Path) -> None:
    rows, stamps, _ = hand_rows(40, 1)
    rows[3][5] = "0.1x"
    path = write_csv(tmp_path / "ht.csv", rows)
    from projectaria_tools.core.mps import hand_tracking

    assert len(hand_tracking.read_hand_tracking_results(str(path))) == 3  # projectaria-tools alone stops there
    with pytest.warns(UserWarning, match=r"40 rows read, 1 skipped \(non-numeric value: 1; the first at line 5: "
                                         r"tx_left_landmark_1_device = '0.1x' is not a number\)"):  # fmt: skip
        traj = import_aria(hand_tracking=path)
    assert traj.num_frames == 39 and np.array_equal(traj.t, np.delete(stamps, 3) / 1e6)


def test_rows_out_of_order_are_refused(tmp_path: Path) -> None:
    rows, stamps, _ = hand_rows(30, 2)
    rows[10][0] = str(stamps[8])
    path = write_csv(tmp_path / "ht.csv", rows)
    message = rf"{re.escape(str(path))}: line 12: tracking_timestamp_us {stamps[8]} is earlier than {stamps[9]} "
    with pytest.raises(ValueError, match=message + "on line 11: the rows are out of order"):
        import_aria(hand_tracking=path)


def test_a_repeated_time_stamp_is_skipped_not_refused(tmp_path: Path) -> None:
    rows, stamps, _ = hand_rows(30, 3)
    rows[5][0] = str(stamps[4])
    traj, (report,) = import_aria_with_report(hand_tracking=write_csv(tmp_path / "ht.csv", rows))
    assert report.skipped == [(7, "repeated time stamp", f"tracking_timestamp_us {stamps[4]} repeats line 6")]
    assert traj.num_frames == 29


def test_header_problems_are_refused(tmp_path: Path) -> None:
    rows, _, _ = hand_rows(5, 4)
    path = write_csv(tmp_path / "rep.csv", [[*r, "1"] for r in rows], header=[*HEADER, "left_tracking_confidence"])
    with pytest.raises(ValueError, match=r"rep\.csv: the header repeats columns \['left_tracking_confidence'\]"):
        import_aria(hand_tracking=path)
    path = write_csv(tmp_path / "head.csv", [])
    with pytest.raises(ValueError, match=r"head\.csv: no hand-tracking rows"):
        import_aria(hand_tracking=path)
    with pytest.raises(ValueError, match=r"`max_skipped` must be a fraction in \[0, 1\], got 2"):
        import_aria(hand_tracking=path, max_skipped=2)


def test_all_rows_bad_is_refused_even_when_skipping_is_allowed(tmp_path: Path) -> None:
    rows, _, _ = hand_rows(3, 5)
    path = write_csv(tmp_path / "ht.csv", [r[:-1] for r in rows])
    with pytest.raises(ValueError, match=r"ht\.csv: 3 of 3 hand-tracking rows .*line 2: 128 columns where the header"):
        import_aria(hand_tracking=path, max_skipped=1.0)


def test_blank_lines_are_ignored_and_noted(tmp_path: Path) -> None:
    rows, stamps, _ = hand_rows(6, 6)
    text = "\n".join(",".join(r) for r in [HEADER, *rows[:3]]) + "\n\n" + "\n".join(",".join(r) for r in rows[3:])
    (tmp_path / "ht.csv").write_text(text + "\n\n")
    traj, (report,) = import_aria_with_report(hand_tracking=tmp_path / "ht.csv")
    assert np.array_equal(traj.t, stamps / 1e6)  # projectaria-tools alone stops at the blank line
    assert report.rows_read == 6 and report.rows_skipped == 0 and report.notes["blank lines (ignored)"] == 2


def test_wrist_and_palm_rows_are_checked(tmp_path: Path) -> None:
    with open(shared_file(WP)) as f:
        rows = list(csv.reader(f))
    rows[30][3] = "nan"
    rows[31] = rows[31][:5]
    path = write_csv(tmp_path / "wp.csv", rows[1:], header=rows[0])
    traj, (report,) = import_aria_with_report(wrist_and_palm=path)
    assert report.reasons == {"non-numeric value": 1, "column count": 1}
    assert [line for line, _, _ in report.skipped] == [31, 32] and traj.num_frames == 120
    with pytest.raises(ValueError, match=r"wp\.csv: 2 of 122 wrist-and-palm rows .* line 31: ty_left_wrist_device"):
        import_aria(wrist_and_palm=path, max_skipped=0.01)


def test_trajectory_rows_are_checked(tmp_path: Path) -> None:
    with open(shared_file(TRAJ)) as f:
        rows = list(csv.reader(f))[:2001]
    rows[100][6:10] = ["0", "0", "0", "0"]  # a zero quaternion: projectaria-tools reads it without a word
    rows[200][3] = ""  # an empty field: projectaria-tools reads 0
    path = write_csv(tmp_path / "traj.csv", rows[1:], header=rows[0])
    wp = shared_file(WP)
    _, reports = import_aria_with_report(wrist_and_palm=wp, trajectory=path)
    assert reports[1].rows_read == 2000 and reports[1].reasons == {"not a unit quaternion": 1, "non-numeric value": 1}
    assert reports[1].skipped[1] == (201, "non-numeric value", "tx_world_device = '' is not a number")
    rows[300][1] = rows[299][1]
    rows[301][1] = str(int(rows[299][1]) - 1)
    write_csv(path, rows[1:], header=rows[0])
    with pytest.raises(ValueError, match=r"traj\.csv: line 302: tracking_timestamp_us \d+ is earlier than"):
        import_aria(wrist_and_palm=wp, trajectory=path)
    write_csv(path, [r[:9] + r[10:] for r in rows[1:]], header=rows[0][:9] + rows[0][10:])
    with pytest.raises(ValueError, match=r"missing columns \['qw_world_device'\].*closed-loop trajectory file"):
        import_aria(wrist_and_palm=wp, trajectory=path)


def test_calibration_records_are_checked(tmp_path: Path) -> None:
    lines = shared_file(CALIB).read_text().splitlines()
    lines[3] = lines[3][:200]  # cut short: invalid JSON
    record = json.loads(lines[7])
    record["CameraCalibrations"] = [{}]  # well-formed JSON that projectaria-tools cannot read
    lines[7] = json.dumps(record)
    path = tmp_path / "calib.jsonl"
    path.write_text("\n".join(lines) + "\n")
    traj, reports = import_aria_with_report(wrist_and_palm=shared_file(WP), calibration=path)
    assert reports[1].rows_read == 122 and reports[1].reasons == {"invalid JSON": 1, "unreadable record": 1}
    assert [line for line, _, _ in reports[1].skipped] == [4, 8] and traj.K is not None
    with pytest.raises(ValueError, match=r"calib\.jsonl: 2 of 122 calibration rows .* line 4: "):
        import_aria(wrist_and_palm=shared_file(WP), calibration=path, max_skipped=0.01)


def test_real_mps_sample_imports_with_nothing_skipped() -> None:
    ht, wp, traj, calib = shared_file(HT), shared_file(WP), shared_file(TRAJ), shared_file(CALIB)
    _, (report,) = import_aria_with_report(hand_tracking=ht)
    with open(ht) as f:
        left = [float(r["left_tracking_confidence"]) for r in csv.DictReader(f)]
    assert (report.rows_read, report.rows_skipped) == (8, 0)
    assert report.notes["left hand not tracked"] == sum(c <= 0 for c in left) == 5
    _, reports = import_aria_with_report(wrist_and_palm=wp, trajectory=traj, calibration=calib)
    assert [(r.path.name, r.rows_read, r.rows_skipped) for r in reports] == [
        ("wrist_and_palm_poses.csv", 122, 0), ("closed_loop_trajectory.csv", 11517, 0),
        ("online_calibration.jsonl", 122, 0),
    ]  # fmt: skip
    # wrist-and-palm rows before the trajectory starts (148.5 s vs 149.2 s) are noted, not dropped
    assert reports[0].notes["frames outside the trajectory's time range (not visible)"] == 9


def test_cli_prints_and_writes_the_report(tmp_path: Path) -> None:
    from dexsim.cli import main

    rows, _, _ = hand_rows(40, 7)
    rows[9] = rows[9][:-2]
    path = write_csv(tmp_path / "ht.csv", rows)
    args = ["hands", "import-aria", "--hand-tracking", str(path), "--no-fit", "--out", str(tmp_path / "o.npz")]
    result = CliRunner().invoke(main, [*args, "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "read ht.csv: 40 rows read, 1 skipped (column count: 1; the first at line 11: 127 columns" in result.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames"] == 39
    assert summary["files"][0]["rows_skipped"] == 1 and summary["files"][0]["reasons"] == {"column count": 1}
    assert summary["files"][0]["skipped"][0]["line"] == 11
    result = CliRunner().invoke(main, [*args, "--max-skipped", "0.01"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"dexsim: error: {path}: 1 of 40 hand-tracking rows are unreadable" in result.output
