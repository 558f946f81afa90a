"""``dexsim evaluate`` and ``dexsim bench evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ._params import JSON_OUT, OutputPath, rerun_option

PNG_OUT = OutputPath((".png",))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _interval(ci: list[float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def _echo_report(r: dict[str, Any]) -> None:
    click.echo(f"{r['task']} / {r['policy']} with {r['world_model']}: success {_pct(r['success_rate'])}"
               f"{_interval(r['ci95'])} over {r['num_episodes']} episodes (95% Wilson)")  # fmt: skip
    if r["oracle"]:
        click.echo(f"  physics: {_pct(r['oracle_success_rate'])}{_interval(r['oracle_ci95'])}; paired agreement "
                   f"{_pct(r['paired_agreement'])}, kappa {_pct(r['kappa'])}; the detector on the physics frames "
                   f"agrees {_pct(r['detector_agreement_on_oracle'])}")  # fmt: skip
    if r["seconds_per_episode"] is not None:
        click.echo(f"  {r['seconds_per_episode']:.2f} s per episode (median)")


@click.command("evaluate")
@click.option("--task", default=None, help="A built-in task (push-red-box, push-yellow-block, pick-place-green-can, "
              "open-drawer).")  # fmt: skip
@click.option("--policy", default="reference", show_default=True,
              help="A built-in ladder policy (reference, noise-2cm, noise-4cm, noise-8cm, stop-short, wrong-target, "
                   "wave, random-delta) or module:attribute (a callable obs -> action, or a class made with one "
                   "env), importable from PYTHONPATH.")  # fmt: skip
@click.option("--episodes", type=int, default=10, show_default=True, help="Episodes (in all shards together).")
@click.option("--seed", type=int, default=0, show_default=True, help="Episode e is reset with seed SEED * 100003 + e.")
@click.option("--world-model", default="default", show_default=True, help="default | oracle | PATH")
@click.option("--action-mode", type=click.Choice(["delta", "mano", "keypoints"]), default=None,
              help="The action mode of a policy that declares none (default: delta).")  # fmt: skip
@click.option("--no-oracle", is_flag=True, help="Do not replay the episodes in the physics oracle.")
@click.option("--batch", "batch_size", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Episodes run together in one vector env.")  # fmt: skip
@click.option("--size", type=click.IntRange(16, 1024), default=None,
              help="Frame size of the oracle world model (a learned model has its own; default 128).")  # fmt: skip
@click.option("--sheet", "sheet_path", type=PNG_OUT, default=None,
              help="Contact sheet of the first episodes, generated vs physics (default: beside --json).")  # fmt: skip
@click.option("--merge", is_flag=True, help="Merge the shard JSONs given as arguments into one report.")
@rerun_option("the first episodes (as many as the sheet shows)")
@click.option("--json", "json_path", type=JSON_OUT, default=None)
@click.argument("shards", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def evaluate_cmd(task: str | None, policy: str, episodes: int, seed: int, world_model: str, action_mode: str | None,
                 no_oracle: bool, batch_size: int, size: int | None, sheet_path: Path | None, merge: bool,
                 rerun_path: Path | None, json_path: Path | None, shards: tuple[Path, ...]) -> None:  # fmt: skip
    """Evaluate a policy on a task with a world model and, on built-in scenes, check every episode
    against physics (the same seeds and actions replayed in the oracle).

    Shards across processes and machines by RANK/WORLD_SIZE (torchrun, accelerate launch) or
    SLURM_PROCID/SLURM_NTASKS: each shard writes JSON.shardR-of-W.json; `dexsim evaluate --merge
    SHARD_JSON... --json JSON` combines them into the same report.
    """
    from .._io import write_json
    from ..envs.evaluate import evaluate, merge_reports, shard_path

    if merge:
        if not shards:
            raise click.UsageError("--merge needs the shard JSON files as arguments")
        reports = []
        for p in shards:
            try:
                reports.append(json.loads(p.read_text()))
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}: not JSON ({e})") from None
        report = merge_reports(reports)
        _echo_report(report)
        if json_path:
            write_json(json_path, report)
            click.echo(f"wrote {json_path}")
        return
    if shards:
        raise click.UsageError(f"unexpected arguments {[str(s) for s in shards]} (shard JSONs go with --merge)")
    if task is None:
        raise click.UsageError("give --task (or --merge SHARD_JSON...)")
    result = evaluate(task, policy, episodes, seed, world_model, action_mode, oracle=not no_oracle,
                      batch_size=batch_size, size=size)  # fmt: skip
    report = result.report
    _echo_report(report)
    if rerun_path:
        from ..play.rerun import log_evaluation

        click.echo(f"wrote {log_evaluation(rerun_path, result)}")
    rank, world = report["shard"]["rank"], report["shard"]["world_size"]
    if json_path:
        json_path = shard_path(json_path, rank, world)
        write_json(json_path, report)
        click.echo(f"wrote {json_path}")
    sheet = sheet_path or (json_path.with_suffix(".png") if json_path else None)
    if sheet is not None and result.videos:
        from ..video import contact_sheet, write_png

        sheet = shard_path(sheet, rank, world) if sheet_path else sheet
        write_png(sheet, contact_sheet(result.videos, max_frames=8))
        click.echo(f"wrote {sheet}")


@click.command("evaluate")
@click.option("--task", "tasks", default="all", show_default=True, help="all | NAME[,NAME...]")
@click.option("--policies", default="all", show_default=True, help="all (the ladder) | NAME[,NAME...]")
@click.option("--episodes", type=click.IntRange(1, 100_000), default=10, show_default=True,
              help="Episodes per policy and task.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--world-model", default="default", show_default=True, help="default | oracle | PATH")
@click.option("--batch", "batch_size", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option("--size", type=click.IntRange(16, 1024), default=None,
              help="Frame size of the oracle world model (default 128).")  # fmt: skip
@click.option("--plot", "plot_path", type=PNG_OUT, default=None,
              help="Scatter plot PNG of the rates (default: beside --json).")  # fmt: skip
@click.option("--json", "json_path", type=JSON_OUT, default=None)
def bench_evaluate_cmd(tasks: str, policies: str, episodes: int, seed: int, world_model: str, batch_size: int,
                       size: int | None, plot_path: Path | None, json_path: Path | None) -> None:  # fmt: skip
    """Agreement of a world model's policy verdicts with physics: every task x the policy ladder x N
    episodes (rates, Pearson, Spearman, MMRV, paired agreement, kappa, the detector's agreement)."""
    from .._io import write_json
    from ..bench.evaluate import bench_evaluate, scatter_plot

    r = bench_evaluate(None if tasks == "all" else [t.strip() for t in tasks.split(",") if t.strip()], episodes,
                       seed, world_model, None if policies == "all" else [p.strip() for p in policies.split(",")
                                                                           if p.strip()],
                       batch_size=batch_size, size=size)  # fmt: skip
    for row in r["policies"]:
        click.echo(f"  {row['task']:22s} {row['policy']:13s} world model {row['world_model_rate']:.2f}  "
                   f"physics {row['oracle_rate']:.2f}")  # fmt: skip
    click.echo(f"{r['world_model']}: pearson {_pct(r['pearson'])}, spearman {_pct(r['spearman'])}, mmrv "
               f"{_pct(r['mmrv'])}, paired agreement {_pct(r['paired_agreement'])}, kappa {_pct(r['kappa'])}; "
               f"detector on physics frames >= {_pct(r['detector_agreement_on_oracle'])} per task; end-position "
               f"error {_pct(r['end_position_error_px'])} px; {_pct(r['seconds_per_episode'])} s/episode")  # fmt: skip
    if json_path:
        write_json(json_path, r)
        click.echo(f"wrote {json_path}")
    plot = plot_path or (json_path.with_suffix(".png") if json_path else None)
    if plot is not None:
        from ..video import write_png

        title = f"{r['world_model']}: world-model success rate (y) vs physics (x), per policy"
        write_png(plot, scatter_plot(r["policies"], title=title))
        click.echo(f"wrote {plot}")
