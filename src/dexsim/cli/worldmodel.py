"""``dexsim train``, ``dexsim eval`` and ``dexsim bench worldmodel``."""

from __future__ import annotations

from pathlib import Path

import click

from ._params import JSON_OUT, OutputPath


@click.command("train")
@click.option(
    "--preset",
    "preset_name",
    type=click.Choice(["compact-from-scratch", "motion-flow", "lora-cogvideox-fun", "forecast-flow-matching"]),
    required=True,
)
@click.option("--data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset folder(s) in the DWM layout (repeat for several).")  # fmt: skip
@click.option("--out", required=True, type=OutputPath(directory=True))
@click.option("--steps", type=click.IntRange(1), default=None)
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--lr", type=float, default=None)
@click.option(
    "--model",
    default=None,
    help="compact config name (motion-flow: the denoiser's, whose trunk the motion network shares); for "
    "lora-cogvideox-fun a CogVideoX-Fun folder or 'tiny'; "
    "for forecast-flow-matching a forecaster size (default, tiny).",
)
@click.option("--width", type=click.IntRange(16), default=None)
@click.option("--height", type=click.IntRange(16), default=None)
@click.option("--window", type=click.IntRange(2), default=None)
@click.option("--validation-data", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--checkpoint-every", type=click.IntRange(1), default=None)
@click.option("--validate-every", type=click.IntRange(1), default=None)
@click.option("--seed", type=int, default=None)
@click.option("--grow-data", is_flag=True, default=None, help="Data is still being generated: each epoch re-lists it.")
@click.option("--init-from", default=None, help="Start from a saved model folder (or 'default'): tensors of "
              "matching name and shape are copied, the rest stay freshly initialised.")  # fmt: skip
@click.option("--loss-pyramid", type=click.IntRange(1, 6), default=None,
              help="Also compare 2x, 4x... downsampled frames (levels; 1 = plain MSE).")  # fmt: skip
@click.option("--flow-loss", type=click.FloatRange(0, 10), default=None,
              help="Weight of the flow head's L1 error (pixels) against true flow (warp models).")  # fmt: skip
@click.option("--change-weight", type=click.FloatRange(0, 100), default=None,
              help="Extra loss weight on the pixels the true video changes (moved objects, hands).")  # fmt: skip
@click.option("--forecast-windows", type=click.Choice(["mixed", "observed"]), default=None,
              help="Forecaster: mixed (planning and observed windows) or observed only (a residual corrector: every "
              "window from a retrieved future).")  # fmt: skip
@click.option("--motion-as", type=click.Choice(["base", "known"]), default=None,
              help="A motion network's moved video: the known video and the residual's base (base), or the known "
              "video only (known).")  # fmt: skip
@click.option("--occlusion-loss", type=click.FloatRange(0, 10), default=None,
              help="Motion preset: give the motion network occlusion outputs (the places a moved object covered and "
              "left, filled from a clean plate) trained by cross-entropy of this weight.")  # fmt: skip
@click.option("--occlusion-balanced", is_flag=True, default=None,
              help="With --occlusion-loss: average the cross-entropy over the marked and the unmarked pixels apart "
              "(over-marks; pair it with a negative --occlusion-prior).")  # fmt: skip
@click.option("--occlusion-prior", type=click.FloatRange(-20, 20), default=None,
              help="Added to an occluding motion network's occlusion logits where used (saved with it); negative "
              "corrects one trained with a balanced loss.")  # fmt: skip
@click.option("--occlusion-gate", is_flag=True, default=None,
              help="An occluding motion network's flow moves a pixel only as far as its source lies in the predicted "
              "footprint (saved with it).")  # fmt: skip
@click.option("--context-flow", is_flag=True, default=None,
              help="Motion preset: the motion network also reads the last known frame's flow (so that what an "
              "earlier window moved stays moved).")  # fmt: skip
@click.option("--context-prob", type=click.FloatRange(0, 1), default=None,
              help="Share of training windows whose first frame is given as known context (default 0.5).")  # fmt: skip
@click.option("--mixed-precision", type=click.Choice(["auto", "no", "bf16"]), default=None,
              help="auto: bf16 on CUDA, none elsewhere; bf16 also pays on CPUs with AVX-512-BF16.")  # fmt: skip
@click.option("--no-resume", is_flag=True, help="Start over; a previous run's files in OUT move to OUT/superseded/.")
def train_cmd(preset_name: str, data: tuple[str, ...], out: Path, no_resume: bool, **overrides: object) -> None:
    """Train a world model or the hand forecaster (resumes from OUT's newest checkpoint of the same run).

    A run is its model, data and optimiser recipe (not --steps, --checkpoint-every, --validate-every: more
    steps continue it); OUT holding another run's checkpoints is refused unless --no-resume.
    Several processes or GPUs: `accelerate launch [--config_file configs/accelerate/ddp.yaml] -m dexsim train ...`."""
    from ..training import preset, train

    cfg = preset(preset_name, data=list(data), out=str(out), **overrides)
    result = train(cfg, resume=not no_resume)
    state = "finished" if result["finished"] else "stopped"
    where = f"model in {Path(out) / 'model'}, log in {Path(out) / 'log.jsonl'}"
    click.echo(f"{state} at step {result['step']} in {result['seconds']:.0f} s; {where}")


@click.command("export")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--step", type=click.IntRange(0), default=None, help="The checkpoint's step (default: the newest).")
@click.option("--to", "to", type=OutputPath(directory=True), default=None, help="Output folder (default: RUN/model).")
def export_cmd(run: str, step: int | None, to: Path | None) -> None:
    """Export a loadable model folder (EMA weights) from a training run's checkpoint, e.g. one stopped early."""
    from ..training import TrainConfig
    from ..training.trainer import checkpoints, export_checkpoint

    cfg = TrainConfig.from_run(run)
    found = dict(checkpoints(run))
    if not found:
        raise FileNotFoundError(f"{run} has no checkpoints")
    if step is not None and step not in found:
        raise ValueError(f"{run} has no checkpoint of step {step}; it has steps {', '.join(map(str, sorted(found)))}")
    chosen = step if step is not None else max(found)
    path = export_checkpoint(cfg, found[chosen], to)
    click.echo(f"exported step {chosen} of {run} to {path}")


@click.command("eval")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--model", "model_name", default="default", show_default=True, help="default | oracle | PATH")
@click.option("--clips", type=click.IntRange(1), default=None)
@click.option("--frames", type=click.IntRange(2), default=None, help="Evaluate the first FRAMES frames of each clip.")
@click.option("--no-oracle", is_flag=True, help="Skip re-simulating dexsim clips with the physics oracle.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sheet", type=OutputPath((".png",)), default=None,
              help="PNG: the first clip of each action kind, static | prompt | generated | ground truth.")  # fmt: skip
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def eval_cmd(data: str, model_name: str, clips: int | None, frames: int | None, no_oracle: bool, seed: int,
             sheet: Path | None, json_path: Path | None) -> None:  # fmt: skip
    """PSNR / SSIM / changed-pixel PSNR of a world model against the identity and hand-composite baselines."""
    from .._io import write_json
    from ..training.evaluate import evaluate, format_table
    from ..worldmodel import load

    model = load(model_name)
    result = evaluate(data, model, clips=clips, frames=frames, seed=seed, with_oracle=not no_oracle, sheet=sheet)
    click.echo(format_table(result))
    if json_path:
        write_json(json_path, result)
        click.echo(f"wrote {json_path}")


@click.command("worldmodel")
@click.option("--config", default="default", show_default=True,
              help="default | compact | tiny-cogvideox-fun | tiny-wan-fun | DWM name | PATH")  # fmt: skip
@click.option("--chunks", type=click.IntRange(1), default=5, show_default=True)
@click.option("--steps", "num_steps", type=click.IntRange(1), default=None)
@click.option("--batch", type=click.IntRange(1), default=1, show_default=True)
@click.option("--width", type=click.IntRange(16), default=128, show_default=True)
@click.option("--height", type=click.IntRange(16), default=128, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto: bf16 autocast on CPUs with native bfloat16, else fp32.")  # fmt: skip
@click.option("--quality-data", type=click.Path(exists=True, file_okay=False), default=None,
              help="A dataset folder: also the PSNR of the outputs against float32 ones on its clips.")  # fmt: skip
@click.option("--quality-clips", type=click.IntRange(1), default=8, show_default=True)
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def bench_worldmodel_cmd(config: str, chunks: int, num_steps: int | None, batch: int, width: int, height: int,
                         device: str, precision: str, quality_data: str | None, quality_clips: int,
                         json_path: Path | None) -> None:  # fmt: skip
    """Seconds per chunk and frames per second of a world model (median over chunks)."""
    from .._io import write_json
    from ..bench.worldmodel import bench_worldmodel

    r = bench_worldmodel(config, chunks=chunks, num_steps=num_steps, batch=batch, width=width, height=height,
                         device=device, precision=precision, quality_data=quality_data,
                         quality_clips=quality_clips)  # fmt: skip
    click.echo(f"{r['config']}: {r['seconds_per_chunk']:.3f} s per {r['frames']}-frame window "
               f"({r['new_frames_per_chunk']} new), {r['frames_per_s']:.1f} frames/s, {r['num_steps']} steps, "
               f"{r['width']}x{r['height']}, {r['precision']}, peak {r['peak_memory_mb']:.0f} MB, "
               f"{r['device']}")  # fmt: skip
    if r["quality"]:
        q = r["quality"]
        click.echo(f"  against float32 on {q['clips']} clips: PSNR {q['psnr_vs_fp32_median']:.1f} dB median, "
                   f"{q['psnr_vs_fp32_min']:.1f} dB lowest")  # fmt: skip
    if json_path:
        write_json(json_path, r)
        click.echo(f"wrote {json_path}")


@click.command("overfit")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--config", default="compact", show_default=True)
@click.option("--steps", type=click.IntRange(1), default=400, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--target-db", type=float, default=30.0, show_default=True, help="Stop at this PSNR.")
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def bench_overfit_cmd(data: str, config: str, steps: int, lr: float, target_db: float, json_path: Path | None) -> None:
    """Overfit one clip window: does the conditioning path learn (PSNR of the generated window vs time)?"""
    from .._io import write_json
    from ..bench.worldmodel import bench_overfit

    r = bench_overfit(data, config=config, steps=steps, lr=lr, target_db=target_db)
    for p in r["curve"]:
        click.echo(f"step {p['step']:5d}  {p['seconds']:7.1f} s  PSNR {p['psnr']:.2f} dB  loss {p['loss']:.5f}")
    hit = r["reached"]
    click.echo(f"identity (static video) PSNR {r['identity_psnr']:.2f} dB; "
               + (f"reached {r['target_db']:.0f} dB at step {hit['step']} after {hit['seconds']:.0f} s" if hit
                  else f"did not reach {r['target_db']:.0f} dB in {steps} steps"))  # fmt: skip
    if json_path:
        write_json(json_path, r)
        click.echo(f"wrote {json_path}")
