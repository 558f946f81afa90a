"""``dexsim play``: the interactive web viewer."""

from __future__ import annotations

from pathlib import Path

import click

from ._params import OutputPath, rerun_option


@click.command("play")
@click.option("--task", default=None, help="A built-in task (push-red-box, push-yellow-block, pick-place-green-can, "
              "open-drawer).")  # fmt: skip
@click.option("--scene", "scene_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A captured scene (.ply) instead of a task; its NAME.dexsim.json sidecar places it.")  # fmt: skip
@click.option("--world-model", "world_model", default="default", show_default=True,
              help="default | oracle | PATH | a registered name.")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="The first episode's seed.")
@click.option("--out", type=OutputPath(directory=True), default=Path("play"), show_default=True,
              help="Where the record button saves episodes (mp4 + npz + json).")  # fmt: skip
@rerun_option("every step")
@click.option("--no-physics", is_flag=True, help="Do not run the physics oracle beside the world model.")
def play_cmd(task: str | None, scene_path: Path | None, world_model: str, host: str, port: int, seed: int, out: Path,
             rerun_path: Path | None, no_physics: bool) -> None:  # fmt: skip
    """Drive the hands in a browser and watch the world respond (prints the URL to open)."""
    from ..envs.tasks import TASKS
    from ..play.app import PlayApp, check_port
    from ..play.session import PlaySession

    if task is None and scene_path is None:
        raise click.UsageError("give --task NAME or --scene PLY")
    if task is not None and task not in TASKS:
        raise click.BadParameter(f"unknown task {task!r}; choose one of {sorted(TASKS)}", param_hint="--task")
    if scene_path is not None and not scene_path.is_file():
        raise click.BadParameter(f"{scene_path} is not a readable file", param_hint="--scene")
    check_port(host, port)

    def make_session(s: int) -> PlaySession:
        return PlaySession(task=task, scene=None if scene_path is None else str(scene_path), world_model=world_model,
                           seed=s, physics=not no_physics)  # fmt: skip

    import faulthandler
    import signal

    # Ctrl-C must stop it from the moment the URL is printed, also when it was started with SIGINT ignored (a
    # background job, nohup: a child inherits that); `kill -USR1` prints where a stuck server is, on stderr
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (AttributeError, OSError, ValueError):  # stderr without a file descriptor (an embedding caller)
        pass
    app = PlayApp(make_session, host, port, seed, out, rerun_path)
    app.serve_forever(announce=lambda: click.echo(f"dexsim play: open {app.url}  (Ctrl-C stops)", err=False))


@click.command("play")
@click.option("--task", default="push-red-box", show_default=True)
@click.option("--world-model", "world_model", default="default", show_default=True)
@click.option("--steps", type=click.IntRange(1), default=10, show_default=True,
              help="Key presses to time (memory is read after each).")  # fmt: skip
@click.option("--screenshot", type=OutputPath((".png",)), default=None, help="Save the page after the last step.")
@click.option("--json", "json_path", type=OutputPath((".json",)), default=None)
def bench_play_cmd(task: str, world_model: str, steps: int, screenshot: Path | None, json_path: Path | None) -> None:
    """Drive `dexsim play` in headless Chromium: page load after the URL is printed, key press to the new
    generated chunk on screen (median), the server's memory over the steps, browser console errors."""
    from .._io import write_json
    from ..play.browser import PlayServer, drive

    with PlayServer(["--task", task, "--world-model", world_model]) as server:
        r = drive(server, steps=steps, screenshot=screenshot).summary()
    r.update(task=task, world_model=world_model)
    click.echo(f"page load {r['load_s']:.2f} s after the URL ({r['page_s']:.2f} s from navigation); key press to "
               f"new chunk {r['latency_s_median']:.2f} s (median of {steps}); server memory {r['rss_mb_first']:.0f} "
               f"-> {r['rss_mb_last']:.0f} MB; console errors {len(r['console_errors'])}")  # fmt: skip
    if json_path:
        write_json(json_path, r)
        click.echo(f"wrote {json_path}")
