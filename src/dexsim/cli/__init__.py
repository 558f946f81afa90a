"""The ``dexsim`` command: thin wrappers over library functions (tests call the functions)."""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import __version__
from .._deps import MissingDependencyError
from .doctor import doctor

#: errors a user can cause and fix: one line and exit code 2 (``--debug`` shows the traceback)
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, MissingDependencyError)


class UserError(click.ClickException):
    """An expected error: printed as one line, exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"dexsim: error: {self.format_message()}", err=True)


class DexsimGroup(click.Group):
    """The ``dexsim`` group: expected errors (bad values, missing files, missing extras) and usage
    errors print one line and exit 2; ``--debug`` raises them with their traceback instead."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EXPECTED_ERRORS as e:
            if ctx.params.get("debug"):
                raise
            raise UserError(str(e) or type(e).__name__) from e

    def main(self, *args: Any, **kwargs: Any) -> Any:
        standalone = kwargs.pop("standalone_mode", True)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as e:  # one line instead of usage + hint + error
            if not standalone:
                raise
            click.echo(f"dexsim: error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            if not standalone:
                raise
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Exit as e:
            if not standalone:
                raise
            sys.exit(e.exit_code)
        except click.Abort:
            if not standalone:
                raise
            click.echo("Aborted!", err=True)
            sys.exit(1)


@click.group(cls=DexsimGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dexsim")
@click.option("--debug", is_flag=True, help="Show the traceback of an expected error instead of one line.")
def main(debug: bool) -> None:
    """dexsim: a static 3D scene turned into an interactive world for hands."""


main.add_command(doctor)

# Commands that pull heavy modules register lazily-imported implementations.
from .bench import bench  # noqa: E402
from .data import data, datagen  # noqa: E402
from .demo import demo  # noqa: E402
from .evaluate import bench_evaluate_cmd, evaluate_cmd  # noqa: E402
from .forecast import bench_forecast_cmd  # noqa: E402
from .hands import hands  # noqa: E402
from .plan import bench_plan_cmd, bench_step_cmd, plan_cmd  # noqa: E402
from .play import bench_play_cmd, play_cmd  # noqa: E402
from .render import render  # noqa: E402
from .scene import scene  # noqa: E402
from .worldmodel import bench_overfit_cmd, bench_worldmodel_cmd, eval_cmd, export_cmd, train_cmd  # noqa: E402

main.add_command(bench)
main.add_command(data)
main.add_command(datagen)
main.add_command(demo)
main.add_command(hands)
main.add_command(render)
main.add_command(scene)
main.add_command(train_cmd)
main.add_command(export_cmd)
main.add_command(eval_cmd)
bench.add_command(bench_worldmodel_cmd)
bench.add_command(bench_overfit_cmd)
bench.add_command(bench_plan_cmd)
bench.add_command(bench_step_cmd)
main.add_command(plan_cmd)
main.add_command(evaluate_cmd)
main.add_command(play_cmd)
bench.add_command(bench_evaluate_cmd)
bench.add_command(bench_forecast_cmd)
bench.add_command(bench_play_cmd)

__all__ = ["main"]
