"""Training: loss goes down, exact resume after a kill, two CPU processes with accelerate, eval rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dexsim.data.generate import DatagenConfig, generate
from dexsim.training import preset, train
from dexsim.training.data import ClipWindows
from dexsim.training.evaluate import evaluate, format_table, hand_composite


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "clips"
    generate(DatagenConfig(out=str(root), clips=3, width=32, height=32, frames=8, density_scale=0.2))
    return root


def _cfg(dataset: Path, out: Path, **kw):
    args = {"steps": 4, "batch_size": 2, "model": "tiny", "width": 32, "height": 32, "window": 5,
            "checkpoint_every": 2, "validate_every": 4, "warmup_steps": 1} | kw  # fmt: skip
    return preset("compact-from-scratch", data=[str(dataset)], out=str(out), **args)


def test_clip_windows_are_seeded_and_resumable(dataset: Path) -> None:
    a = ClipWindows([dataset], window=5, width=32, height=32, seed=3)
    first = [a.next_batch(2) for _ in range(3)]
    b = ClipWindows([dataset], window=5, width=32, height=32, seed=3)
    b.next_batch(2)
    b.restore(a.position.__class__(**{**a.position.__dict__, "index": 2, "epoch": 0}))
    again = b.next_batch(2)
    assert np.array_equal(again.video.numpy(), first[1].video.numpy())
    assert first[0].static.shape == (2, 5, 32, 32, 3)
    with pytest.raises(FileNotFoundError, match="no complete clips"):
        ClipWindows([dataset / "nothing"])


def test_clip_windows_cache_stops_at_its_bound_and_windows_stay_the_same(dataset: Path) -> None:
    full = ClipWindows([dataset], window=5, width=32, height=32, seed=3, flow=True)
    none = ClipWindows([dataset], window=5, width=32, height=32, seed=3, flow=True, cache_bytes=0)
    a, b = [x.next_batch(3) for x in (full, none)]
    assert np.array_equal(a.video.numpy(), b.video.numpy()) and torch.equal(a.flow, b.flow)
    assert len(full._cache) > 0 and full._cached_bytes > 0
    assert len(none._cache) == 0 and none._cached_bytes == 0
    off = ClipWindows([dataset], window=5, width=32, height=32, seed=3, cache=False, cache_bytes=1 << 30)
    off.next_batch(3)
    assert off.cache_bytes == 0 and len(off._cache) == 0  # cache=False wins over a bound
    one = ClipWindows([dataset], window=5, width=32, height=32, seed=3, flow=True,
                      cache_bytes=full._cached_bytes // 2 + 1)  # fmt: skip
    one.next_batch(3)
    assert 0 < one._cached_bytes <= one.cache_bytes and len(one._cache) < len(full._cache)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="cache_bytes"):
            ClipWindows([dataset], cache_bytes=bad)


@pytest.mark.slow
def test_killed_run_resumes_exactly(dataset: Path, tmp_path: Path) -> None:
    whole = train(_cfg(dataset, tmp_path / "whole"), progress=False)
    assert whole["finished"]
    part = train(_cfg(dataset, tmp_path / "part"), progress=False, stop_after=2)  # "killed" after step 2
    assert not part["finished"] and part["step"] == 2
    resumed = train(_cfg(dataset, tmp_path / "part"), progress=False)
    assert resumed["finished"] and resumed["step"] == 4
    w1 = load_file(str(tmp_path / "whole" / "checkpoints" / "step-0000004" / "trainable.safetensors"))
    w2 = load_file(str(tmp_path / "part" / "checkpoints" / "step-0000004" / "trainable.safetensors"))
    assert w1.keys() == w2.keys() and all(np.array_equal(w1[k].numpy(), w2[k].numpy()) for k in w1)
    log = [json.loads(x) for x in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    assert any("val_psnr" in r for r in log) and any("loss" in r for r in log)
    assert list((tmp_path / "whole" / "validation").glob("*.png")) and list(
        (tmp_path / "whole" / "validation").glob("*.mp4")
    )
    assert (tmp_path / "whole" / "model" / "model_index.json").is_file()


@pytest.mark.slow
def test_loss_decreases_when_overfitting(dataset: Path, tmp_path: Path) -> None:
    train(_cfg(dataset, tmp_path / "o", steps=40, lr=3e-3, checkpoint_every=40, validate_every=40,
               context_prob=0.0), progress=False)  # fmt: skip
    log = [json.loads(x) for x in (tmp_path / "o" / "log.jsonl").read_text().splitlines() if "loss" in x]
    assert log[-1]["loss"] < 0.7 * log[0]["loss"]


def test_lora_preset_trains_only_lora_and_projections(dataset: Path, tmp_path: Path) -> None:
    from dexsim.training.trainer import build_pipeline

    cfg = preset("lora-cogvideox-fun", data=[str(dataset)], out=str(tmp_path / "l"), model="tiny", width=16, height=16,
                 window=5, steps=2, checkpoint_every=2, validate_every=2, lora_rank=4, lora_alpha=4)  # fmt: skip
    pipe = build_pipeline(cfg)
    names = [n for n, p in pipe.transformer.named_parameters() if p.requires_grad]
    assert names and all("lora" in n or n.startswith("patch_embed.proj") for n in names)
    assert not any(p.requires_grad for p in pipe.vae.parameters())
    train(cfg, progress=False)
    assert (tmp_path / "l" / "model" / "lora" / "pytorch_lora_weights.safetensors").is_file()


@pytest.mark.slow
def test_two_cpu_processes_with_accelerate_launch(dataset: Path, tmp_path: Path) -> None:
    cfg_file = Path(__file__).parents[2] / "src" / "dexsim" / "training" / "accelerate_configs" / "cpu_2proc.yaml"
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg_file), "--main_process_port",
           "29517", "-m", "dexsim", "train", "--preset", "compact-from-scratch", "--data", str(dataset), "--out",
           str(out), "--steps", "2", "--batch-size", "1", "--model", "tiny", "--width", "32", "--height", "32",
           "--window", "5", "--checkpoint-every", "2", "--validate-every", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "model" / "model_index.json").is_file()
    assert "finished at step 2" in r.stdout


@pytest.mark.slow
def test_eval_rows_and_baselines(dataset: Path, tmp_path: Path) -> None:
    from dexsim.worldmodel import DiffusionWorldModel, compact_pipeline

    wm = DiffusionWorldModel(compact_pipeline("tiny"), 32, 32, window=5, context_frames=1, num_steps=1)
    r = evaluate(dataset, wm, clips=2, progress=False, sheet=tmp_path / "kinds.png")
    assert set(r["rows"]) == {"identity", "hand_composite", "model", "oracle"}
    # an untrained residual model returns the static video: the model row equals the identity row
    assert r["rows"]["model"]["psnr"] == pytest.approx(r["rows"]["identity"]["psnr"])
    assert r["rows"]["oracle"]["psnr"] > r["rows"]["identity"]["psnr"]
    assert r["eval_width"] == 32 and r["eval_frames"] == 8 and "identity" in format_table(r)
    # per action kind: the clips of every kind add up to all clips, each kind's rows have every method
    kinds = r["per_kind"]
    assert sum(k["identity"]["n_clips"] for k in kinds.values()) == 2
    assert all(set(k) == set(r["rows"]) for k in kinds.values())
    from PIL import Image

    # the sheet: 4 rows (static, prompt, generated, ground truth) of 32 px frames + labels per kind
    assert Image.open(tmp_path / "kinds.png").size[1] == 4 * len(kinds) * (32 + 14)
    static = np.zeros((2, 4, 4, 3), np.uint8)
    prompt = static.copy()
    prompt[0, 1, 1] = (160, 253, 161)
    out = hand_composite(static, prompt)
    assert out[0, 1, 1].tolist() == [160, 253, 161] and out.sum() == 160 + 253 + 161


def test_flow_loss_trains_the_flow_head(dataset: Path) -> None:
    import torch

    from dexsim.training.loss import diffusion_loss
    from dexsim.worldmodel.models import compact_pipeline

    w = ClipWindows([dataset], window=5, width=32, height=32, seed=0, flow=True).next_batch(2)
    assert w.flow is not None and w.flow.shape == (2, 5, 32, 32, 2) and w.flow_valid.shape == (2, 5, 32, 32)
    assert ClipWindows([dataset], window=5, width=32, height=32).next_batch(1).flow is None
    pipe = compact_pipeline("tiny-warp", sample_size=32, sample_frames=5)
    target = torch.zeros_like(w.flow)
    target[..., 0] = 1.0  # one pixel to the right, everywhere: the zero-initialised head is 1 px off
    losses, grads = [], []
    for weight in (0.0, 1.0):
        pipe.transformer.zero_grad()
        loss = diffusion_loss(pipe, w.static, w.prompt, w.video, w.context, generator=torch.Generator().manual_seed(0),
                              flow=target, flow_valid=torch.ones_like(w.flow_valid), flow_weight=weight)  # fmt: skip
        loss.backward()
        losses.append(loss.item())
        grads.append(pipe.transformer.flow_head.bias.grad.clone())
    assert losses[1] - losses[0] == pytest.approx(1.0, abs=1e-4)  # the L1 error of the flow, in pixels
    assert grads[1][0] < grads[0][0]  # and its gradient pushes the x flow up
    with pytest.raises(ValueError, match="flow head"):
        diffusion_loss(compact_pipeline("tiny", sample_size=32, sample_frames=5), w.static, w.prompt, w.video,
                       w.context, flow=w.flow, flow_valid=w.flow_valid, flow_weight=1.0)  # fmt: skip
    with pytest.raises(ValueError, match="flow_loss"):
        preset("compact-from-scratch", data=[str(dataset)], out="x", flow_loss=-1.0)


def test_change_weight_counts_the_changed_pixels_more(dataset: Path) -> None:
    import torch

    from dexsim.training.loss import change_map, diffusion_loss
    from dexsim.worldmodel.models import compact_pipeline

    static = torch.zeros(1, 3, 3, 8, 8) - 1.0
    video = static.clone()
    video[0, 1, :, 4, 4] = 1.0  # one pixel changes in frame 1
    m = change_map(static, video, (8, 8), 3)
    assert m.shape == (1, 3, 1, 8, 8)
    assert m[0, 0].sum() == 0 and m[0, 2].sum() == 0  # the other frames do not change
    assert m[0, 1, 0, 3:6, 3:6].eq(1).all() and m[0, 1].sum() == 9  # the pixel, dilated by one
    assert change_map(static, video, (4, 4), 3)[0, 1].sum() > 0  # pooled to a coarser latent grid

    w = ClipWindows([dataset], window=5, width=32, height=32, seed=0).next_batch(2)
    pipe = compact_pipeline("tiny", sample_size=32, sample_frames=5)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = diffusion_loss(pipe, w.static, w.prompt, w.video, w.context, generator=gen()).item()
    again = diffusion_loss(pipe, w.static, w.prompt, w.video, w.context, generator=gen(), change_weight=0.0).item()
    weighted = diffusion_loss(pipe, w.static, w.prompt, w.video, w.context, generator=gen(), change_weight=4.0).item()
    assert again == pytest.approx(plain)  # 0 is the plain loss
    assert weighted > plain  # the datagen clips have hands: some pixels change, and they weigh more
    with pytest.raises(ValueError, match="change_weight"):
        preset("compact-from-scratch", data=[str(dataset)], out="x", change_weight=-1.0)
    with pytest.raises(ValueError, match="mixed_precision"):
        preset("compact-from-scratch", data=[str(dataset)], out="x", mixed_precision="fp8")


def test_export_cli_writes_a_checkpoints_weights_and_names_a_missing_step(dataset: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dexsim.cli import main
    from dexsim.worldmodel import load

    out = tmp_path / "run"
    train(_cfg(dataset, out, steps=4, checkpoint_every=2, validate_every=100), progress=False, stop_after=2)
    moved = tmp_path / "moved"
    out.rename(moved)  # a run folder that moved since it was written still exports
    res = CliRunner().invoke(main, ["export", str(moved), "--to", str(tmp_path / "m2")])
    assert res.exit_code == 0, res.output
    assert "exported step 2" in res.output
    saved = load_file(str(moved / "checkpoints" / "step-0000002" / "ema.safetensors"))
    got = load(tmp_path / "m2").pipeline.transformer.state_dict()
    assert saved and all(np.array_equal(got[k].numpy(), v.numpy()) for k, v in saved.items())
    res = CliRunner().invoke(main, ["export", str(moved), "--step", "3"])
    assert res.exit_code == 2 and "no checkpoint of step 3" in res.output and "steps 2" in res.output
    res = CliRunner().invoke(main, ["export", str(dataset)])
    assert res.exit_code == 2 and "train_config.json" in res.output


def test_a_run_whose_init_folder_is_gone_still_resumes_and_exports(dataset: Path, tmp_path: Path) -> None:
    import shutil

    from dexsim.training.trainer import export_checkpoint

    train(_cfg(dataset, tmp_path / "base", steps=2), progress=False)
    init = tmp_path / "init"
    shutil.copytree(tmp_path / "base" / "model", init)
    cfg = _cfg(dataset, tmp_path / "run", init_from=str(init))
    train(cfg, progress=False, stop_after=2)
    shutil.rmtree(init)  # the checkpoint holds every tensor: the folder it started from is not needed any more
    assert train(cfg, progress=False)["step"] == 4
    assert (export_checkpoint(cfg) / "model_index.json").is_file()
    with pytest.raises(FileNotFoundError, match="nor an existing folder"):
        train(_cfg(dataset, tmp_path / "fresh", init_from=str(init)), progress=False)  # a new run does need it


def test_train_cli_context_prob_lands_in_the_recipe_and_rejects_a_bad_share(dataset: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dexsim.cli import main

    base = ["train", "--preset", "compact-from-scratch", "--data", str(dataset), "--model", "tiny", "--width", "32",
            "--height", "32", "--window", "5", "--batch-size", "1", "--steps", "1", "--checkpoint-every", "1",
            "--validate-every", "100"]  # fmt: skip
    res = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "bad"), "--context-prob", "1.5"])
    assert res.exit_code == 2 and "1.5" in res.output and "context-prob" in res.output
    assert not (tmp_path / "bad" / "train_config.json").exists()
    res = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "run"), "--context-prob", "0.9"])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["context_prob"] == 0.9
