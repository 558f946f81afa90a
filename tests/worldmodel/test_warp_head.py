"""The v2 output head: static pixels moved by a flow plus a residual; starting from saved weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dexsim.training.loss import diffusion_loss
from dexsim.training.trainer import init_from_folder
from dexsim.worldmodel import compact_pipeline
from dexsim.worldmodel.compact import CompactVideoDenoiser, warp


def test_warp_moves_pixels_by_the_flow() -> None:
    img = torch.rand(2, 3, 12, 16)
    assert torch.allclose(warp(img, torch.zeros(2, 2, 12, 16)), img, atol=1e-6)
    flow = torch.zeros(2, 2, 12, 16)
    flow[:, 0], flow[:, 1] = 3.0, -2.0  # output (y, x) takes the input at (y - 2, x + 3)
    out = warp(img, flow)
    assert torch.allclose(out[:, :, 2:, :13], img[:, :, :10, 3:], atol=1e-5)
    assert not torch.allclose(out, img)


def test_warp_mode_is_checked_at_the_door() -> None:
    with pytest.raises(ValueError, match="output_mode"):
        CompactVideoDenoiser(output_mode="flowy", block_channels=(16, 16, 16), fold=2)
    with pytest.raises(ValueError, match="in_channels"):
        CompactVideoDenoiser(in_channels=4, output_mode="warp", block_channels=(16, 16, 16), fold=2)


def test_warp_head_starts_as_the_residual_model_and_its_flow_moves_the_static_video(tmp_path: Path) -> None:
    residual = compact_pipeline("tiny", seed=1)
    torch.nn.init.normal_(residual.transformer.head.weight, std=0.02)  # a non-trivial "trained" residual head
    residual.save_pretrained(tmp_path / "saved")
    warped = compact_pipeline("tiny", seed=7, output_mode="warp")
    report = init_from_folder(warped.transformer, tmp_path / "saved")
    assert report["skipped"] == ["flow_head.weight", "flow_head.bias"]
    x = torch.randn(1, 3, 10, 16, 16)
    t = torch.tensor([300])
    with torch.no_grad():
        a, b = residual.transformer(x, t).sample, warped.transformer(x, t).sample
        assert torch.allclose(a, b, atol=1e-5)
        torch.nn.init.constant_(warped.transformer.flow_head.bias, 1.0)  # flow of `fold` px in x and y
        moved = warped.transformer(x, t).sample
    known = x[:, :, 4:7]
    shifted = known[..., 2:, 2:] - known[..., :-2, :-2]  # what the warp adds away from the borders
    assert torch.allclose((moved - a)[..., :-2, :-2], shifted, atol=1e-4)
    with pytest.raises(ValueError, match="shares no tensor"):
        init_from_folder(torch.nn.Linear(3, 2), tmp_path / "saved")
    with pytest.raises(FileNotFoundError, match="transformer"):
        init_from_folder(warped.transformer, tmp_path)


def test_pyramid_loss_adds_the_coarse_levels() -> None:
    pipe = compact_pipeline("tiny", seed=0)
    rng = np.random.default_rng(0)
    static, prompt, video = (rng.integers(0, 255, (2, 5, 16, 16, 3), dtype=np.uint8) for _ in range(3))
    context = torch.tensor([0, 1])
    one = diffusion_loss(pipe, static, prompt, video, context, generator=torch.Generator().manual_seed(0))
    three = diffusion_loss(pipe, static, prompt, video, context, generator=torch.Generator().manual_seed(0),
                           pyramid=3)  # fmt: skip
    assert float(three.detach()) > float(one.detach()) > 0.0
    # an untrained residual model predicts 0, so the pyramid terms are the pooled residual's energy: less
    # than the full-resolution term (averaging cannot add energy), more than nothing
    assert float(three.detach()) < 3 * float(one.detach())


def test_convex_upsampling_keeps_a_constant_flow_and_can_put_an_edge_inside_a_cell() -> None:
    from dexsim.worldmodel.compact import convex_upsample

    flow = torch.zeros(1, 2, 4, 4)
    flow[:, 0] = 5.0
    mask = torch.zeros(1, 9 * 4, 4, 4)
    up = convex_upsample(flow, mask, 2)
    assert up.shape == (1, 2, 8, 8)
    assert torch.allclose(up[0, 0, 2:6, 2:6], torch.full((4, 4), 5.0)) and not up[0, 1].any()  # away from borders
    # an object in coarse column 1 (flow 4 px), table elsewhere: the mask picks, per fine pixel, the centre
    # cell or its right neighbour, so the edge falls after the first of the two fine columns of cell 2
    step = torch.zeros(1, 2, 4, 4)
    step[:, 0, :, 1] = 4.0
    logits = torch.zeros(1, 9, 2, 2, 4, 4)  # (N, neighbour, fy, fx, h, w)
    logits[:, 4] = 20.0  # every fine pixel takes its own cell...
    logits[:, 3, :, 0, :, 2], logits[:, 4, :, 0, :, 2] = 20.0, -20.0  # ...but cell 2's first column its left one
    up = convex_upsample(step, logits.reshape(1, 36, 4, 4), 2)
    assert up[0, 0, 3].tolist() == pytest.approx([0, 0, 4, 4, 4, 0, 0, 0], abs=1e-4)


def test_convex_warp_model_starts_from_bilinear_weights_and_its_flow_reaches_the_loss(tmp_path: Path) -> None:
    bilinear = compact_pipeline("tiny-warp", seed=1)
    bilinear.save_pretrained(tmp_path / "saved")
    convex = compact_pipeline("tiny-warp", seed=3, flow_upsampling="convex")
    report = init_from_folder(convex.transformer, tmp_path / "saved")
    assert report["skipped"] == ["flow_mask.weight", "flow_mask.bias"]
    seen: list[torch.Tensor] = []
    convex.transformer.flow_out.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        convex.transformer.flow_head.bias.fill_(1.0)  # 2 px (fold 2) in x and y on every cell
        convex.transformer(torch.randn(1, 3, 10, 16, 16), torch.tensor([300]))
    assert seen[-1].shape == (3, 2, 16, 16)
    assert torch.allclose(seen[-1][..., 2:-2, 2:-2], torch.full((3, 2, 12, 12), 2.0), atol=1e-5)
    with pytest.raises(ValueError, match="flow_upsampling"):
        CompactVideoDenoiser(output_mode="warp", flow_upsampling="cubic", block_channels=(16, 16, 16), fold=2)
    with pytest.raises(ValueError, match="needs `output_mode='warp'`"):  # a residual model has no flow: not ignored
        CompactVideoDenoiser(flow_upsampling="convex", block_channels=(16, 16, 16), fold=2)
