"""``dexsim play``: a local web app to drive the hands and watch the world respond.

Built on viser, the Gaussian-splat field's web viewer (nerfstudio's successor viewer; a self-contained
page served from the wheel, so it works with no network). Each browser tab gets its own
:class:`~dexsim.play.session.PlaySession` (its own env); generation runs on the tab's worker thread
while the page keeps drawing (a progress bar shows the world model at work), and the last chunk plays
as a loop in the egocentric panel. The 3D view shows the scene's points, both hands' skeletons, the head
camera's frustum with its latest frame, the task's target and a drag gizmo on each wrist.
"""

from __future__ import annotations

import socket
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .._deps import require
from .session import KEYS, PlaySession, StepView

__all__ = ["PlayApp", "PlayError", "check_port"]

MAX_TABS = 4
#: scene points drawn in the 3D view (the most opaque; the browser draws them on every frame)
VIEW_POINTS = 25_000
#: seconds a tab stays idle after a step before the physics oracle replays it for the panel
PHYSICS_AFTER_S = 0.6
_LOOP_FPS = 8.0


class PlayError(OSError):
    """A problem the user can fix (a port in use, too many tabs): printed as one line."""


def check_port(host: str, port: int) -> None:
    """Raise :class:`PlayError` when ``host:port`` cannot be bound (viser would silently move to another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError as exc:
            raise PlayError(f"cannot serve on {host}:{port}: {exc.strerror or exc} (choose another --port)") from None


def _quat_wxyz(camera: np.ndarray) -> tuple[float, float, float, float]:
    return tuple(float(x) for x in camera[3:7])  # type: ignore[return-value]


class _Tab:
    """One browser tab: its session, GUI handles, worker thread and the loop that plays the last chunk."""

    def __init__(self, app: PlayApp, client: Any, session: PlaySession | None) -> None:
        self.app, self.client = app, client
        self.worker = ThreadPoolExecutor(1, thread_name_prefix=f"dexsim-tab{client.client_id}")
        self.closed = threading.Event()
        self.busy = threading.Lock()
        self.view: StepView | None = None
        gui = client.gui
        self.status = gui.add_markdown("**loading the world...**")
        self.progress = gui.add_progress_bar(100.0, animated=True)
        self.panel = gui.add_image(np.zeros((128, 512, 3), np.uint8), label="static | prompt | generated | physics",
                                   format="png")  # fmt: skip
        self.seed = gui.add_number("seed", initial_value=app.seed, step=1)
        self.step_button = gui.add_button("Step (space)")
        self.reset_button = gui.add_button("Reset (N)")
        self.record_button = gui.add_button("Record episode")
        gui.add_markdown("**Keys** " + "; ".join(f"`{k}` {v[1]}" for k, v in KEYS.items()))
        self.session = session if session is not None else app.make_session(int(self.seed.value))
        self._wire()
        if self.session.scene_path is not None:
            self._setup_controls()
        self._show(self.session.last)
        self.progress.visible = False
        threading.Thread(target=self._loop, daemon=True, name=f"dexsim-loop{client.client_id}").start()

    # ---------------------------------------------------------------------------------- wiring
    def _wire(self) -> None:
        gui, scene, s = self.client.gui, self.client.scene, self.session
        self.step_button.on_click(lambda _: self.request_step())
        self.reset_button.on_click(lambda _: self.request_reset())
        self.record_button.on_click(lambda _: self._submit(self._record))
        for key, (what, help_text) in KEYS.items():
            cmd = gui.add_command(f"{what}: {help_text}", hotkey=key)  # type: ignore[arg-type]
            cmd.on_trigger(lambda _e, k=key: self.on_key(k))
        K = s.env.world.K.numpy()
        fov = 2 * np.arctan(s.env.height / (2 * K[1, 1]))
        self.frustum = scene.add_camera_frustum("/head", fov=float(fov), aspect=s.env.width / s.env.height, scale=0.06,
                                                thickness=2.0, thickness_units="screen",
                                                color=(40, 120, 230))  # fmt: skip
        self.bones = scene.add_line_segments("/hands", np.zeros((1, 2, 3), np.float32), (230, 190, 150),
                                             thickness=3.0, thickness_units="screen")  # fmt: skip
        self.gizmos = []
        for h in range(2):
            g = scene.add_transform_controls(f"/wrist_{('left', 'right')[h]}", scale=0.08, disable_rotations=True)
            g.on_update(lambda e, h=h: self._dragged(h, e))
            self.gizmos.append(g)

    def _setup_controls(self) -> None:
        """Captured scenes: drag the working surface (its gizmo's z axis is the up direction) and the head's
        start pose, apply to see the hands appear in front of the camera, save to the scene's sidecar."""
        gui, scene = self.client.gui, self.client.scene
        with gui.add_folder("Scene set-up"):
            gui.add_markdown("Drag and turn the **surface** gizmo onto the working surface (its blue axis is up) "
                             "and the **head** gizmo to where the head starts, then apply.")  # fmt: skip
            self.half_w = gui.add_number("half width (m)", initial_value=0.35, min=0.05, max=3.0, step=0.05)
            self.half_d = gui.add_number("half depth (m)", initial_value=0.3, min=0.05, max=3.0, step=0.05)
            apply = gui.add_button("Apply: reframe, show the hands")
            save = gui.add_button("Save to the scene's sidecar")
        self.surface = scene.add_transform_controls("/setup/surface", scale=0.25)
        self.head = scene.add_transform_controls("/setup/head", scale=0.15)
        self._place_setup_gizmos()
        apply.on_click(lambda _: self._submit(self._apply_setup, False))
        save.on_click(lambda _: self._submit(self._apply_setup, True))

    def _place_setup_gizmos(self) -> None:
        table, cam = self.session.env.world.table, self.session.env.state.camera
        self.surface.position, self.surface.wxyz = tuple(float(x) for x in table), (1.0, 0.0, 0.0, 0.0)
        self.head.position, self.head.wxyz = tuple(float(x) for x in cam[:3]), _quat_wxyz(cam)

    def _apply_setup(self, save: bool) -> None:
        import torch

        from ..geometry.rotations import quat_to_matrix

        try:
            up = quat_to_matrix(torch.tensor(self.surface.wxyz, dtype=torch.float64)).numpy()[:, 2]
            head = np.concatenate((self.head.position, self.head.wxyz))
            path = self.session.set_up_scene(np.asarray(self.surface.position), up, head,
                                             (float(self.half_w.value), float(self.half_d.value)), save)  # fmt: skip
        except Exception as exc:
            self.client.add_notification("scene set-up failed", str(exc), color="red")
            return
        self.app.show_scene(self.session, self.client)
        self._place_setup_gizmos()
        self._show(self.session.last)
        if path is not None:
            self.client.add_notification("saved", f"wrote {path}", color="green")

    def _dragged(self, hand: int, event: Any) -> None:
        if event.phase != "end":
            return
        self.session.drag_wrist(hand, np.asarray(event.target.position))
        self._submit(self._preview)

    def on_key(self, key: str) -> None:
        if key == "space":
            self.request_step()
        elif key == "N":
            self.request_reset()
        else:
            self.session.press(key)
            self._submit(self._preview)

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` on the tab's worker; its errors become a notification (and a traceback on the console)."""

        def job() -> None:
            try:
                fn(*args)
            except Exception as exc:
                traceback.print_exc()
                if not self.closed.is_set():
                    self.client.add_notification("dexsim play", f"{type(exc).__name__}: {exc}", color="red")

        try:
            self.worker.submit(job)
        except RuntimeError:  # the tab closed: its worker takes nothing more
            pass

    def request_step(self) -> None:
        if not self.busy.acquire(blocking=False):
            return  # a chunk is being generated: the press is dropped, as the progress bar shows
        self.progress.visible = True
        self._submit(self._step)

    def request_reset(self) -> None:
        self._submit(self._reset)

    # ------------------------------------------------------------------------------- work
    def _step(self) -> None:
        try:
            view = self.session.step(physics=False)
            self._show(view)  # the generated chunk first: the physics oracle's frames follow while it plays
        except Exception as exc:  # shown to the user, the tab stays alive
            self.client.add_notification("step failed", str(exc), color="red")
            return
        finally:
            self.progress.visible = False
            self.busy.release()
        timer = threading.Timer(PHYSICS_AFTER_S, self._queue_physics, (view,))
        timer.daemon = True
        timer.start()
        self.app.log_step(self.session, view)

    def _queue_physics(self, view: StepView) -> None:
        if not self.closed.is_set():
            self._submit(self._physics, view)

    def _physics(self, view: StepView) -> None:
        """The physics oracle's frames of the step shown, once the tab has been idle for
        :data:`PHYSICS_AFTER_S` (best effort: skipped when another step came; the recording simulates the whole
        episode again)."""
        if self.busy.locked() or self.session.last is not view:
            return
        if self.session.add_physics().physics is not None:
            self.app.log_physics(view)
            if self.view is view:
                self._show(view, scene=False)

    def _reset(self) -> None:
        self._show(self.session.reset(int(self.seed.value)))

    def _preview(self) -> None:
        if self.busy.locked():  # a step is asked for: this preview would be stale
            return
        last = self.session.last
        prompt = self.session.preview()
        blank = np.full_like(prompt, 96)
        self._show(
            StepView(
                last.static[-1:].repeat(len(prompt), 0), prompt, blank, None, last.reward, last.success, last.steps
            ),
            scene=True,
            status_note="previewing the composed motion (space: generate)",
        )

    def _record(self) -> None:
        try:
            stem = self.app.out / f"episode-{time.strftime('%Y%m%d-%H%M%S')}-tab{self.client.client_id}"
            paths = self.session.record(stem)
            self.client.add_notification("recorded", ", ".join(str(p) for p in paths), color="green")
        except Exception as exc:
            self.client.add_notification("record failed", str(exc), color="red")

    # ------------------------------------------------------------------------------- display
    def _show(self, view: StepView, scene: bool = True, status_note: str = "") -> None:
        self.view = view
        self.panel.image = view.panel(len(view.generated) - 1)  # the frames before the status that announces them
        st = self.session.status()
        verdict = "yes" if st["success"] else "no"
        self.status.content = (f"**{st['task'] or 'free play'}**  \nreward {st['reward']:.3f} | success {verdict} | "
                               f"steps: {st['steps']} | hand {st['active']} | grasp {'/'.join(st['grasp'])}"
                               + (f"  \n*{status_note}*" if status_note else ""))  # fmt: skip
        if scene:
            self._scene()

    def _scene(self) -> None:
        s = self.session
        state = s.env.state
        self.frustum.position = tuple(float(x) for x in state.camera[:3])
        self.frustum.wxyz = _quat_wxyz(state.camera)
        if self.view is not None:
            self.frustum.image = self.view.generated[-1]
        segs = s.hand_segments()
        self.bones.points = segs if len(segs) else np.zeros((1, 2, 3), np.float32)
        for h, g in enumerate(self.gizmos):
            g.position = tuple(float(x) for x in state.palm[h])
            g.visible = bool(s.shown[h])

    def _loop(self) -> None:
        """Play the last chunk as a loop at 8 fps until the tab closes."""
        i = 0
        while not self.closed.wait(1.0 / _LOOP_FPS):
            view = self.view
            if view is None or self.busy.locked():
                continue
            i = (i + 1) % len(view.generated)
            try:
                self.panel.image = view.panel(i)
            except Exception:  # the client went away between the check and the send
                return

    def close(self, wait: bool = False) -> None:
        self.closed.set()
        self.worker.shutdown(wait=wait, cancel_futures=True)


class PlayApp:
    """The server: one :class:`_Tab` per browser tab (at most :data:`MAX_TABS`), shared scene points.
    ``make_session(seed)`` builds a tab's session; ``out``: where recordings go; ``rerun``: a ``.rrd`` file
    that logs every tab's steps."""

    def __init__(self, make_session: Callable[[int], PlaySession], host: str = "127.0.0.1", port: int = 8080,
                 seed: int = 0, out: str | Path = "play", rerun: str | Path | None = None) -> None:  # fmt: skip
        viser = require("viser", "dexsim play")
        check_port(host, port)
        self.make_session, self.seed, self.out = make_session, seed, Path(out)
        self.tabs: dict[int, _Tab] = {}
        self.tabs_lock = threading.Lock()
        self.rerun = None
        self._frame = 0
        first = make_session(seed)  # fail before serving: an unreadable scene or model stops here
        if rerun is not None:
            from .rerun import RerunLog

            self.rerun = RerunLog(rerun)
            self.rerun.scene(*first.scene_points())
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        if self.server.get_port() != port:  # lost a race for the port after the check
            self.server.stop()
            raise PlayError(f"port {port} on {host} is in use (choose another --port)")
        self.server.gui.configure_theme(show_share_button=False, control_width="large")
        self.show_scene(first)
        self._spare: PlaySession | None = first
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)
        self.host, self.port = host, port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def show_scene(self, s: PlaySession, client: Any = None) -> None:
        """The scene's points (and the task's target) in ``s``'s world frame: for every tab, or only for
        ``client`` (a tab that re-framed its captured scene)."""
        scene = self.server.scene if client is None else client.scene
        points, colors = s.scene_points(VIEW_POINTS)
        scene.add_point_cloud("/scene", points, colors, point_size=0.004, precision="float32")
        target = s.target_position()
        if target is not None:
            scene.add_icosphere("/target", radius=0.015, color=(255, 60, 200),
                                position=tuple(float(x) for x in target))  # fmt: skip
        if client is not None:
            return
        table = s.env.world.table
        self.server.initial_camera.position = (table[0], table[1] - 0.9, table[2] + 0.7)
        self.server.initial_camera.look_at = table

    def _connect(self, client: Any) -> None:
        cid = client.client_id
        with self.tabs_lock:  # the slot is reserved before the (slow) build: a tab closed meanwhile is noticed
            if len(self.tabs) >= MAX_TABS:
                client.gui.add_markdown(f"**dexsim play serves at most {MAX_TABS} tabs at once: close one and "
                                        "reload this page.**")  # fmt: skip
                return
            self.tabs[cid] = None
            spare, self._spare = self._spare, None  # the first tab takes the session built at start-up
        try:
            tab = _Tab(self, client, spare)
        except Exception as exc:
            with self.tabs_lock:
                self.tabs.pop(cid, None)
            client.add_notification("could not start this tab", str(exc), color="red")
            return
        with self.tabs_lock:
            gone = cid not in self.tabs
            if not gone:
                self.tabs[cid] = tab
        if gone:
            tab.close()

    def _disconnect(self, client: Any) -> None:
        with self.tabs_lock:
            tab = self.tabs.pop(client.client_id, None)
        if tab is not None:
            tab.close()

    def log_step(self, session: PlaySession, view: StepView) -> None:
        """Log a finished step to the Rerun recording (when there is one)."""
        log = self.rerun
        if log is None:
            return
        traj = session.env.episode_hands()
        c = len(view.generated)
        with self.tabs_lock:
            start, self._frame = self._frame, self._frame + c
        view.log_start = start
        log.frames(start, traj.camera[-c:], session.env.world.K.numpy(), traj.joints[-c:], traj.visible[-c:],
                          static=view.static, prompt=view.prompt, generated=view.generated,
                          physics=view.physics)  # fmt: skip
        log.scalar("reward", start + c - 1, view.reward)
        log.scalar("success", start + c - 1, float(view.success))

    def log_physics(self, view: StepView) -> None:
        """Add a logged step's physics frames (they come once the tab is idle) to the Rerun recording."""
        log = self.rerun
        if log is not None and view.log_start is not None and view.physics is not None:
            log.video("physics", view.log_start, view.physics)

    def serve_forever(self, announce: Callable[[], None] | None = None) -> None:
        """Serve until Ctrl-C (KeyboardInterrupt; ``dexsim play`` makes sure SIGINT raises it), then stop.
        ``announce`` (printing the URL) runs inside the interruptible part: a Ctrl-C that follows it at once, before
        the loop began, still stops the server cleanly."""
        try:
            if announce is not None:
                announce()
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        for tab in list(self.tabs.values()):
            if tab is not None:
                tab.close(wait=True)  # (a step still being logged reaches the recording)
        self.server.stop()
        if self.rerun is not None:
            self.rerun.close()
            self.rerun = None
