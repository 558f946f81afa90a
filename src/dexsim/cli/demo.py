"""``dexsim demo``: the main job, on what exists today."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("outputs/demo"),
              show_default=True)  # fmt: skip
@click.option("--frames", type=click.IntRange(2, 256), default=16, show_default=True)
@click.option("--size", type=click.IntRange(16, 1024), default=256, show_default=True, help="Square frame size.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def demo(out_dir: Path, frames: int, size: int, json_path: Path | None) -> None:
    """Scripted hand actions on the built-in tabletop: static video, hand prompt and the physics
    oracle's ground truth (mp4s + a contact sheet). The learned world model is not built yet."""
    from ..demo import run_demo

    summary = run_demo(out_dir, num_frames=frames, size=size)
    for line in summary["report"]:
        click.echo(line)
    if json_path:
        from .._io import write_json

        write_json(json_path, summary)
