"""``dexsim datagen`` and ``dexsim data check``."""

from __future__ import annotations

from pathlib import Path

import click

from ._params import JSON_OUT, OutputPath


@click.command()
@click.option("--scene", default="tabletop", show_default=True, help="Built-in scene (randomized per clip).")
@click.option("--out", "out_dir", required=True, type=OutputPath(directory=True))
@click.option("--clips", type=click.IntRange(1, 10_000_000), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option("--split", type=click.Choice(["train", "heldout"]), default="train", show_default=True)
@click.option("--width", type=click.IntRange(16, 4096), default=128, show_default=True)
@click.option("--height", type=click.IntRange(16, 4096), default=128, show_default=True)
@click.option("--frames", type=click.IntRange(2, 1000), default=16, show_default=True)
@click.option("--fps", type=click.FloatRange(0, 1000, min_open=True), default=8.0, show_default=True)
@click.option("--density-scale", type=click.FloatRange(0, 100, min_open=True), default=None,
              help="Object density scale of the physics (default: the world's).")  # fmt: skip
@click.option(
    "--kinds",
    default=None,
    help="Action kinds drawn uniformly, comma-separated (push, touch, poke, wave, pick_place, open_drawer, "
    "close_drawer, drawer = whichever the variant allows; sweep = the palm-down hand of an interactive episode moved "
    "through an object); default: the mix (no sweep).",
)
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def datagen(scene: str, out_dir: Path, clips: int, seed: int, workers: int, split: str, width: int, height: int,
            frames: int, fps: float, density_scale: float | None, kinds: str | None,
            json_path: Path | None) -> None:  # fmt: skip
    """Generate paired clips (static | prompt | physics ground truth) in the DWM layout; resumable.

    Shards across machines by RANK/WORLD_SIZE (torchrun) or SLURM_PROCID/SLURM_NTASKS. OUT/manifest.json
    records the recipe: rerunning the same recipe (more --clips grows the dataset) finishes and repairs it
    (damaged or unfinished clips are remade); another recipe in the same OUT is refused before any work.
    A folder of an older dexsim without a manifest is adopted when its clips prove this recipe made them.
    """
    import time

    t0 = time.perf_counter()
    from .._io import write_json
    from ..data.generate import DatagenConfig, generate

    try:
        extra: dict = {} if density_scale is None else {"density_scale": density_scale}
        if kinds is not None:
            extra["kinds"] = tuple(k.strip() for k in kinds.split(",") if k.strip())
        cfg = DatagenConfig(out=str(out_dir), scene=scene, clips=clips, seed=seed, split=split,  # type: ignore[arg-type]
                            width=width, height=height, frames=frames, fps=fps, workers=workers, **extra)  # fmt: skip
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    result = generate(cfg)
    result["seconds"] = time.perf_counter() - t0  # the whole command, start-up included
    result["clips_per_min"] = 60.0 * result["generated"] / result["seconds"]
    click.echo(f"{result['clips']} clips complete in {out_dir} ({result['generated']} made now, "
               f"{result['clips_per_min']:.1f} clips/min over {result['seconds']:.1f} s)")  # fmt: skip
    if result["temporaries_removed"]:
        click.echo(f"removed {result['temporaries_removed']} temporary file(s) left by a killed run")
    if json_path:
        write_json(json_path, result)


@click.group()
def data() -> None:
    """Datasets: check a DWM-layout folder."""


@data.command("check")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def check(root: Path, json_path: Path | None) -> None:
    """Read every file: decode every video, parse texts, meta, actions and masks, check them against
    manifest.json when there is one (recipe, clip count); exits 1 on errors."""
    from .._io import write_json
    from ..data.dataset import check_dataset

    report = check_dataset(root)
    click.echo(f"{root}: {report['clips']} clips, {report['complete']} complete, frames {report['frames']}, "
               f"resolutions {report['resolutions']}, fps {report['fps']}")  # fmt: skip
    if report["manifest"]:
        m = report["manifest"]
        click.echo(f"  manifest: {m['clips']} clips of recipe {m['recipe_hash']} {m['recipe']}")
    if report["temporaries"]:
        click.echo(f"  {report['temporaries']} temporary file(s) of a killed or running write (not errors)")
    if report["absent_parts"]:
        click.echo(f"  absent parts (not errors): {report['absent_parts']}")
    for e in report["errors"][:20]:
        click.echo(f"  error: {e}")
    if json_path:
        write_json(json_path, report)
    if not report["ok"]:
        raise SystemExit(1)
