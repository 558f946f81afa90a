"""``dexsim play``: the session behind a tab (keys, drags, steps, recording), Rerun logs, the command's
errors at the door, and the page in a real browser."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dexsim.cli import main
from dexsim.hands.trajectory import HandTrajectory
from dexsim.play import KEYS, PlaySession
from dexsim.video import read_mp4

pytest.importorskip("viser", reason="the `play` extra (viser) is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def session() -> PlaySession:
    return PlaySession(task="push-red-box", world_model="default", seed=3, physics=True)


def test_keys_compose_the_action_of_the_active_hand(session: PlaySession) -> None:
    session.reset(3)
    session.press("I"), session.press("I"), session.press("I")  # three half steps: clipped at a full one
    session.press("T"), session.press("J"), session.press("G"), session.press("Z")
    a = session.action()
    right, left = a[13:21], a[5:13]
    assert right[1] == 1.0 and right[0] == 0.0 and right[6] == -1.0  # forward, clipped; grasp still open
    assert left[0] == -0.5 and left[6] == 1.0 and a[3] == 0.5  # left hand moved left and closed; head turned
    assert left[7] > 0 and right[7] > 0  # both hands in view
    session.press("V")  # hide the (active) left hand
    assert session.action()[12] < 0
    session.press("backspace")
    assert not session.action()[:5].any() and session.action()[5] == 0.0
    with pytest.raises(ValueError, match="unknown key 'W'"):
        session.press("W")
    assert "W" not in KEYS and "space" in KEYS


def test_a_drag_moves_the_wrist_towards_the_gizmo_at_most_one_step(session: PlaySession) -> None:
    session.reset(3)
    palm = session.env.state.palm[0].copy()
    session.drag_wrist(0, palm + np.array([0.04, 0.0, 1.0]))
    a = session.action()
    assert a[5] == pytest.approx(0.5) and a[7] == 1.0 and session.active == 0


def test_preview_then_step_then_record(session: PlaySession, tmp_path: Path) -> None:
    session.reset(3)
    session.press("I")
    preview = session.preview()
    assert preview.shape == (8, 128, 128, 3) and preview.any()  # the hands drawn before any generation
    assert session.steps == 0
    v1 = session.step()
    v2 = session.step(physics=False)
    assert v2.physics is None and session.add_physics().physics is not None
    assert (v1.steps, v2.steps) == (1, 2) and v2.generated.shape == (8, 128, 128, 3)
    assert v1.panel(0).shape == (128, 4 * 128, 3)
    assert not session.action()[5:8].any()  # the composed motion was consumed
    mp4, npz, meta = session.record(tmp_path / "ep")
    frames = read_mp4(mp4)
    assert frames.shape == (16, 128, 512, 3)
    traj = HandTrajectory.load(npz)
    assert traj.num_frames == 16 and traj.visible.all()
    assert '"seed": 3' in meta.read_text()
    session.reset(4)
    with pytest.raises(RuntimeError, match="nothing to record"):
        session.record(tmp_path / "empty")


def test_rerun_log_holds_the_episode(session: PlaySession, tmp_path: Path) -> None:
    rr = pytest.importorskip("rerun")
    from dexsim.play.rerun import RerunLog

    session.reset(5)
    view = session.step()
    traj = session.env.episode_hands()
    log = RerunLog(tmp_path / "ep.rrd")
    log.scene(*session.scene_points(500))
    log.frames(0, traj.camera, session.env.world.K.numpy(), traj.joints, traj.visible, static=view.static,
               prompt=view.prompt, generated=view.generated, physics=view.physics)  # fmt: skip
    log.scalar("reward", 7, view.reward)
    path = log.close()
    assert path.read_bytes()[:4] == b"RRF2" and not (tmp_path / "ep.rrd.part").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        rec = rr.recording.load_recording(str(path))
    paths = {str(c.entity_path) for c in rec.schema().component_columns()}
    for entity in ("/world/scene", "/world/camera", "/world/hands/left", "/world/hands/right", "/video/generated",
                   "/video/physics", "/reward"):  # fmt: skip
        assert entity in paths
    with pytest.raises(ValueError, match=r"\.rrd"):
        RerunLog(tmp_path / "ep.mp4")


def test_play_refuses_bad_input_before_serving(tmp_path: Path) -> None:
    bad_ply = tmp_path / "scene.ply"
    bad_ply.write_text("not a ply")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cases = {
            "unknown task 'push-the-moon'": ["--task", "push-the-moon"],
            "is not a readable file": ["--scene", str(tmp_path / "missing.ply")],
            "give --task NAME or --scene PLY": [],
            "in use": ["--task", "push-red-box", "--port", str(port)],
            "scene.ply": ["--scene", str(bad_ply), "--port", str(_free_port())],
        }
        for message, args in cases.items():
            r = CliRunner().invoke(main, ["play", *args])
            assert r.exit_code == 2, (args, r.output)
            assert message in r.output and "Traceback" not in r.output
            assert len(r.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_page_steps_the_world_in_a_real_browser(tmp_path: Path) -> None:
    pytest.importorskip("playwright", reason="the browser test needs playwright (the `play` extra)")
    from dexsim.play.browser import PlayServer, chromium_path, drive

    if chromium_path() is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    with PlayServer(["--task", "push-red-box", "--out", str(tmp_path / "rec"),
                     "--rerun", str(tmp_path / "play.rrd")]) as server:  # fmt: skip
        result = drive(server, steps=3, screenshot=tmp_path / "page.png", second_tab=True)
    tail = "".join(server.lines)[-6000:]
    assert server.proc.poll() is not None and server.proc.returncode == 0, tail  # Ctrl-C left no process
    assert result.panel_changed, "the egocentric panel did not change after a step"
    assert result.rewards[0] != "0.000" and len(result.latency_s) == 3
    assert result.console_errors == []
    assert result.second_tab_own_env  # a second tab started its own episode; the first kept its steps
    assert (tmp_path / "page.png").stat().st_size > 10_000
    assert (tmp_path / "play.rrd").read_bytes()[:4] == b"RRF2"


def _entities(path: Path) -> set[str]:
    rr = pytest.importorskip("rerun")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        rec = rr.recording.load_recording(str(path))
    return {str(c.entity_path) for c in rec.schema().component_columns()}


def test_plan_and_evaluate_write_rerun_recordings(tmp_path: Path) -> None:
    pytest.importorskip("rerun")
    plan = tmp_path / "plan.rrd"
    r = CliRunner().invoke(main, ["plan", "--model", "oracle", "--candidates", "2", "--seed", "1", "--rerun",
                                  str(plan)], catch_exceptions=False)  # fmt: skip
    assert r.exit_code == 0, r.output
    got = _entities(plan)
    assert {"/world/scene", "/world/camera", "/video/generated", "/video/physics", "/candidates/rank1/generated",
            "/candidates/rank2/physics", "/goal"} <= got  # fmt: skip
    ev = tmp_path / "eval.rrd"
    r = CliRunner().invoke(main, ["evaluate", "--task", "push-red-box", "--episodes", "1", "--world-model", "oracle",
                                  "--rerun", str(ev)], catch_exceptions=False)  # fmt: skip
    assert r.exit_code == 0, r.output
    got = _entities(ev)
    assert {"/world/scene", "/world/hands/right", "/video/generated", "/video/physics", "/success"} <= got
    r = CliRunner().invoke(main, ["plan", "--rerun", str(tmp_path / "plan.txt")])
    assert r.exit_code == 2 and ".rrd" in r.output


def _tilted_floor(path: Path) -> np.ndarray:
    """A captured-looking splat: a 2 x 2 m floor of grey Gaussians whose up is file -y (COLMAP style); returns
    that up in the file frame."""
    import torch

    from dexsim.scene.gaussians import GaussianScene
    from dexsim.scene.ply import write_ply

    rng = np.random.default_rng(0)
    n = 4000
    xz = rng.uniform(-1.0, 1.0, (n, 2))
    means = np.stack([xz[:, 0], np.full(n, 0.3), xz[:, 1]], 1) + rng.normal(0, 0.002, (n, 3))
    scene = GaussianScene(means=torch.tensor(means, dtype=torch.float32), quats=torch.tensor([[1.0, 0, 0, 0]] * n),
                          log_scales=torch.full((n, 3), np.log(0.02)), opacity_logits=torch.full((n,), 3.0),
                          sh=torch.full((n, 1, 3), 0.3))  # fmt: skip
    write_ply(scene, path)
    return np.array([0.0, -1.0, 0.0])


def test_a_captured_scene_is_set_up_by_hand_and_saved(tmp_path: Path) -> None:
    import torch

    from dexsim.geometry.camera import look_at
    from dexsim.geometry.rotations import quat_to_matrix
    from dexsim.geometry.se3 import viewmat_to_pose7
    from dexsim.scene.metadata import read_metadata, sidecar_path

    ply = tmp_path / "room.ply"
    _tilted_floor(ply)
    s = PlaySession(scene=str(ply), world_model="default", seed=0)
    # the person tilts the surface gizmo 20 degrees about x and puts the head 60 cm back, 45 cm up, looking down
    tilt = np.deg2rad(20.0)
    normal = np.array([0.0, -np.sin(tilt), np.cos(tilt)])
    point = np.array([0.1, 0.2, 0.0])
    # ... looking along -x: the new frame turns so that the head looks along +y (the env's "forward")
    head = viewmat_to_pose7(look_at(torch.tensor([0.7, 0.2, 0.45]), torch.tensor([0.1, 0.2, 0.0]))).numpy()
    before = np.asarray(s.metadata().world_from_file)[:3, :3]
    assert s.set_up_scene(point, normal, head, (0.3, 0.25)) is None  # applied, not saved
    meta = s.metadata()
    turn = np.asarray(meta.world_from_file)[:3, :3] @ np.linalg.inv(before)  # old world -> new world
    assert np.allclose(turn @ normal, [0.0, 0.0, 1.0], atol=1e-9)  # the surface's normal is the new up
    cam_rot = quat_to_matrix(torch.tensor(meta.start_camera[3:], dtype=torch.float64)).numpy()
    head_rot = quat_to_matrix(torch.tensor(head[3:], dtype=torch.float64)).numpy()
    assert np.allclose(cam_rot, turn @ head_rot, atol=1e-6)  # the head pose moved with the frame
    forward = cam_rot[:, 2]
    assert forward[1] > 0 and abs(forward[0]) < 1e-6  # looks along +y
    lo, hi = np.asarray(meta.workspace_min), np.asarray(meta.workspace_max)
    assert np.allclose(hi[:2] - lo[:2], [0.6, 0.5]) and meta.estimated in ([], ["metric_scale"])
    table = s.env.world.table
    assert np.isclose(table[2], lo[2])
    assert np.linalg.norm(s.env.state.camera[:3] - np.asarray(meta.start_camera[:3])) < 0.04  # start jitter 2 cm
    prompt = s.preview()  # both hands shown: they must appear in the new head view
    assert (prompt[-1].max(-1) > 0).mean() > 0.005
    path = s.set_up_scene(np.asarray(table), np.array([0.0, 0.0, 1.0]), np.asarray(meta.start_camera), (0.3, 0.25),
                          save=True)  # fmt: skip
    assert path == sidecar_path(ply) and read_metadata(path).workspace_min == s.metadata().workspace_min
    with pytest.raises(ValueError, match="surface_normal"):
        s.set_up_scene(point, np.zeros(3), head)


@pytest.mark.slow
def test_ctrl_c_stops_a_server_started_with_sigint_ignored(tmp_path: Path) -> None:
    import signal

    pytest.importorskip("viser", reason="dexsim play needs viser (the `play` extra)")
    from dexsim.play.browser import PlayServer

    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job or nohup starts it: inherited
    try:
        server = PlayServer(["--task", "push-red-box", "--out", str(tmp_path / "rec")])
    finally:
        signal.signal(signal.SIGINT, old)
    assert server.stop(grace=60) == 0, "".join(server.lines)[-3000:]
