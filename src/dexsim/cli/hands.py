"""``dexsim hands``: import hand tracking and render visual action prompts."""

from __future__ import annotations

from pathlib import Path

import click

from ._params import JSON_OUT, OutputPath

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def hands() -> None:
    """Hand trajectories: importers and visual action prompts."""


@hands.command("import-aria")
@click.option("--hand-tracking", type=_FILE, default=None, help="MPS hand_tracking_results.csv (21 landmarks).")
@click.option("--wrist-and-palm", type=_FILE, default=None, help="MPS wrist_and_palm_poses.csv.")
@click.option("--trajectory", type=_FILE, default=None, help="MPS closed_loop_trajectory.csv (world frame).")
@click.option("--calibration", type=_FILE, default=None, help="MPS online_calibration.jsonl (RGB camera).")
@click.option("--width", type=click.IntRange(16, 8192), default=512, show_default=True, help="Rectified camera width.")
@click.option("--height", type=click.IntRange(16, 8192), default=512, show_default=True)
@click.option("--fit/--no-fit", default=True, show_default=True, help="Fit hand parameters by IK (for mesh prompts).")
@click.option("--max-skipped", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="The fraction of a file's rows that may be unreadable (skipped) before it is refused.")  # fmt: skip
@click.option("--out", "out_path", required=True, type=OutputPath((".npz",)), help="TRAJ.npz")
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def import_aria_cmd(
    hand_tracking: Path | None, wrist_and_palm: Path | None, trajectory: Path | None, calibration: Path | None,
    width: int, height: int, fit: bool, max_skipped: float, out_path: Path, json_path: Path | None,
) -> None:  # fmt: skip
    """Convert Aria MPS hand tracking into a dexsim hand trajectory (.npz); says, per file, how many
    rows were read and skipped, and why."""
    from .._io import write_json
    from ..hands.importers import import_aria_with_report
    from ..hands.render import fit_trajectory

    if (hand_tracking is None) == (wrist_and_palm is None):
        raise click.UsageError("give exactly one of --hand-tracking and --wrist-and-palm")
    # a refused file raises ValueError naming it: the dexsim group prints it on one line (exit code 2)
    traj, reports = import_aria_with_report(hand_tracking, wrist_and_palm, trajectory, calibration, width=width,
                                            height=height, max_skipped=max_skipped)  # fmt: skip
    for report in reports:
        click.echo(f"read {report.summary()}")
    summary: dict = {}
    if fit and traj.params is None:
        click.echo("fitting hand parameters (IK) ...")
        traj, summary = fit_trajectory(traj)
    traj.save(out_path)
    summary.update({
        "frames": traj.num_frames, "duration_s": traj.duration,
        "left_visible_frames": int(traj.visible[:, 0].sum()), "right_visible_frames": int(traj.visible[:, 1].sum()),
        "world_frame": "world (trajectory)" if trajectory else "device", "camera": traj.camera is not None,
        "out": str(out_path), "files": [r.to_dict() for r in reports],
    })  # fmt: skip
    click.echo(f"wrote {out_path}: {traj.num_frames} frames over {traj.duration:.2f} s, visible left "
               f"{summary['left_visible_frames']} / right {summary['right_visible_frames']}")  # fmt: skip
    if json_path:
        write_json(json_path, summary)


@hands.command("render")
@click.option("--trajectory", "traj_path", required=True, type=_FILE, help="A hand trajectory .npz.")
@click.option("--kind", type=click.Choice(["mesh", "skeleton", "depth", "mask"]), default="mesh", show_default=True)
@click.option("--width", type=click.IntRange(16, 8192), default=512, show_default=True)
@click.option("--height", type=click.IntRange(16, 8192), default=512, show_default=True)
@click.option("--fps", type=click.FloatRange(0.1, 240), default=None, help="Resample to this rate first.")
@click.option("--video-fps", type=click.FloatRange(0.1, 240), default=8.0, show_default=True)
@click.option("--out", "out_path", required=True, type=OutputPath((".mp4",)), help="Output .mp4")
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def render_cmd(
    traj_path: Path, kind: str, width: int, height: int, fps: float | None, video_fps: float, out_path: Path,
    json_path: Path | None,
) -> None:  # fmt: skip
    """Render a visual action prompt video (and a PNG contact sheet) of a hand trajectory."""
    import time

    from .._io import write_json
    from ..hands.render import render_trajectory
    from ..hands.trajectory import HandTrajectory
    from ..video import contact_sheet, write_mp4, write_png

    try:
        traj = HandTrajectory.load(traj_path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if fps is not None:
        traj = traj.resample(fps)
    t0 = time.perf_counter()
    prompt = render_trajectory(traj, kind, width, height)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t0
    write_mp4(out_path, prompt.rgb, fps=video_fps)
    sheet = out_path.with_name(out_path.stem + "_sheet.png")
    write_png(sheet, contact_sheet([(f"{kind} prompt", prompt.rgb)], max_frames=8))
    summary = {"frames": traj.num_frames, "kind": kind, "width": width, "height": height,
               "left_visible_frames": int(traj.visible[:, 0].sum()),
               "right_visible_frames": int(traj.visible[:, 1].sum()),
               "hand_pixels_per_frame": float(prompt.rgb.any(-1).sum() / max(traj.num_frames, 1)),
               "render_fps": traj.num_frames / elapsed, "video": str(out_path), "sheet": str(sheet)}  # fmt: skip
    click.echo(f"wrote {out_path} and {sheet}: {traj.num_frames} frames, {summary['hand_pixels_per_frame']:.0f} "
               f"hand pixels per frame")  # fmt: skip
    if json_path:
        write_json(json_path, summary)
