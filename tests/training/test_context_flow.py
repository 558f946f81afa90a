"""The motion network's context-flow input: what an earlier window moved stays moved in the next one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dexsim.data.generate import DatagenConfig, generate
from dexsim.training import preset, train
from dexsim.training.data import ClipWindows
from dexsim.training.loss import context_flow_of, diffusion_loss, motion_loss
from dexsim.worldmodel.compact import (
    CONTEXT_FLOW_SCALE,
    motion_network,
    predict_motion,
    with_context_flow,
    with_occlusion,
)
from dexsim.worldmodel.models import COMPACT_CONFIGS, DiffusionWorldModel, compact_pipeline


def _videos(seed: int = 0, frames: int = 5, side: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (1, frames, side, side, 3)
    return rng.integers(0, 255, shape, dtype=np.uint8), rng.integers(0, 255, shape, dtype=np.uint8)


def _reading_network(reads: bool = True):
    """A tiny context-flow network; ``reads``: its stem and head weights set so that the context flow changes
    its output (a fresh one ignores that input and predicts no motion)."""
    net = with_context_flow(motion_network(COMPACT_CONFIGS["tiny"], seed=3))
    if reads:
        with torch.no_grad():
            net.stem.weight[:, 10 * net.config.fold**2 :] = 0.3
            net.head.weight.add_(0.05)
    return net


def test_with_context_flow_starts_as_its_source_and_refuses_what_it_cannot_read() -> None:
    source = motion_network(COMPACT_CONFIGS["tiny"], seed=2)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.05 * torch.randn_like(p))  # a network that predicts some flow
    wide = with_context_flow(source)
    assert wide.config.in_channels == 12 and source.config.in_channels == 10
    x = torch.rand(1, 3, 3, 16, 16) * 2 - 1
    gen = torch.ones(1, 3)
    with torch.no_grad():
        before = predict_motion(source, x, gen, x, x)
        after = predict_motion(wide, x, gen, x, x, context_flow=torch.full((1, 2, 16, 16), 7.0))
    assert before.abs().max() > 1e-3 and torch.allclose(before, after, atol=1e-5)  # zero weights on the new input
    with pytest.raises(ValueError, match="context-flow input"):
        predict_motion(source, x, gen, x, x, context_flow=torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError, match="context_flow"):
        predict_motion(wide, x, gen, x, x, context_flow=torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="10-input"):
        with_context_flow(wide)
    occluding = with_occlusion(wide)  # adding the occlusion outputs keeps the context-flow input
    assert occluding.config.in_channels == 12 and occluding.config.out_channels == 4


def test_the_context_flow_input_reaches_the_flow() -> None:
    net = _reading_network()
    x = torch.rand(1, 3, 3, 16, 16) * 2 - 1
    gen = torch.ones(1, 3)
    with torch.no_grad():
        still = predict_motion(net, x, gen, x, x)
        zero = predict_motion(net, x, gen, x, x, context_flow=torch.zeros(1, 2, 16, 16))
        carried = predict_motion(net, x, gen, x, x, context_flow=torch.full((1, 2, 16, 16), CONTEXT_FLOW_SCALE))
    assert torch.equal(still, zero)  # None means nothing moved yet
    assert (carried - zero).abs().max() > 1e-3


def test_pipeline_returns_the_flow_and_checks_the_context_flow() -> None:
    pipe = compact_pipeline("tiny-warp")
    static, prompt = _videos()
    assert pipe(static, prompt, num_inference_steps=1).flow is None  # no motion network, no flow
    pipe.register_modules(motion=_reading_network())
    assert pipe.takes_context_flow
    out = pipe(static, prompt, num_inference_steps=1, generator=torch.Generator().manual_seed(0))
    assert out.flow.shape == (1, 5, 16, 16, 2) and out.flow.dtype == np.float32
    ctx = out.frames[:, -1:]
    with pytest.raises(ValueError, match="needs `context`"):
        pipe(static, prompt, context_flow=np.zeros((1, 16, 16, 2), np.float32))
    with pytest.raises(ValueError, match=r"\(1 or 1, 16, 16, 2\)"):
        pipe(static, prompt, context=ctx, context_flow=np.zeros((1, 2, 16, 16), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        pipe(static, prompt, context=ctx, context_flow=np.full((1, 16, 16, 2), np.nan, np.float32))
    plain = compact_pipeline("tiny-warp")
    plain.register_modules(motion=motion_network(COMPACT_CONFIGS["tiny"], seed=1))
    assert not plain.takes_context_flow
    with pytest.raises(ValueError, match="reads it"):
        plain(static, prompt, context=ctx, context_flow=np.zeros((1, 16, 16, 2), np.float32))


def test_world_model_carries_the_flow_of_the_frames_it_generated() -> None:
    pipe = compact_pipeline("tiny-warp")
    pipe.register_modules(motion=_reading_network())
    wm = DiffusionWorldModel(pipe, width=16, height=16, window=5, context_frames=1, num_steps=1, precision="fp32")
    static, prompt = _videos(1)
    first = wm.generate(static, prompt, generator=torch.Generator().manual_seed(0)).frames
    ctx = first[:, -1:]
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    second = wm.generate(static, prompt, context=ctx, generator=g()).frames
    at_rest = pipe(static, prompt, context=ctx, generator=g(), num_inference_steps=1).frames
    last_flow = pipe(static, prompt, num_inference_steps=1, generator=torch.Generator().manual_seed(0)).flow[:, -1]
    last_flow = last_flow.astype(np.float16).astype(np.float32)  # the model keeps it in half precision
    with_flow = pipe(static, prompt, context=ctx, generator=g(), num_inference_steps=1, context_flow=last_flow).frames
    assert np.array_equal(second, with_flow)  # the model passed the flow it remembered for its own last frame
    assert not np.array_equal(with_flow, at_rest)  # ... and that flow changes the result
    unbatched = wm.generate(static[0], prompt[0], context=ctx[0], generator=g()).frames  # one episode, no batch axis
    assert np.array_equal(unbatched, with_flow)
    stranger = ctx.copy()
    stranger[0, 0, 0, 0, 0] ^= 1  # a context frame the model did not generate starts from the scene at rest
    unknown = wm.generate(static, prompt, context=stranger, generator=g()).frames
    assert np.array_equal(unknown, pipe(static, prompt, context=stranger, generator=g(), num_inference_steps=1).frames)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "clips"
    generate(DatagenConfig(out=str(root), clips=2, width=32, height=32, frames=8, density_scale=0.2, kinds=("push",)))
    return root


def test_context_flow_of_takes_the_last_context_frame_and_drops_invalid_pixels() -> None:
    flow = torch.arange(2 * 3 * 4 * 4 * 2, dtype=torch.float32).reshape(2, 3, 4, 4, 2)
    valid = torch.ones(2, 3, 4, 4, dtype=torch.bool)
    valid[1, 1, 0, 0] = False
    out = context_flow_of(flow, valid, torch.tensor([1]), 2)
    assert out.shape == (1, 2, 4, 4)
    assert torch.equal(out[0, :, 1:, 1:], flow[1, 1, 1:, 1:].permute(2, 0, 1))
    assert not out[0, :, 0, 0].any()


def test_motion_loss_feeds_the_true_context_flow(dataset: Path) -> None:
    w = ClipWindows([dataset], window=5, width=32, height=32, seed=0, flow=True, context_prob=1.0).next_batch(2)
    assert (w.context > 0).all()
    pipe = compact_pipeline("tiny-warp")
    pipe.register_modules(motion=_reading_network())
    ones = torch.ones_like(w.flow_valid)
    a = motion_loss(pipe, w.static, w.prompt, w.video, w.context, w.flow, ones)
    shifted = w.flow.clone()
    shifted[:, 0] += 8.0  # only the context frame's flow differs: the loss (on the generated frames) moves with it
    b = motion_loss(pipe, w.static, w.prompt, w.video, w.context, shifted, ones)
    assert float(a) != float(b)


def test_denoiser_loss_feeds_the_true_context_flow_to_the_motion_network(dataset: Path) -> None:
    w = ClipWindows([dataset], window=5, width=32, height=32, seed=0, flow=True, context_prob=1.0).next_batch(2)
    pipe = compact_pipeline("tiny-warp")
    pipe.register_modules(motion=_reading_network())
    ones = torch.ones_like(w.flow_valid)

    def loss(flow: torch.Tensor) -> float:
        gen = torch.Generator().manual_seed(0)
        return float(diffusion_loss(pipe, w.static, w.prompt, w.video, w.context, generator=gen, flow=flow,
                                    flow_valid=ones))  # fmt: skip

    shifted = w.flow.clone()
    shifted[:, 0] += 8.0  # only the context frame's flow differs: the moved base the denoiser sees moves with it
    assert loss(w.flow) == loss(w.flow)
    assert loss(w.flow) != loss(shifted)


@pytest.mark.slow
def test_context_flow_run_widens_a_motion_network(dataset: Path, tmp_path: Path) -> None:
    args = {"steps": 2, "batch_size": 2, "model": "tiny-warp", "width": 32, "height": 32, "window": 5,
            "checkpoint_every": 2, "validate_every": 2, "warmup_steps": 1, "lr": 1e-2}  # fmt: skip
    train(preset("motion-flow", data=[str(dataset)], out=str(tmp_path / "flow"), **args), progress=False)
    cfg = preset("motion-flow", data=[str(dataset)], out=str(tmp_path / "ctx"), context_flow=True, context_prob=1.0,
                 init_from=str(tmp_path / "flow" / "model"), **args)  # fmt: skip
    run = train(cfg, progress=False)
    assert run["finished"]
    net = DiffusionWorldModel.from_pretrained(tmp_path / "ctx" / "model", precision="fp32").pipeline.motion
    assert net.config.in_channels == 12
    assert net.stem.weight[:, 10 * net.config.fold**2 :].abs().sum() > 0  # it learned to read the new input
    with pytest.raises(ValueError, match="context_flow"):
        preset("compact-from-scratch", data=["d"], out="o", context_flow=True)


@pytest.mark.slow
def test_denoiser_run_on_a_context_flow_network_reads_the_flow(dataset: Path, tmp_path: Path, monkeypatch) -> None:
    import dexsim.training.trainer as trainer

    args = {"steps": 1, "batch_size": 2, "model": "tiny-warp", "width": 32, "height": 32, "window": 5,
            "checkpoint_every": 1, "validate_every": 1, "warmup_steps": 1, "context_prob": 1.0}  # fmt: skip
    train(preset("motion-flow", data=[str(dataset)], out=str(tmp_path / "ctx"), context_flow=True, **args),
          progress=False)  # fmt: skip
    flows: list[object] = []
    real = trainer.diffusion_loss

    def spy(*a, **kw):
        flows.append(kw.get("flow"))
        return real(*a, **kw)

    monkeypatch.setattr(trainer, "diffusion_loss", spy)
    cfg = preset("compact-from-scratch", data=[str(dataset)], out=str(tmp_path / "den"),
                 init_from=str(tmp_path / "ctx" / "model"), **args)  # fmt: skip
    assert train(cfg, progress=False)["finished"]
    assert flows and all(isinstance(f, torch.Tensor) for f in flows)  # the frozen network's context flow is there
