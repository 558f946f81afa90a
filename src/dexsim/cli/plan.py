"""``dexsim plan``, ``dexsim bench plan`` and ``dexsim bench step``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ..bench.plan import DEFAULT_SCORER, MEDIA_KEYS
from ..planners.proposals import PROPOSAL_SOURCES
from ..scoring import SCORERS
from ._params import JSON_OUT, OutputPath, rerun_option


def _model(name: str) -> object:
    """``oracle`` stays a name (each instance ranks with its own physics); anything else is loaded."""
    from ..worldmodel import load

    return name if name == "oracle" else load(name)


def _scorer_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--scorer`` and ``--weights-dir``."""
    command = click.option("--weights-dir", type=OutputPath(directory=True), default=None,
                           help="Folder of the scorer's weights (LPIPS: a torch hub folder; DreamSim: its "
                                "cache folder).")(command)  # fmt: skip
    return click.option("--scorer", "scorer_name", type=click.Choice(SCORERS), default=DEFAULT_SCORER,
                        show_default=True, help="Goal scorer; lpips*/dreamsim* read local weights (see "
                        "--weights-dir).")(command)  # fmt: skip


def _scorer(name: str, weights_dir: Path | None) -> object:
    from ..scoring import make_scorer

    if weights_dir is None:
        return make_scorer(name)
    if not name.startswith(("lpips", "dreamsim")):
        raise click.BadParameter(f"scorer {name!r} reads no weights; --weights-dir is for lpips* and dreamsim*",
                                 param_hint="--weights-dir")  # fmt: skip
    key = "weights_dir" if name.startswith("lpips") else "cache_dir"
    return make_scorer(name, **{key: weights_dir})


