"""``dexsim bench``: benchmarks that write JSON figures."""

from __future__ import annotations

from pathlib import Path

import click

from ._params import JSON_OUT, OutputPath


@click.group()
def bench() -> None:
    """Benchmarks (median of repeats; --json writes the figures)."""


def _parse_sizes(text: str | None) -> list[tuple[int, int]]:
    """``"512x512,1280x720"`` -> [(512, 512), (1280, 720)]; a malformed entry is named."""
    out = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        w, sep, h = part.strip().lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit() or not (1 <= int(w) <= 8192 and 1 <= int(h) <= 8192):
            raise click.BadParameter(f"{part.strip()!r} is not WIDTHxHEIGHT (1-8192 each)", param_hint="--sizes")
        out.append((int(w), int(h)))
    return out


@bench.command("render")
@click.option("--scene", "scene_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A Gaussian splat (.ply / .splat); cameras: --camera-path or a default walk-in.")  # fmt: skip
@click.option("--points", "points_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A gsplat test-layout .npz (means3d, colors, viewmats, Ks, width, height).")  # fmt: skip
@click.option("--camera-path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--width", type=click.IntRange(1, 8192), default=256, show_default=True)
@click.option("--height", type=click.IntRange(1, 8192), default=256, show_default=True)
@click.option("--backend", type=click.Choice(["auto", "cpu", "torch", "gsplat"]), default="auto", show_default=True)
@click.option("--device", default=None, help="torch device for the scene (default: cuda when available, else cpu).")
@click.option("--repeats", type=click.IntRange(1, 1000), default=7, show_default=True)
@click.option("--sizes", default=None, help="More sizes to time after --width/--height, e.g. 512x512,1280x720 "
              "(JSON key `sizes`).")  # fmt: skip
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def bench_render_cmd(
    scene_path: Path | None, points_path: Path | None, camera_path: Path | None, width: int, height: int,
    backend: str, device: str | None, repeats: int, sizes: str | None, json_path: Path | None,
) -> None:  # fmt: skip
    """Frames per second of the Gaussian renderer on a scene or a point set."""
    import torch

    from .._io import write_json
    from ..bench.render import bench_render, load_points_benchmark
    from ..scene import read_scene
    from ..scene.camera_path import default_path, load_camera_path

    if (scene_path is None) == (points_path is None):
        raise click.UsageError("give exactly one of --scene and --points")
    extra = _parse_sizes(sizes)
    if points_path is not None:
        scene, cams = load_points_benchmark(points_path)
    else:
        scene = read_scene(scene_path)  # type: ignore[arg-type]
        cams = load_camera_path(camera_path) if camera_path else default_path(scene, 8, width, height)
    dev = device or ("cuda" if torch.cuda.is_available() and backend in ("auto", "gsplat", "torch") else "cpu")
    result = bench_render(scene.to(dev), cams.resized(width, height), backend=backend, repeats=repeats)
    result["source"] = str(points_path or scene_path)
    click.echo(f"{result['backend']}: {result['fps_median']:.1f} fps median ({result['num_gaussians']} Gaussians, "
               f"{width}x{height}, {result['num_cameras']} cameras x {repeats} repeats)")  # fmt: skip
    if "stage_ms_per_frame" in result:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in result["stage_ms_per_frame"].items())
        click.echo(f"  ms per frame: {stages}; {result['ns_per_evaluation']:.1f} ns per Gaussian-pixel evaluation "
                   "per core")  # fmt: skip
    keep = ("width", "height", "fps_median", "ms_per_frame_median", "ns_per_evaluation")
    if extra:
        result["sizes"] = []
    for w, h in extra:
        r = bench_render(scene.to(dev), cams.resized(w, h), backend=backend, repeats=repeats)
        result["sizes"].append({k: r[k] for k in keep if k in r})
        click.echo(f"  {w}x{h}: {r['fps_median']:.1f} fps median")
    if json_path:
        write_json(json_path, result)
        click.echo(f"wrote {json_path}")


