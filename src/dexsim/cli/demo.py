"""``dexsim demo``: the main job."""

from __future__ import annotations

from pathlib import Path

import click

from ._params import OutputPath


@click.command()
@click.option("--out", "out_dir", type=OutputPath(directory=True), default=Path("outputs/demo"),
              show_default=True)  # fmt: skip
@click.option("--task", default="push-red-box", show_default=True, help="A built-in task.")
@click.option("--world-model", default="default", show_default=True, help="default | oracle | PATH")
@click.option("--seed", type=int, default=1, show_default=True)
def demo(out_dir: Path, task: str, world_model: str, seed: int) -> None:
    """Play a built-in task in DexWorld-v0 with the default world model on the CPU; write demo.mp4,
    sheet.png (static | hand prompt | generated | physics ground truth) and summary.json."""
    from ..demo import run_demo

    summary = run_demo(out_dir, task=task, world_model=world_model, seed=seed)
    for line in summary["report"]:
        click.echo(line)
