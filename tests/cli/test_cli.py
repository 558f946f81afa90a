from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from dexsim import __version__
from dexsim.cli import main
from dexsim.scene import write_ply
from dexsim.video import read_mp4

from ..scene.test_render import random_scene


def run(args: list[str]) -> str:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_version_and_help_for_every_command() -> None:
    assert __version__ in run(["--version"])
    commands = [
        [],
        ["doctor"],
        ["demo"],
        ["render"],
        ["bench"],
        ["bench", "render"],
        ["bench", "prompts"],
        ["scene"],
        ["scene", "inspect"],
        ["hands"],
        ["hands", "import-aria"],
        ["hands", "render"],
        ["train"],
        ["eval"],
        ["plan"],
        ["bench", "worldmodel"],
        ["bench", "overfit"],
        ["bench", "plan"],
        ["bench", "step"],
        ["datagen"],
    ]
    for cmd in commands:
        assert "Usage:" in run([*cmd, "--help"])


def _doctor(tmp_path: Path) -> tuple[dict, str]:
    out = tmp_path / "doctor.json"
    result = CliRunner().invoke(main, ["doctor", "--json", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output  # the doctor exits 0 whenever it could run
    return json.loads(out.read_text()), result.output


def test_doctor_json_reads_the_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the doctor reports equals what the test finds on this machine by itself."""
    import importlib.metadata
    import importlib.util
    import platform

    import torch

    from dexsim._deps import OPTIONAL_DEPENDENCIES

    # weight folders: two missing, two present (wherever the user's own caches are)
    monkeypatch.setenv("DEXSIM_HOME", str(tmp_path / "no-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hub"))
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "ds").mkdir()
    monkeypatch.setenv("DEXSIM_DREAMSIM_DIR", str(tmp_path / "ds"))
    data, text = _doctor(tmp_path)

    assert data["python"] == platform.python_version()
    assert data["torch"] == torch.__version__
    assert data["cuda_available"] == torch.cuda.is_available()
    if not torch.cuda.is_available() or importlib.util.find_spec("gsplat") is None:
        assert data["gsplat_usable"] is False
    extras: dict[str, bool] = {}
    for module, (extra, _) in OPTIONAL_DEPENDENCIES.items():
        extras[extra] = extras.get(extra, True) and importlib.util.find_spec(module) is not None
    assert data["extras"] == extras
    assert data["extras"]["dev"]  # pytest and hypothesis run this very test
    assert data["mujoco_gl"] == (os.environ.get("MUJOCO_GL") or "osmesa")
    assert data["open3d"] in (None, importlib.metadata.version("open3d"))
    w = data["weights"]
    assert w["paths"]["dexsim_home"] == str(tmp_path / "no-home") and not w["exists"]["dexsim_home"]
    assert w["paths"]["huggingface_hub_cache"] == str(tmp_path / "no-hub") and not w["exists"]["huggingface_hub_cache"]
    assert w["paths"]["torch_hub_checkpoints"] == str(tmp_path / "torch" / "hub" / "checkpoints")
    assert w["exists"]["torch_hub_checkpoints"] and w["exists"]["dreamsim"]
    assert f"dexsim_home: {tmp_path / 'no-home'} (absent)" in text
    assert f"dreamsim: {tmp_path / 'ds'};" in text  # present: not marked absent
    # the printed lines and the verdict follow the checks
    checks = {c["name"]: c for c in data["checks"]}
    for name, c in checks.items():
        mark = "ok " if c["ok"] else ("-- " if c["optional"] else "XX ")
        assert f"[{mark}] {name}" in text
    assert data["all_required_ok"] == all(c["ok"] for c in checks.values() if not c["optional"])
    assert data["all_required_ok"] == ("some required parts fail" not in text)


def test_doctor_reports_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Break the set-up on purpose (an unusable MuJoCo GL backend, an optional package hidden): the
    doctor says so, with the fix, and still exits 0."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "hypothesis" else find_spec(name, *a)
    )
    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")
    data, text = _doctor(tmp_path)

    checks = {c["name"]: c for c in data["checks"]}
    assert data["mujoco_gl"] == "no-such-backend" and data["mujoco_offscreen_ok"] is False
    assert not checks["mujoco"]["ok"] and "MUJOCO_GL=osmesa" in checks["mujoco"]["fix"]
    assert "[XX ] mujoco" in text and "fix: on a machine without a display" in text
    assert data["all_required_ok"] is False and "some required parts fail" in text
    assert data["extras"]["dev"] is False and "dev=no" in checks["extras"]["detail"]
    assert "dev" in checks["extras"]["fix"]


def test_render_writes_video_and_sheet(tmp_path: Path) -> None:
    """The video and the sheet show what the library renders for the same scene and cameras."""
    from dexsim.scene import read_scene
    from dexsim.scene.camera_path import default_path
    from dexsim.scene.render import render

    ply = write_ply(random_scene(300, 2, sh_degree=1), tmp_path / "s.ply")
    out = tmp_path / "v.mp4"
    run(["render", "--scene", str(ply), "--out", str(out), "--width", "32", "--height", "24", "--frames", "3"])
    scene = read_scene(ply)
    cams = default_path(scene, 3, 32, 24)
    ref = render(scene, cams.viewmats, cams.Ks, 32, 24, background=(0.0, 0.0, 0.0))
    rgb = ref.rgb_uint8().numpy()
    assert rgb.std() > 10 and np.abs(np.diff(rgb.astype(int), axis=0)).mean() > 1  # not blank; the camera moves
    frames = read_mp4(out)
    assert frames.shape == (3, 24, 32, 3)
    err = np.abs(frames.astype(int) - rgb).mean(axis=(1, 2, 3))
    assert err.max() < 10, err  # H.264 is lossy, but close to the library's frames ...
    for t in range(3):  # ... and each frame is nearest its own camera's
        dists = [np.abs(frames[t].astype(int) - rgb[u]).mean() for u in range(3)]
        assert int(np.argmin(dists)) == t, dists
    # the PNG sheet is lossless: rows of 14 label pixels + 24 image pixels, one column per frame
    sheet = np.asarray(Image.open(tmp_path / "v_sheet.png").convert("RGB"))
    assert sheet.shape == (3 * (14 + 24), 3 * 32, 3)
    alpha = (ref.alpha.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    for t in range(3):
        assert np.array_equal(sheet[14:38, 32 * t : 32 * (t + 1)], rgb[t])
        assert np.array_equal(sheet[2 * 38 + 14 :, 32 * t : 32 * (t + 1), 0], alpha[t])


def test_bench_render_points_json(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, size=(500, 3)).astype(np.float32)
    vm = np.eye(4, dtype=np.float32)
    vm[2, 3] = 3.0
    K = np.array([[50, 0, 32], [0, 50, 24], [0, 0, 1]], np.float32)
    np.savez(tmp_path / "p.npz", means3d=pts, colors=rng.integers(0, 255, (500, 3)).astype(np.uint8),
             viewmats=vm[None], Ks=K[None], width=64, height=48)  # fmt: skip
    out = tmp_path / "b.json"
    text = run(["bench", "render", "--points", str(tmp_path / "p.npz"), "--width", "32", "--height", "32",
                "--repeats", "3", "--json", str(out)])  # fmt: skip
    data = json.loads(out.read_text())
    assert data["num_gaussians"] == 500 and data["backend"] == "cpu" and data["source"] == str(tmp_path / "p.npz")
    assert (data["width"], data["height"], data["num_cameras"], data["repeats"]) == (32, 32, 1, 3)
    # the figures agree with each other
    ms = data["ms_per_frame"]
    assert len(ms) == 3 and all(m > 0 for m in ms)
    assert data["ms_per_frame_median"] == pytest.approx(statistics.median(ms))
    assert min(ms) <= data["ms_per_frame_median"] <= max(ms)
    assert data["fps_median"] == pytest.approx(1e3 / data["ms_per_frame_median"])
    assert f"{data['fps_median']:.1f} fps median (500 Gaussians, 32x32, 1 cameras x 3 repeats)" in text
    assert set(data["stage_ms_per_frame"]) == {"project", "sort", "colors", "bin", "composite"}
    assert all(v >= 0 for v in data["stage_ms_per_frame"].values())
    # the cloud (a 2 m cube 3 m in front of the camera) covers part of the frame: some, not all, Gaussians
    assert 0 < data["visible_gaussians_per_frame"] <= 500
    assert 0.05 < data["alpha_mean"] < 1.0


def test_bench_needs_exactly_one_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "render"])
    assert result.exit_code != 0 and "exactly one of --scene and --points" in result.output


def test_scene_inspect_writes_sidecar(tmp_path: Path) -> None:
    ply = write_ply(random_scene(400, 1), tmp_path / "room.ply")
    run(["scene", "inspect", str(ply), "--json", str(tmp_path / "i.json")])
    assert (tmp_path / "room.dexsim.json").exists()
    assert json.loads((tmp_path / "i.json").read_text())["num_gaussians"] == 400
    assert "not overwritten" in run(["scene", "inspect", str(ply)])


@pytest.mark.slow
def test_demo_writes_video_sheet_and_summary(tmp_path: Path) -> None:
    """The main job's outputs, here with the physics oracle as the world model (the default model's
    own demo is `make demo`): the generated frames equal the oracle's ground truth exactly."""
    text = run(["demo", "--out", str(tmp_path), "--world-model", "oracle"])
    assert "push-red-box" in text and "physics oracle" in text
    video = read_mp4(tmp_path / "demo.mp4")
    assert video.shape == (16, 128, 4 * 128, 3)  # static | hand prompt | generated | ground truth
    assert (tmp_path / "sheet.png").is_file()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["target_moved_m_in_physics"] > 0.05 and summary["success"]
    assert summary["psnr_generated_vs_oracle"] == float("inf")
    for key in ("setup_s", "step_s", "total_s", "psnr_static_vs_oracle"):
        assert key in summary


def test_hands_render_every_kind(tmp_path: Path) -> None:
    from dexsim.bench.prompts import synthetic_clip

    traj = synthetic_clip(4).save(tmp_path / "t.npz")
    for kind in ("mesh", "skeleton", "depth", "mask"):
        out = tmp_path / f"{kind}.mp4"
        run(["hands", "render", "--trajectory", str(traj), "--kind", kind, "--width", "96", "--height", "64",
             "--out", str(out), "--json", str(tmp_path / f"{kind}.json")])  # fmt: skip
        frames = read_mp4(out)
        assert frames.shape == (4, 64, 96, 3) and frames.max() > 100
        assert json.loads((tmp_path / f"{kind}.json").read_text())["right_visible_frames"] == 4


def test_hands_import_aria_real_sample(tmp_path: Path) -> None:
    pytest.importorskip("projectaria_tools")
    from ..conftest import shared_file

    csv_path = shared_file("aria_mps_sample/hand_tracking/hand_tracking_results.csv")
    out = tmp_path / "aria.npz"
    run(
        [
            "hands",
            "import-aria",
            "--hand-tracking",
            str(csv_path),
            "--out",
            str(out),
            "--json",
            str(tmp_path / "s.json"),
        ]
    )
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames"] == 8 and summary["left_visible_frames"] == 3
    assert summary["left_ik_error_median_m"] < 0.01  # the fitted hand follows Aria's landmarks
    raw = np.load(out, allow_pickle=False)
    assert raw["params"].shape == (8, 2, 51)
    run(["hands", "render", "--trajectory", str(out), "--kind", "mesh", "--width", "128", "--height", "128",
         "--out", str(tmp_path / "m.mp4")])  # fmt: skip
    assert read_mp4(tmp_path / "m.mp4").max() > 100


def test_hands_import_errors_are_clear(tmp_path: Path) -> None:
    pytest.importorskip("projectaria_tools")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(
        main, ["hands", "import-aria", "--hand-tracking", str(bad), "--out", str(tmp_path / "o.npz")]
    )
    assert result.exit_code != 0 and "missing columns" in result.output


def test_plan_scorer_options_reject_weights_for_an_offline_scorer(tmp_path: Path) -> None:
    for cmd in (["plan"], ["bench", "plan"]):
        r = CliRunner().invoke(main, [*cmd, "--scorer", "psnr", "--weights-dir", str(tmp_path)])
        assert r.exit_code == 2 and "reads no weights" in r.output, r.output
    r = CliRunner().invoke(main, ["plan", "--scorer", "dreamsim", "--weights-dir", str(tmp_path)])
    assert r.exit_code != 0
    if "is needed" not in r.output:  # dreamsim installed: the missing files are named, on one line
        assert r.exit_code == 2 and "ensemble_lora" in r.output and "Traceback" not in r.output


def test_bench_render_sizes_and_evaluations(tmp_path: Path) -> None:
    from dexsim.geometry import PinholeIntrinsics, look_at

    rng = np.random.default_rng(0)
    vm = look_at(torch.tensor([0.0, -1.5, 0.5]), torch.tensor([0.0, 0.0, 0.0])).numpy()[None]
    pts = tmp_path / "points.npz"
    np.savez(pts, means3d=rng.uniform(-0.3, 0.3, (200, 3)).astype(np.float32), colors=rng.random((200, 3)),
             viewmats=vm.astype(np.float32), Ks=PinholeIntrinsics.from_fov(60.0, 32, 32).K().numpy()[None],
             width=32, height=32)  # fmt: skip
    out = tmp_path / "r.json"
    run(["bench", "render", "--points", str(pts), "--width", "32", "--height", "32", "--repeats", "1",
         "--sizes", "16x16,48x32", "--json", str(out)])  # fmt: skip
    r = json.loads(out.read_text())
    assert [(s["width"], s["height"]) for s in r["sizes"]] == [(16, 16), (48, 32)]
    # every evaluation is one visible Gaussian at one pixel: between 1 and (visible x pixels)
    assert 0 < r["evaluations_per_frame"] <= r["visible_gaussians_per_frame"] * 32 * 32
    assert r["ns_per_evaluation"] > 0 and all(s["ns_per_evaluation"] > 0 for s in r["sizes"])
    bad = CliRunner().invoke(main, ["bench", "render", "--points", str(pts), "--sizes", "16by16"])
    assert bad.exit_code != 0 and "16by16" in bad.output and "Traceback" not in bad.output
