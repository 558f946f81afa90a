"""``dexsim scene``: tools for scenes users bring."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from ._params import JSON_OUT


@click.group()
def scene() -> None:
    """Inspect and annotate Gaussian-splat scenes."""


@scene.command("inspect")
@click.argument("scene_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--metric-scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Metres per file unit, when known.")  # fmt: skip
@click.option("--force", is_flag=True, help="Overwrite an existing sidecar.")
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def inspect(scene_path: Path, metric_scale: float, force: bool, json_path: Path | None) -> None:
    """Estimate up axis, ground, workspace and a start camera; write the NAME.dexsim.json sidecar."""
    from .._io import write_json
    from ..scene.metadata import estimate_metadata, sidecar_path, write_metadata
    from ..scene.ply import read_scene

    gs = read_scene(scene_path)
    meta = estimate_metadata(gs, metric_scale=metric_scale)
    lo, hi = gs.bounds()
    click.echo(f"{scene_path}: {gs.num_gaussians} Gaussians, SH degree {gs.sh_degree}, {gs.num_objects} objects")
    click.echo(f"  bounds (file frame): {[round(float(x), 3) for x in lo]} .. {[round(float(x), 3) for x in hi]}")
    click.echo(f"  estimated up (file frame): {[round(x, 4) for x in meta.up_file]}")
    click.echo(f"  workspace (world, z up): {[round(x, 3) for x in meta.workspace_min]} .. "
               f"{[round(x, 3) for x in meta.workspace_max]}")  # fmt: skip
    click.echo(f"  {meta.notes}")
    side = sidecar_path(scene_path)
    if side.exists() and not force:
        click.echo(f"  {side} exists: not overwritten (use --force)")
    else:
        write_metadata(meta, side)
        click.echo(f"  wrote {side}: check and correct it")
    if json_path:
        write_json(json_path, {"num_gaussians": gs.num_gaussians, "sh_degree": gs.sh_degree, **asdict(meta)})
