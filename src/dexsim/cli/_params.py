"""Click parameter types that check output paths at the door, before any work starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .._io import check_output_path

__all__ = ["JSON_OUT", "OutputPath", "rerun_option"]


class OutputPath(click.ParamType):
    """A path to write: a file ending in one of ``suffixes`` or a folder, checked by
    :func:`dexsim._io.check_output_path` when the command line is parsed."""

    name = "path"

    def __init__(self, suffixes: tuple[str, ...] = (), directory: bool = False) -> None:
        self.suffixes, self.directory = tuple(s.lower() for s in suffixes), directory

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        opt = param.opts[0] if param is not None and param.opts else "output"
        try:
            return check_output_path(value, self.suffixes, self.directory, what=opt)
        except ValueError as e:
            self.fail(str(e), param, ctx)


#: ``--json PATH``: a writable ``.json`` file path
JSON_OUT = OutputPath((".json",))


def rerun_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--rerun FILE.rrd``: log ``what`` as a Rerun recording (``rerun_path``)."""
    return click.option("--rerun", "rerun_path", type=OutputPath((".rrd",)), default=None,
                        help=f"Log {what} to this .rrd file (Rerun).")  # fmt: skip
