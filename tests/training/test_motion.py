"""The motion network: the static video's pixels moved before the denoiser, trained on the clips' true flow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dexsim.data.generate import DatagenConfig, generate
from dexsim.training import preset, train
from dexsim.training.data import ClipWindows
from dexsim.training.loss import diffusion_loss, motion_loss, occlusion_targets
from dexsim.worldmodel.compact import apply_motion, inpaint, motion_network, with_occlusion
from dexsim.worldmodel.models import COMPACT_CONFIGS, DiffusionWorldModel, compact_pipeline


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "clips"
    generate(DatagenConfig(out=str(root), clips=3, width=32, height=32, frames=8, density_scale=0.2, kinds=("push",)))
    return root


def _tiny_pipe_with_motion():
    pipe = compact_pipeline("tiny-warp")
    pipe.register_modules(motion=motion_network(COMPACT_CONFIGS["tiny"], seed=1))
    return pipe


def test_motion_moves_the_static_pixels_it_predicts() -> None:
    motion = motion_network(COMPACT_CONFIGS["tiny"])
    static = torch.zeros(1, 3, 3, 16, 16)
    static[..., 4:8, 4:8] = 1.0  # a bright square
    with torch.no_grad():
        moved, flow = apply_motion(motion, static, torch.ones(1, 3), static, static)
    assert torch.equal(moved, static) and not flow.any()  # a fresh network moves nothing
    with torch.no_grad():
        motion.head.bias.zero_()
        motion.head.bias[: motion.config.fold**2] = -0.5  # x flow of every pixel: -0.5 units = -2 pixels
        moved, flow = apply_motion(motion, static, torch.ones(1, 3), static, static)
    assert torch.allclose(flow[:, :, 0], torch.full_like(flow[:, :, 0], -2.0)) and not flow[:, :, 1].any()
    # backward flow -2 px: pixel x shows the static pixel at x - 2, so the square moved 2 px right
    assert torch.allclose(moved[..., 4:8, 6:10], torch.ones(1, 3, 3, 4, 4), atol=1e-5)
    assert moved[..., 4:8, 4:6].abs().max() < 1e-5


def test_pipeline_with_motion_uses_the_moved_video_and_saves_it(tmp_path: Path) -> None:
    pipe = _tiny_pipe_with_motion()
    rng = np.random.default_rng(0)
    static = rng.integers(0, 255, (1, 5, 16, 16, 3), dtype=np.uint8)
    prompt = rng.integers(0, 255, (1, 5, 16, 16, 3), dtype=np.uint8)
    gen = lambda p: p(static, prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames  # noqa: E731
    still = gen(pipe)
    with torch.no_grad():
        pipe.motion.head.bias[: pipe.motion.config.fold**2] = 0.5  # every pixel: 2 px of flow in x
    moved = gen(pipe)
    assert np.abs(moved.astype(int) - still).mean() > 5  # the moved static video is the residual's base
    cond = pipe.prepare_conditions(torch.as_tensor(static).permute(0, 1, 4, 2, 3).float() / 127.5 - 1,
                                   torch.as_tensor(prompt).permute(0, 1, 4, 2, 3).float() / 127.5 - 1)  # fmt: skip
    assert torch.equal(cond.cond[:, :, 1:4], cond.z_static)  # and the known video the denoiser sees
    DiffusionWorldModel(pipe, 16, 16, window=5).save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model_index.json").read_text())["motion"][1] == "CompactVideoDenoiser"
    again = DiffusionWorldModel.from_pretrained(tmp_path / "m", precision="fp32").pipeline
    assert np.array_equal(gen(again), moved)
    with pytest.raises(ValueError, match="motion"):
        from dexsim.worldmodel.cogvideox_fun import tiny_cogvideox_fun_pipeline

        tiny = tiny_cogvideox_fun_pipeline(16, 16)
        type(pipe)(transformer=tiny.transformer, scheduler=tiny.scheduler, vae=tiny.vae, motion=pipe.motion)


def test_motion_as_known_keeps_the_static_base() -> None:
    from dexsim.worldmodel.pipeline import DexWorldPipeline

    pipe = _tiny_pipe_with_motion()
    with torch.no_grad():
        pipe.motion.head.bias[: pipe.motion.config.fold**2] = 0.5  # 2 px of flow in x everywhere
    known = DexWorldPipeline(transformer=pipe.transformer, scheduler=pipe.scheduler, motion=pipe.motion,
                             motion_as="known")  # fmt: skip
    s = torch.rand(1, 5, 3, 16, 16) * 2 - 1
    p = torch.rand(1, 5, 3, 16, 16) * 2 - 1
    as_base, as_known = pipe.prepare_conditions(s, p), known.prepare_conditions(s, p)
    assert torch.equal(as_known.z_static, s) and not torch.equal(as_base.z_static, s)
    assert torch.equal(as_known.cond, as_base.cond)  # the denoiser sees the same moved video either way
    with pytest.raises(ValueError, match="motion_as"):
        DexWorldPipeline(transformer=pipe.transformer, scheduler=pipe.scheduler, motion=pipe.motion, motion_as="both")
    with pytest.raises(ValueError, match="motion_as"):
        preset("compact-from-scratch", data=["d"], out="o", motion_as="both")


def test_motion_loss_is_the_flow_error_in_pixels(dataset: Path) -> None:
    w = ClipWindows([dataset], window=5, width=32, height=32, seed=0, flow=True).next_batch(2)
    pipe = _tiny_pipe_with_motion()
    zero = torch.zeros_like(w.flow)
    ones = torch.ones_like(w.flow_valid)
    base = motion_loss(pipe, w.static, w.prompt, w.video, w.context, zero, ones)
    assert float(base.detach()) == pytest.approx(0.0, abs=1e-6)  # a fresh network predicts no motion
    shifted = zero.clone()
    shifted[..., 0] = 1.0  # every pixel moving by 1 px in x: the error is 1 px on the moving pixels, 0 elsewhere
    assert float(motion_loss(pipe, w.static, w.prompt, w.video, w.context, shifted, ones)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="motion network"):
        motion_loss(compact_pipeline("tiny-warp"), w.static, w.prompt, w.video, w.context, zero, ones)
    # the denoiser's loss goes through the moved video too: a different motion, a different loss
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = diffusion_loss(pipe, w.static, w.prompt, w.video, w.context, generator=g())
    with torch.no_grad():
        pipe.motion.head.bias[:4] = 1.0
    assert float(diffusion_loss(pipe, w.static, w.prompt, w.video, w.context, generator=g())) != float(a)


@pytest.mark.slow
def test_motion_run_then_denoiser_run_keeps_the_motion(dataset: Path, tmp_path: Path) -> None:
    args = {"steps": 6, "batch_size": 2, "model": "tiny-warp", "width": 32, "height": 32, "window": 5,
            "checkpoint_every": 3, "validate_every": 6, "warmup_steps": 1, "lr": 1e-2}  # fmt: skip
    run = train(preset("motion-flow", data=[str(dataset)], out=str(tmp_path / "motion"), **args), progress=False)
    assert run["finished"]
    log = [json.loads(x) for x in (tmp_path / "motion" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert any("val_motion_epe" in r for r in log)
    folder = tmp_path / "motion" / "model"
    assert (folder / "motion" / "config.json").is_file() and (folder / "transformer").is_dir()
    wm = DiffusionWorldModel.from_pretrained(folder, precision="fp32")
    assert wm.pipeline.motion.head.weight.abs().sum() > 0 and losses  # the motion network trained
    init = tmp_path / "init"
    shutil.copytree(folder, init)
    den_cfg = preset("compact-from-scratch", data=[str(dataset)], out=str(tmp_path / "den"), init_from=str(init),
                     motion_as="known", **args)  # fmt: skip
    assert not train(den_cfg, progress=False, stop_after=3)["finished"]
    shutil.rmtree(init)  # the run kept the frozen motion network beside its checkpoints
    den = train(den_cfg, progress=False)
    assert den["finished"]
    after = DiffusionWorldModel.from_pretrained(tmp_path / "den" / "model", precision="fp32").pipeline
    assert after.config.motion_as == "known" and wm.pipeline.config.motion_as == "base"
    for (n, a), b in zip(wm.pipeline.motion.state_dict().items(), after.motion.state_dict().values(), strict=True):
        assert torch.equal(a, b), n  # frozen through the denoiser's run
    assert any(not torch.equal(a, b) for a, b in zip(wm.pipeline.transformer.state_dict().values(),
                                                     after.transformer.state_dict().values(), strict=True))  # fmt: skip


def test_inpaint_fills_a_hole_from_its_surroundings_and_keeps_the_rest() -> None:
    image = torch.zeros(1, 3, 16, 16)
    image[:, 0] = torch.linspace(-1, 1, 16)[None, :]  # a horizontal ramp in red
    image[:, 1, 6:10, 6:10] = 5.0  # an "object" to remove
    hole = torch.zeros(1, 1, 16, 16)
    hole[..., 5:11, 5:11] = 1.0
    out = inpaint(image, hole)
    assert torch.equal(out[..., :5, :], image[..., :5, :])  # known pixels pass through
    assert out[:, 1, 5:11, 5:11].abs().max() < 1e-5  # the object is gone: its colour came from nowhere
    left, right = out[0, 0, 8, 5], out[0, 0, 8, 10]
    assert left < right  # the ramp continues into the hole (left side darker than the right)
    assert torch.allclose(inpaint(image, torch.zeros_like(hole)), image)


def test_occlusion_targets_mark_where_an_object_was_and_left() -> None:
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0, 4:8, 6:10] = -2.0  # a 4x4 object now at x 6..9 came from x 4..7: it moved 2 px right
    footprint, vacated = occlusion_targets(flow)
    assert footprint[0, 4:8, 4:8].all() and not footprint[0, 12:, :].any()
    assert vacated[0, 4:8, 4:6].all()  # the two columns it left
    assert not vacated[0, 4:8, 6:10].any()  # where it is now moves itself: not vacated


def test_occluding_motion_network_starts_as_its_source_and_fills_what_it_calls_vacated() -> None:
    motion = motion_network(COMPACT_CONFIGS["tiny"], seed=3)
    with torch.no_grad():
        for param in motion.parameters():  # a trained-looking network: trunk and head both matter
            param.add_(torch.randn_like(param) * 0.05)
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    occluding = with_occlusion(motion)
    assert torch.equal(torch.rand(1), expected)  # the global random state is left alone
    assert occluding.config.out_channels == 4
    static = torch.rand(1, 3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        a, flow_a = apply_motion(motion, static, torch.ones(1, 3), static, static)
        b, out_b = apply_motion(occluding, static, torch.ones(1, 3), static, static)
    assert flow_a.abs().max() > 0.1 and torch.allclose(out_b[:, :, :2], flow_a, atol=1e-5)
    assert (a - b).abs().max() < 0.02  # vacated ~0.0025 at init
    f2 = occluding.config.fold**2
    with torch.no_grad():
        occluding.head.weight.zero_()
        occluding.head.bias.zero_()
        occluding.head.bias[2 * f2 : 3 * f2] = 20.0  # footprint everywhere ...
        occluding.head.bias[3 * f2 :] = -20.0
        occluding.head.bias[3 * f2] = 20.0  # ... vacated only at the first pixel of each fold x fold cell
        c, _ = apply_motion(occluding, static, torch.ones(1, 3), static, static)
    changed = (c - static).abs().amax(2)[0, 0] > 0.1
    grid = torch.zeros(16, 16, dtype=torch.bool)
    grid[:: occluding.config.fold, :: occluding.config.fold] = True
    assert changed[grid].float().mean() > 0.5 and not changed[~grid].any()  # the channel order: footprint, vacated
    with pytest.raises(ValueError, match="2-channel"):
        with_occlusion(occluding)
    occluding.register_to_config(occlusion_prior=-40.0)  # config values are checked at build, not here
    with torch.no_grad():
        d, _ = apply_motion(occluding, static, torch.ones(1, 3), static, static)
    assert (d - static).abs().max() < 1e-3  # a prior of -40 on logits of +20: nothing is vacated any more
    with pytest.raises(ValueError, match="occlusion_prior"):
        motion_network(COMPACT_CONFIGS["tiny"] | {"occlusion_prior": 50.0}, occlusion=True)


def test_occlusion_gate_moves_only_pixels_whose_source_is_in_the_footprint() -> None:
    from dexsim.worldmodel.compact import move_by

    static = torch.zeros(1, 1, 3, 16, 16)
    static[..., 4:8, 4:8] = 1.0
    out = torch.zeros(1, 1, 4, 16, 16)
    out[:, :, 0] = -2.0  # everything 2 px right
    out[:, :, 2:] = -30.0  # no footprint, nothing vacated
    assert torch.allclose(move_by(static, out)[..., 4:8, 6:10], torch.ones(1, 1, 3, 4, 4), atol=1e-5)
    assert torch.allclose(move_by(static, out, gate=True), static, atol=1e-5)  # gated: nothing is an object
    out[:, :, 2, 3:9, 3:9] = 30.0  # the square's place (and a pixel around it) is footprint
    gated = move_by(static, out, gate=True)
    assert torch.allclose(gated[..., 4:8, 6:10], torch.ones(1, 1, 3, 4, 4), atol=1e-5)  # the square moved
    assert torch.equal(gated[..., 12:, :], static[..., 12:, :])  # the far table stays bit-exact


def test_motion_loss_adds_the_occlusion_cross_entropy(dataset: Path) -> None:
    w = ClipWindows([dataset], window=5, width=32, height=32, seed=0, flow=True).next_batch(2)
    pipe = _tiny_pipe_with_motion()
    pipe.register_modules(motion=with_occlusion(pipe.motion))
    zero, ones = torch.zeros_like(w.flow), torch.ones_like(w.flow_valid)
    flow_only = motion_loss(pipe, w.static, w.prompt, w.video, w.context, zero, ones, occlusion_weight=0.0)
    assert float(flow_only) == pytest.approx(0.0, abs=1e-6)
    # nothing moves, so every target is negative: the cross-entropy of logit -6 (about 0.0025) alone
    with_bce = motion_loss(pipe, w.static, w.prompt, w.video, w.context, zero, ones, occlusion_weight=1.0)
    assert float(with_bce) == pytest.approx(2 * float(torch.nn.functional.softplus(torch.tensor(-6.0))), rel=1e-3)
    moving = zero.clone()
    moving[:, :, 4:8, 4:8, 0] = -2.0  # a patch moved: some targets positive, where logit -6 costs about 6 each
    assert float(motion_loss(pipe, w.static, w.prompt, w.video, w.context, moving, ones, occlusion_weight=1.0)) > (
        float(with_bce) + 2.0 * 0.01
    )
    # balanced: the marked and the unmarked pixels averaged apart, so each output costs about 6 + 0.0025
    flow_part = motion_loss(pipe, w.static, w.prompt, w.video, w.context, moving, ones, occlusion_weight=0.0)
    balanced = motion_loss(pipe, w.static, w.prompt, w.video, w.context, moving, ones, occlusion_weight=1.0,
                           occlusion_balanced=True)  # fmt: skip
    per_output = float(
        torch.nn.functional.softplus(torch.tensor(6.0)) + torch.nn.functional.softplus(torch.tensor(-6.0))
    )
    assert float(balanced) - float(flow_part) == pytest.approx(2 * per_output, rel=1e-2)
    # the logits are read in the targets' order: footprint first, then vacated
    f2 = pipe.motion.config.fold**2
    with torch.no_grad():
        pipe.motion.head.bias[2 * f2 : 3 * f2] = 6.0  # footprint said everywhere, vacated (still -6) nowhere
    only_footprint = motion_loss(pipe, w.static, w.prompt, w.video, w.context, zero, ones, occlusion_weight=1.0)
    softplus = torch.nn.functional.softplus
    assert float(only_footprint) == pytest.approx(float(softplus(torch.tensor(6.0)) + softplus(torch.tensor(-6.0))),
                                                  rel=1e-3)  # fmt: skip
    with pytest.raises(ValueError, match="occlusion outputs"):
        motion_loss(_tiny_pipe_with_motion(), w.static, w.prompt, w.video, w.context, zero, ones, occlusion_weight=1.0)
    with pytest.raises(ValueError, match="occlusion_loss"):
        preset("compact-from-scratch", data=["d"], out="o", occlusion_loss=1.0)
    with pytest.raises(ValueError, match="occlusion_balanced"):
        preset("motion-flow", data=["d"], out="o", occlusion_balanced=True)


@pytest.mark.slow
def test_occlusion_motion_run_trains_from_a_flow_only_network(dataset: Path, tmp_path: Path) -> None:
    args = {
        "steps": 3,
        "batch_size": 2,
        "model": "tiny-warp",
        "width": 32,
        "height": 32,
        "window": 5,
        "checkpoint_every": 3,
        "validate_every": 3,
        "warmup_steps": 1,
        "lr": 1e-2,
        "weight_decay": 0.0,
    }  # fmt: skip  (no decay: only the occlusion loss can move the occlusion logits)
    train(preset("motion-flow", data=[str(dataset)], out=str(tmp_path / "flow"), **args), progress=False)
    run = train(preset("motion-flow", data=[str(dataset)], out=str(tmp_path / "occ"), occlusion_loss=1.0,
                       init_from=str(tmp_path / "flow" / "model"), **args), progress=False)  # fmt: skip
    assert run["finished"]
    before = DiffusionWorldModel.from_pretrained(tmp_path / "flow" / "model", precision="fp32").pipeline.motion
    after = DiffusionWorldModel.from_pretrained(tmp_path / "occ" / "model", precision="fp32").pipeline.motion
    assert before.config.out_channels == 2 and after.config.out_channels == 4
    rows = 2 * after.config.fold**2
    assert not torch.equal(after.head.bias[rows:], torch.full_like(after.head.bias[rows:], -6.0))  # it trained
    # a denoiser run on it may set the prior its occlusion logits get; it is saved with the frozen network
    den = preset("compact-from-scratch", data=[str(dataset)], out=str(tmp_path / "den"), occlusion_prior=-3.0,
                 occlusion_gate=True, init_from=str(tmp_path / "occ" / "model"), **(args | {"steps": 1}))  # fmt: skip
    train(den, progress=False)
    saved = DiffusionWorldModel.from_pretrained(tmp_path / "den" / "model", precision="fp32").pipeline.motion
    assert saved.config.occlusion_prior == -3.0 and after.config.occlusion_prior == 0.0
    assert saved.config.occlusion_gate and not after.config.occlusion_gate
    flow_only = preset("compact-from-scratch", data=[str(dataset)], out=str(tmp_path / "den2"),
                       occlusion_prior=-3.0, init_from=str(tmp_path / "flow" / "model"), **args)  # fmt: skip
    with pytest.raises(ValueError, match="occlusion outputs"):
        train(flow_only, progress=False)
    with pytest.raises(ValueError, match="occlusion_prior"):
        preset("forecast-flow-matching", data=["d"], out="o", occlusion_prior=-1.0)