def _proposal_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--proposals``, ``--forecaster`` and ``--refine``."""
    command = click.option("--refine", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
                           help="--proposals forecast: how far back towards noise the forecaster re-draws "
                           "the goal-grounded actions it retrieved (0: as retrieved, 1: from noise alone)."
                           )(command)  # fmt: skip
    command = click.option("--forecaster", "forecaster_name", default="default", show_default=True,
                           help="The forecaster of --proposals forecast: default | PATH.")(command)  # fmt: skip
    return click.option("--proposals", "proposals_name", type=click.Choice(PROPOSAL_SOURCES), default="primitives",
                        show_default=True, help="Where candidates come from: scripted primitives, or the hand "
                        "forecaster grounded in the goal image and text.")(command)  # fmt: skip


def _proposals(name: str, forecaster: str, refine: float = 0.0) -> object:
    from ..planners.proposals import proposal_source

    try:
        return proposal_source(name, forecaster, refine)
    except FileNotFoundError as e:
        raise click.BadParameter(str(e), param_hint="--forecaster") from None


@click.command("plan")
@click.option("--task", default="push-red-box", show_default=True)
@click.option("--candidates", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model", "model_name", default="default", show_default=True, help="default | oracle | PATH")
@_scorer_options
@_proposal_options
@click.option("--out", "out_dir", type=OutputPath(directory=True), default=None,
              help="Write sheet.png (goal, then candidates best first), proposals.png (every candidate's hand "
              "paths over the start frame) and the predicted videos.")  # fmt: skip
@rerun_option("the instance (scene, chosen candidate's episode, every candidate's videos)")
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def plan_cmd(task: str, candidates: int, seed: int, model_name: str, scorer_name: str, weights_dir: Path | None,
             proposals_name: str, forecaster_name: str, refine: float, out_dir: Path | None, rerun_path: Path | None,
             json_path: Path | None) -> None:  # fmt: skip
    """Rank N candidate actions for a held-out instance of TASK with a world model; check with physics."""
    import numpy as np

    from .._io import write_json
    from ..bench.plan import plan_instance

    scorer = _scorer(scorer_name, weights_dir)
    source = _proposals(proposals_name, forecaster_name, refine)
    r = plan_instance(_model(model_name), task, candidates, seed, scorer=scorer, proposals=source)
    order = np.argsort(-np.asarray(r["model_scores"]))
    for rank, i in enumerate(order):
        mark = "*" if i == r["chosen"] else " "
        dist = 100 * r["oracle_distance_m"][i]
        click.echo(f"{mark}{rank + 1}. score {r['model_scores'][i]:6.2f}  physics: {dist:5.1f} cm from the goal  "
                   f"{r['candidate_texts'][i]}")  # fmt: skip
    click.echo(f"chosen candidate is the physics-best: {r['top1']}; succeeds: {r['success']}")
    if out_dir:
        from ..forecast.draw import draw_forecasts
        from ..video import contact_sheet, write_mp4, write_png

        goal = r["goal"]
        rows = [("goal (start, goal)", np.stack([goal.start, goal.image]))]
        rows += [(f"#{k + 1}: {r['candidate_texts'][i]}", r["videos"][i]) for k, i in enumerate(order)]
        write_png(out_dir / "sheet.png", contact_sheet(rows, max_frames=8))
        write_mp4(out_dir / "candidates.mp4", np.concatenate(list(r["videos"][order]), axis=2), fps=8)
        hands = r["rollout"].hands
        drawn = draw_forecasts(goal.start, np.stack([h.joints for h in hands]), np.stack([h.visible for h in hands]),
                               hands[0].camera[0], r["K"])  # fmt: skip
        side = np.concatenate((drawn, goal.image), axis=1)
        write_png(out_dir / "proposals.png", np.repeat(np.repeat(side, 3, 0), 3, 1))
        click.echo(f"wrote {out_dir / 'sheet.png'}, {out_dir / 'proposals.png'} and {out_dir / 'candidates.mp4'}")
    if json_path:
        write_json(json_path, {k: v for k, v in r.items() if k not in MEDIA_KEYS})
    if rerun_path:
        from ..play.rerun import log_plan

        click.echo(f"wrote {log_plan(rerun_path, r)}")


@click.command("plan")
@click.option("--task", default="push-red-box", show_default=True, help="all | NAME[,NAME...]")
@click.option("--tasks", "num_tasks", type=click.IntRange(1), default=20, show_default=True)
@click.option("--candidates", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model", "model_name", default="default", show_default=True)
@click.option("--cost-instances", type=click.IntRange(0), default=2, show_default=True)
@_scorer_options
@_proposal_options
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def bench_plan_cmd(task: str, num_tasks: int, candidates: int, seed: int, model_name: str, cost_instances: int,
                   scorer_name: str, weights_dir: Path | None, proposals_name: str, forecaster_name: str, refine: float,
                   json_path: Path | None) -> None:  # fmt: skip
    """Top-1 agreement of world-model ranking with the physics oracle over held-out task instances
    (--tasks instances of each task; pooled and per task)."""
    from .._io import write_json
    from ..bench.plan import bench_plan, plan_tasks

    try:
        plan_tasks(task)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--task") from None
    scorer = _scorer(scorer_name, weights_dir)
    source = _proposals(proposals_name, forecaster_name, refine)
    r = bench_plan(_model(model_name), task, num_tasks, candidates, seed, cost_instances=cost_instances, scorer=scorer,
                   proposals=source)  # fmt: skip
    click.echo(f"{r['tasks']} instances x {len(r['per_task'])} task(s) x {r['candidates']} candidates: "
               f"top1_agreement {r['top1_agreement']:.2f} "
               f"(random {r['random_top1']:.2f}), kendall_tau {r['kendall_tau']:.2f}, success {r['success_rate']:.2f} "
               f"(candidates {r['candidate_success_rate']:.2f}), {r['seconds_per_candidate']:.2f} s/candidate, "
               f"batched_cost_ratio {r['batched_cost_ratio']:.2f}, {r['planning_s']:.2f} s/plan "
               f"({r['proposals']})")  # fmt: skip
    if len(r["per_task"]) > 1:
        for name, t in r["per_task"].items():
            click.echo(f"  {name:<22} top1 {t['top1_agreement']:.2f} (random {t['random_top1']:.2f}), "
                       f"tau {t['kendall_tau']:.2f}, success {t['success_rate']:.2f}")  # fmt: skip
    if json_path:
        write_json(json_path, r)
        click.echo(f"wrote {json_path}")


@click.command("step")
@click.option("--model", "model_name", default="default", show_default=True)
@click.option("--steps", type=click.IntRange(1), default=5, show_default=True)
@click.option("--envs", default="1,4,8", show_default=True, help="Vector-env sizes to time.")
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def bench_step_cmd(model_name: str, steps: int, envs: str, json_path: Path | None) -> None:
    """Median env.step latency, and vector-env frames per second against as many sequential envs."""
    from .._io import write_json
    from ..bench.step import bench_step

    r = bench_step(model_name, steps=steps, sizes=[int(x) for x in envs.split(",")])
    click.echo(f"env.step median {r['step_s_median']:.3f} s ({r['chunk']} frames at {r['width']}x{r['height']})")
    click.echo("  by stage (median s): " + ", ".join(f"{k} {v:.3f}" for k, v in r["breakdown_s"].items()))
    for n, v in r["vector"].items():
        click.echo(f"  {n} envs: vector {v['vector_fps']:.1f} frames/s, sequential {v['sequential_fps']:.1f} frames/s, "
                   f"speed-up {v['speedup']:.2f}x")  # fmt: skip
    if json_path:
        write_json(json_path, r)
        click.echo(f"wrote {json_path}")