@bench.command("prompts")
@click.option("--width", type=click.IntRange(16, 8192), default=720, show_default=True)
@click.option("--height", type=click.IntRange(16, 8192), default=480, show_default=True)
@click.option("--frames", type=click.IntRange(1, 1000), default=16, show_default=True)
@click.option("--repeats", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def bench_prompts_cmd(width: int, height: int, frames: int, repeats: int, json_path: Path | None) -> None:
    """Frames per second of the four visual-action-prompt kinds (hands posed + rendered)."""
    from .._io import write_json
    from ..bench.prompts import bench_prompts

    result = bench_prompts(width, height, num_frames=frames, repeats=repeats)
    kinds = ", ".join(f"{k} {result[f'{k}_fps_median']:.0f}" for k in ("mesh", "skeleton", "depth", "mask"))
    click.echo(f"prompts at {width}x{height}, frames/s median: {kinds}")
    if json_path:
        write_json(json_path, result)
        click.echo(f"wrote {json_path}")


@bench.command("soak")
@click.option("--model", "model_name", default="default", show_default=True, help="default | oracle | PATH")
@click.option("--chunks", type=click.IntRange(30, 100_000), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def bench_soak_cmd(model_name: str, chunks: int, seed: int, json_path: Path | None) -> None:
    """A long env rollout with memory sampled every chunk: is it flat?"""
    from .._io import write_json
    from ..bench.soak import bench_soak

    r = bench_soak(model_name, chunks, seed)
    click.echo(f"{chunks} chunks of {r['chunk_frames']} frames: RSS {r['rss_reference_mb']:.0f} MiB (chunks 10-20) -> "
               f"{r['rss_last10_mb']:.0f} MiB (last 10), growth {100 * r['growth']:+.2f}% "
               f"({'flat' if r['flat'] else 'NOT flat'}); {r['step_s_median']:.2f} s/step")  # fmt: skip
    if json_path:
        write_json(json_path, r)
        click.echo(f"wrote {json_path}")


@bench.command("keyboard")
@click.option("--task", default="push-red-box", show_default=True, help="A built-in task (it has a physics oracle).")
@click.option("--world-model", "world_model", default="default", show_default=True, help="default | PATH | a name")
@click.option("--keys", default=None, help='Keys pressed before each step: spaces between keys, commas between steps '
              '(default "T J J,O O,L L,L L,U U,K K": a push of the red box).')  # fmt: skip
@click.option("--seeds", default="0,1,2", show_default=True, help="Episode seeds, comma-separated.")
@click.option("--sheet", "sheet_path", type=OutputPath((".png",)), default=None,
              help="PNG: per seed, a row per step of static | prompt | generated | physics.")  # fmt: skip
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def bench_keyboard_cmd(task: str, world_model: str, keys: str | None, seeds: str, sheet_path: Path | None,
                       json_path: Path | None) -> None:  # fmt: skip
    """Replay a keyboard session of `dexsim play` and measure, chunk by chunk, where the world model puts the
    target against where physics puts it (the frame-reading success detector on both)."""
    import numpy as np

    from .._io import write_json
    from ..envs.tasks import TASKS
    from ..play.replay import DEFAULT_KEYS, parse_keys, replay_keys, replay_sheet

    if task not in TASKS:
        raise click.BadParameter(f"unknown task {task!r}; choose one of {sorted(TASKS)}", param_hint="--task")
    keys = DEFAULT_KEYS if keys is None else keys
    try:
        parse_keys(keys)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--keys") from None
    try:
        seed_list = [int(s) for s in seeds.split(",")]
    except ValueError:
        raise click.BadParameter(f"{seeds!r} is not comma-separated integers", param_hint="--seeds") from None
    results = [replay_keys(task, world_model, keys, s) for s in seed_list]
    for r in results:
        errs = " ".join("-" if c["error_px"] is None else f"{c['error_px']:.1f}" for c in r["chunks"])
        med = "n/a" if r["median_error_px"] is None else f"{r['median_error_px']:.1f}"
        click.echo(f"seed {r['seed']}: error per chunk {errs} px, median {med}; target moved: physics "
                   f"{r['physics_moved_px'] or 0:.1f} px, generated {r['generated_moved_px'] or 0:.1f} px")  # fmt: skip
    medians = [r["median_error_px"] for r in results if r["median_error_px"] is not None]
    summary = {"task": task, "world_model": world_model, "keys": keys, "seeds": seed_list,
               "median_of_medians_px": float(np.median(medians)) if medians else None,
               "replays": [{k: v for k, v in r.items() if k != "_frames"} for r in results]}  # fmt: skip
    click.echo(f"median over seeds of the median chunk error: {summary['median_of_medians_px']}")
    if sheet_path:
        click.echo(f"wrote {replay_sheet(results, sheet_path)}")
    if json_path:
        write_json(json_path, summary)
        click.echo(f"wrote {json_path}")
