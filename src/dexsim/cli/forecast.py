"""``dexsim bench forecast``."""

from __future__ import annotations

from pathlib import Path

import click

from ..bench.forecast import GOALS
from ._params import JSON_OUT, OutputPath


def _forecaster(name: str) -> object:
    from ..forecast import load_forecaster

    try:
        return load_forecaster(name)
    except FileNotFoundError as e:
        raise click.BadParameter(str(e), param_hint="--forecaster") from None


@click.command("forecast")
@click.option("--data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Held-out `dexsim datagen` folder(s) (repeat for several).")  # fmt: skip
@click.option("--train-data", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Training folder(s) for the nearest-neighbour baseline (default: the bank shipped with the "
              "forecaster).")  # fmt: skip
@click.option("--forecaster", "forecaster_name", default="default", show_default=True, help="default | PATH")
@click.option("--goal", type=click.Choice(GOALS), default="text", show_default=True,
              help="What the forecaster is told of the goal.")  # fmt: skip
@click.option("--clips", type=click.IntRange(1), default=None, help="Use the first CLIPS held-out clips.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--refine", type=click.FloatRange(0.0, 1.0), default=None,
              help="Start the forecaster from the bank's 5 retrieved futures and re-draw them from this far back "
              "towards noise (default: from noise alone).")  # fmt: skip
@click.option("--start", type=click.Choice(("auto", "noise", "retrieval")), default="auto", show_default=True,
              help="Where the model row's forecasts come from: the network's flow from noise; retrieval (a bridge's "
              "flow from the bank's 5 retrieved futures, a residual corrector's corrections of them, else the shipped "
              "bank's 5 diverse futures); auto: as `forecast()` does, retrieval where the forecaster can.")  # fmt: skip
@click.option("--figure", "figure_path", type=OutputPath((".png",)), default=None,
              help="Write a PNG: the first pick-and-place, push and drawer pull, their true future, retrieval's 5 "
              "and the model's 5 drawn over the last observed frame.")  # fmt: skip
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def bench_forecast_cmd(data: tuple[str, ...], train_data: tuple[str, ...], forecaster_name: str, goal: str,
                       clips: int | None, seed: int, refine: float | None, start: str, figure_path: Path | None,
                       json_path: Path | None) -> None:  # fmt: skip
    """Best-of-K displacement of forecast hand keypoints (HandWorld's protocol) against the hands held
    still, constant velocity and nearest-neighbour retrieval, on held-out clips."""
    from .._io import write_json
    from ..bench.forecast import bench_forecast

    model = _forecaster(forecaster_name)
    try:
        r = bench_forecast(model, list(data), list(train_data) or None, goal=goal, clips=clips, seed=seed,
                           refine=refine, start=start, figure=figure_path is not None)  # fmt: skip
    except ValueError as e:  # checked before any clip is read
        if "`start=" in str(e):
            raise click.BadParameter(str(e), param_hint="--start") from None
        if refine is None or "hand parameters" not in str(e):
            raise
        raise click.BadParameter(str(e), param_hint="--refine") from None
    click.echo(f"{r['clips']} clips, {r['observed_frames']} frames seen, {r['horizon']} predicted, goal {goal}; "
               f"the model row from: {r['model_network']}")  # fmt: skip
    for name in ("model", "network_from_noise", "still", "constant_velocity", "nearest_neighbour"):
        if name not in r:
            continue
        m = r[name]
        click.echo(f"  {name:<18} ADE k1 {m['ade_k1']:.3f} m  FDE k1 {m['fde_k1']:.3f} m  "
                   f"ADE k5 {m['ade_k5']:.3f} m  FDE k5 {m['fde_k5']:.3f} m")  # fmt: skip
    click.echo(f"  best-of-5 FDE {100 * r['fde_k5_vs_constant_velocity']:.0f}% below constant velocity; joint-limit "
               f"violations {r['joint_limit_violation_rate']:.3f}, table penetrations "
               f"{r['table_penetration_rate']:.3f} (ground truth {r['ground_truth_table_penetration_rate']:.3f}); "
               f"K=8 in {r['inference_k8_s']:.3f} s")  # fmt: skip
    if figure_path is not None:
        from ..video import write_png

        write_png(figure_path, r.pop("figure"))
        click.echo(f"wrote {figure_path}")
    if json_path:
        write_json(json_path, r)
        click.echo(f"wrote {json_path}")
