"""``dexsim render``: a static-scene video along a camera path."""

from __future__ import annotations

from pathlib import Path

import click

from ._params import OutputPath


@click.command()
@click.option("--scene", "scene_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A Gaussian splat: INRIA/gsplat .ply or .splat.")  # fmt: skip
@click.option("--camera-path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="An .npz: `camera` (T, 7) camera-to-world [t, q] (+ K, width, height), or `viewmats` + `Ks`. "
              "Default: a walk-in arc from the scene's extent.")  # fmt: skip
@click.option("--out", "out_path", required=True, type=OutputPath((".mp4",)), help="Output .mp4")
@click.option("--width", type=click.IntRange(1, 8192), default=256, show_default=True)
@click.option("--height", type=click.IntRange(1, 8192), default=256, show_default=True)
@click.option("--frames", type=click.IntRange(1, 10000), default=16, show_default=True,
              help="Frames of the default path (ignored with --camera-path).")  # fmt: skip
@click.option("--fps", type=click.FloatRange(0.1, 240), default=8.0, show_default=True)
@click.option("--backend", type=click.Choice(["auto", "cpu", "torch", "gsplat"]), default="auto", show_default=True)
@click.option("--background", type=(float, float, float), default=(0.0, 0.0, 0.0), show_default=True)
def render(
    scene_path: Path, camera_path: Path | None, out_path: Path, width: int, height: int, frames: int, fps: float,
    backend: str, background: tuple[float, float, float],
) -> None:  # fmt: skip
    """Render a static-scene video (RGB mp4) plus a PNG contact sheet of RGB | depth | alpha."""
    from ..scene.camera_path import default_path, load_camera_path
    from ..scene.ply import read_scene
    from ..scene.video_render import render_video

    scene = read_scene(scene_path)
    cams = load_camera_path(camera_path).resized(width, height) if camera_path else default_path(
        scene, frames, width, height)  # fmt: skip
    summary = render_video(scene, cams, out_path, fps=fps, backend=backend, background=background)
    click.echo(f"wrote {summary['video']} and {summary['sheet']} ({summary['frames']} frames, "
               f"{summary['fps_render']:.1f} frames/s rendered with {summary['backend']})")  # fmt: skip
