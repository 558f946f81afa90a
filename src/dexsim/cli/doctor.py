"""``dexsim doctor``."""

from __future__ import annotations

from pathlib import Path

import click

from ._params import JSON_OUT


@click.command()
@click.option("--json", "json_path", type=JSON_OUT, help="Write the report here.")
def doctor(json_path: Path | None) -> None:
    """Report Python, torch, CUDA, gsplat, MuJoCo GL, open3d, extras and weight folders.

    Exits 0 whenever the checks could run; missing optional parts are reported, not errors.
    """
    from .._io import write_json
    from ..doctor import report, run_checks

    checks = run_checks()
    for c in checks:
        mark = "ok " if c.ok else ("-- " if c.optional else "XX ")
        click.echo(f"[{mark}] {c.name:8s} {c.detail}")
        if not c.ok and c.fix:
            click.echo(f"           fix: {c.fix}")
    data = report(checks)
    if json_path is not None:
        write_json(json_path, data)
        click.echo(f"wrote {json_path}")
    if not data["all_required_ok"]:
        click.echo("some required parts fail: see the fixes above", err=True)
