"""The ``dexsim`` command: thin wrappers over library functions (tests call the functions)."""

from __future__ import annotations

import click

from .. import __version__
from .doctor import doctor


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dexsim")
def main() -> None:
    """dexsim: a static 3D scene turned into an interactive world for hands."""


main.add_command(doctor)

# Commands that pull heavy modules register lazily-imported implementations.
from .bench import bench  # noqa: E402
from .data import data, datagen  # noqa: E402
from .demo import demo  # noqa: E402
from .hands import hands  # noqa: E402
from .plan import bench_plan_cmd, bench_step_cmd, plan_cmd  # noqa: E402
from .render import render  # noqa: E402
from .scene import scene  # noqa: E402
from .worldmodel import bench_overfit_cmd, bench_worldmodel_cmd, eval_cmd, train_cmd  # noqa: E402

main.add_command(bench)
main.add_command(data)
main.add_command(datagen)
main.add_command(demo)
main.add_command(hands)
main.add_command(render)
main.add_command(scene)
main.add_command(train_cmd)
main.add_command(eval_cmd)
bench.add_command(bench_worldmodel_cmd)
bench.add_command(bench_overfit_cmd)
bench.add_command(bench_plan_cmd)
bench.add_command(bench_step_cmd)
main.add_command(plan_cmd)

__all__ = ["main"]
