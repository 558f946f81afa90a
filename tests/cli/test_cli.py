from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

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


def test_doctor_json_reads_the_machine(tmp_path: Path) -> None:
    import torch

    out = tmp_path / "doctor.json"
    text = run(["doctor", "--json", str(out)])
    data = json.loads(out.read_text())
    for key in ("python", "torch", "cuda_available", "gsplat_usable", "mujoco_gl", "extras"):
        assert key in data
    assert data["torch"] == torch.__version__
    assert data["cuda_available"] == torch.cuda.is_available()
    assert isinstance(data["extras"], dict) and "gpu" in data["extras"]
    assert ("mujoco" in text and "fix:" in text) or all(c["ok"] for c in data["checks"])


def test_render_writes_video_and_sheet(tmp_path: Path) -> None:
    ply = write_ply(random_scene(300, 2, sh_degree=1), tmp_path / "s.ply")
    out = tmp_path / "v.mp4"
    run(["render", "--scene", str(ply), "--out", str(out), "--width", "32", "--height", "24", "--frames", "3"])
    frames = read_mp4(out)
    assert frames.shape == (3, 24, 32, 3) and frames.max() > 0
    assert (tmp_path / "v_sheet.png").stat().st_size > 0


def test_bench_render_points_json(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, size=(500, 3)).astype(np.float32)
    vm = np.eye(4, dtype=np.float32)
    vm[2, 3] = 3.0
    K = np.array([[50, 0, 32], [0, 50, 24], [0, 0, 1]], np.float32)
    np.savez(tmp_path / "p.npz", means3d=pts, colors=rng.integers(0, 255, (500, 3)).astype(np.uint8),
             viewmats=vm[None], Ks=K[None], width=64, height=48)  # fmt: skip
    out = tmp_path / "b.json"
    run(["bench", "render", "--points", str(tmp_path / "p.npz"), "--width", "32", "--height", "32",
         "--repeats", "2", "--json", str(out)])  # fmt: skip
    data = json.loads(out.read_text())
    assert data["num_gaussians"] == 500 and data["width"] == 32 and data["backend"] == "cpu"
    assert data["fps_median"] > 0 and len(data["ms_per_frame"]) == 2


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
    from dexsim.hands.bench import synthetic_clip

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
    if "needed" not in str(r.exception):  # dreamsim installed: the missing files are named
        assert isinstance(r.exception, FileNotFoundError) and "ensemble_lora" in str(r.exception)
