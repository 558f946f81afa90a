"""DexWorldPipeline on the compact and the tiny CogVideoX-Fun-InP backbones: shapes, determinism,
context frames, shared static encoding, save/load and LoRA round trips."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dexsim.worldmodel import DiffusionWorldModel, WorldModel, compact_pipeline, load, rollout
from dexsim.worldmodel.cogvideox_fun import (
    add_lora,
    load_dwm_lora,
    save_dwm_lora,
    tiny_cogvideox_fun_pipeline,
)
from dexsim.worldmodel.pipeline import DexWorldPipeline
from dexsim.worldmodel.rollout import iter_rollout, window_starts


def _randomize_head(pipe: DexWorldPipeline, seed: int = 0) -> DexWorldPipeline:
    """Zero-initialised output layers make a fresh model ignore its inputs; give them weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in pipe.transformer.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return pipe


def _videos(b: int, t: int, s: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (1, t, s, s, 3), dtype=np.uint8), rng.integers(0, 255, (b, t, s, s, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def compact() -> DexWorldPipeline:
    return _randomize_head(compact_pipeline("tiny"))


@pytest.fixture(scope="module")
def cogvideox() -> DexWorldPipeline:
    return tiny_cogvideox_fun_pipeline(16, 16)


def test_compact_shapes_determinism_and_hands_matter(compact: DexWorldPipeline) -> None:
    static, prompt = _videos(2, 5, 16)
    a = compact(static, prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(3)).frames
    b = compact(static, prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(3)).frames
    c = compact(static, prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(4)).frames
    assert a.shape == (2, 5, 16, 16, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    other = compact(
        static, prompt[::-1].copy(), num_inference_steps=2, generator=torch.Generator().manual_seed(3)
    ).frames
    assert not np.array_equal(a[0], other[0])  # a different hand video changes the result


def test_fresh_compact_model_returns_the_static_video() -> None:
    """Residual-to-static with a zero-initialised head: an untrained model passes the static scene through."""
    pipe = compact_pipeline("tiny")
    static, prompt = _videos(1, 4, 16)
    out = pipe(static, prompt, num_inference_steps=2).frames
    assert np.array_equal(out, static)


def test_context_frames_come_back_unchanged(compact: DexWorldPipeline, cogvideox: DexWorldPipeline) -> None:
    static, prompt = _videos(2, 9, 16)
    ctx = np.random.default_rng(1).integers(0, 255, (2, 2, 16, 16, 3), dtype=np.uint8)
    for pipe in (compact, cogvideox):
        out = pipe(static, prompt, context=ctx, num_inference_steps=2).frames
        assert np.array_equal(out[:, :2], ctx)
    with pytest.raises(ValueError, match="shorter than the window"):
        compact(static, prompt, context=np.zeros((2, 9, 16, 16, 3), np.uint8))


def test_shared_static_is_encoded_once(cogvideox: DexWorldPipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    static, prompt = _videos(3, 9, 16)
    calls = []
    enc = cogvideox.vae.encode

    def counting(x, *a, **k):
        calls.append(x.shape[0])
        return enc(x, *a, **k)

    monkeypatch.setattr(cogvideox.vae, "encode", counting)
    cogvideox(static, prompt, num_inference_steps=1)
    assert calls == [1, 3]  # the static video once (batch 1), the three prompts once


def test_bad_inputs_are_named(compact: DexWorldPipeline) -> None:
    static, prompt = _videos(1, 4, 16)
    with pytest.raises(ValueError, match="multiples of 8"):  # the tiny config folds by 2, then halves twice
        compact(static[:, :, :12, :12], prompt[:, :, :12, :12])
    with pytest.raises(ValueError, match="`prompt`"):
        compact(static, prompt[..., :2])
    with pytest.raises(ValueError, match="must lie in"):
        compact(static.astype(np.float32), prompt)
    with pytest.raises(ValueError, match="num_inference_steps"):
        compact(static, prompt, num_inference_steps=0)


def test_cogvideox_fun_layout_text_and_guidance(cogvideox: DexWorldPipeline) -> None:
    cfg = cogvideox.transformer.config
    assert cfg.in_channels == 3 * cfg.out_channels + 1 and cfg.condition_channels == cfg.out_channels
    keys = cogvideox.transformer.state_dict()
    assert keys["patch_embed.proj.weight"].shape[1] == cfg.in_channels  # DWM's one widened projection
    assert not any("cond_proj" in k for k in keys)
    static, prompt = _videos(1, 9, 16)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = cogvideox(static, prompt, text="push the red box", num_inference_steps=2, generator=g()).frames
    b = cogvideox(static, prompt, text="open the drawer", num_inference_steps=2, generator=g()).frames
    c = cogvideox(
        static, prompt, text="push the red box", num_inference_steps=2, generator=g(), guidance_scale=3.0
    ).frames
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    # 7 frames are padded to the VAE's 1 + 4k and cropped back
    assert cogvideox(static[:, :7], prompt[:, :7], num_inference_steps=1).frames.shape[1] == 7


@pytest.mark.parametrize("which", ["compact", "cogvideox"])
def test_save_load_round_trip(which: str, compact: DexWorldPipeline, cogvideox: DexWorldPipeline, tmp_path) -> None:
    pipe = compact if which == "compact" else cogvideox
    wm = DiffusionWorldModel(pipe, 16, 16, window=9, context_frames=1, num_steps=2)
    wm.save_pretrained(tmp_path / "m")
    wm2 = load(tmp_path / "m")
    assert type(wm2.pipeline.transformer) is type(pipe.transformer) and wm2.window == 9 and wm2.num_steps == 2
    static, prompt = _videos(1, 9, 16)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert np.array_equal(wm.generate(static, prompt, generator=g()).frames,
                          wm2.generate(static, prompt, generator=g()).frames)  # fmt: skip
    wm2.save_pretrained(tmp_path / "again")  # loaded from a path: diffusers would record it in the configs
    configs = [tmp_path / "again" / "model_index.json", *(tmp_path / "again").glob("*/config.json")]
    assert len(configs) >= 2 and not any("_name_or_path" in p.read_text() for p in configs)


def test_dwm_lora_round_trip(tmp_path) -> None:
    pipe = tiny_cogvideox_fun_pipeline(16, 16, text=False)
    add_lora(pipe.transformer, rank=4)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in pipe.transformer.named_parameters():
            if "lora_B" in n or "patch_embed.proj" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    save_dwm_lora(pipe.transformer, tmp_path / "ckpt")
    from safetensors.torch import load_file

    lora = load_file(str(tmp_path / "ckpt" / "pytorch_lora_weights.safetensors"))
    assert all(k.startswith("transformer_blocks.") for k in lora)  # DWM's keys: no prefix
    assert any(k.endswith("attn1.to_q.lora_A.weight") for k in lora)
    assert set(load_file(str(tmp_path / "ckpt" / "non_lora_weights.safetensors"))) == {
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
    }
    fresh = tiny_cogvideox_fun_pipeline(16, 16, text=False, seed=0)
    info = load_dwm_lora(fresh.transformer, tmp_path / "ckpt")
    assert info["rank"] == 4 and info["non_lora_keys"] == ["patch_embed.proj.bias", "patch_embed.proj.weight"]
    static, prompt = _videos(1, 9, 16)
    out = lambda p: p(static, prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames  # noqa: E731
    assert np.array_equal(out(pipe), out(fresh))
    with pytest.raises(FileNotFoundError, match="pytorch_lora_weights"):
        load_dwm_lora(tiny_cogvideox_fun_pipeline(16, 16, text=False).transformer, tmp_path)


def test_real_loader_says_what_to_download(tmp_path) -> None:
    from dexsim.worldmodel.cogvideox_fun import load_cogvideox_fun

    with pytest.raises(FileNotFoundError, match=r"CogVideoX-Fun-V1\.1-5b-InP"):
        load_cogvideox_fun(tmp_path)


def test_window_starts_cover_everything_once() -> None:
    assert window_starts(9, 9, 1) == [0]
    for total in (10, 16, 23, 100):
        s = window_starts(total, 9, 1)
        assert s[0] == 0 and s[-1] + 9 == total and all(b - a <= 8 for a, b in itertools.pairwise(s))


@pytest.mark.slow
def test_long_rollout_is_chunked_and_memory_is_flat(compact: DexWorldPipeline) -> None:
    """100 windows: each continuation starts from the last generated frame; no growth per window."""
    import tracemalloc

    wm = DiffusionWorldModel(compact, 16, 16, window=3, context_frames=1, num_steps=1)
    assert isinstance(wm, WorldModel)
    n = 1 + 2 * 100
    static, prompt = _videos(1, n, 16)
    sizes, seen = [], 0
    tracemalloc.start()
    for first, new in iter_rollout(wm, static, prompt, generator=torch.Generator().manual_seed(0)):
        assert first == seen
        seen += new.shape[1]
        sizes.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    assert seen == n and len(sizes) == 100
    assert max(sizes[50:]) - min(sizes[10:]) < 2_000_000  # bytes: flat, not growing with the episode
    full = rollout(wm, static[:, :9], prompt[:, :9], generator=torch.Generator().manual_seed(0))
    assert full.shape == (1, 9, 16, 16, 3)


def test_precision_bf16_is_close_to_fp32(compact: DexWorldPipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    static, prompt = _videos(1, 9, 16)
    out = {}
    for p in ("fp32", "bf16"):
        wm = DiffusionWorldModel(compact, 16, 16, window=9, context_frames=1, num_steps=2, precision=p)
        assert wm.precision == p
        out[p] = wm.generate(static, prompt, generator=torch.Generator().manual_seed(0)).frames.astype(float)
    mse = np.mean((out["fp32"] - out["bf16"]) ** 2)
    assert 0 < mse and 10 * np.log10(255**2 / mse) > 35  # different arithmetic, the same video
    for forced in ("bf16", "fp32"):  # `auto` follows $DEXSIM_PRECISION
        monkeypatch.setenv("DEXSIM_PRECISION", forced)
        assert DiffusionWorldModel(compact, 16, 16, precision="auto").precision == forced
    monkeypatch.setenv("DEXSIM_PRECISION", "half")
    with pytest.raises(ValueError, match="'half'"):
        DiffusionWorldModel(compact, 16, 16)
    with pytest.raises(ValueError, match="precision"):
        DiffusionWorldModel(compact, 16, 16, precision="fp8")


def _scene_with_box(t: int, s: int, box_x: int, shift: int = 0) -> torch.Tensor:
    """(1, T, 3, S, S) model-space video: grey table with a 3x3 red box at column ``box_x`` (row 6), the camera
    panning ``shift`` whole pixels right per frame (everything in view moves with it)."""
    v = torch.full((1, t, 3, s, s), -0.2)
    for i in range(t):
        x = box_x + i * shift
        v[0, i, :, 6:9, x : x + 3] = torch.tensor([0.9, -0.9, -0.9])[:, None, None]
    return v


def test_carry_scene_keeps_a_moved_object_moved() -> None:
    """The context shows the box pushed 5 px right: every later frame of the carried static video shows it there,
    its old place shows the table; following a camera that pans; never under the hand; unchanged when nothing
    moved."""
    from dexsim.worldmodel.pipeline import carry_scene_changes

    t, s = 5, 24
    for pan in (0, 1):
        static = _scene_with_box(t, s, 4, pan)
        context = _scene_with_box(1, s, 9)  # the last known frame: the box 5 px right of where the scene has it
        prompt = torch.full((1, t, 3, s, s), -1.0)  # no hand in view
        out = carry_scene_changes(static, prompt, context)
        for i in range(1, t):
            assert torch.allclose(out[0, i, :, 7, 9 + i * pan], torch.tensor([0.9, -0.9, -0.9])), (pan, i)
            assert torch.allclose(out[0, i, :, 7, 5 + i * pan], torch.tensor([-0.2, -0.2, -0.2])), (pan, i)
        assert torch.equal(out[:, 0], static[:, 0])
    static = _scene_with_box(t, s, 4)
    hand = torch.full((1, t, 3, s, s), -1.0)
    hand[0, 0, :, 5:10, 8:13] = 0.5  # the hand covers the new place in the context frame
    out = carry_scene_changes(static, hand, _scene_with_box(1, s, 9))
    assert torch.allclose(out[0, 2, :, 7, 10], torch.tensor([-0.2, -0.2, -0.2]))  # nothing carried from under it
    assert torch.equal(carry_scene_changes(static, prompt, static[:, :1]), static)


def test_carry_scene_is_a_saved_pipeline_option(compact: DexWorldPipeline, tmp_path) -> None:
    """``carry_scene=True`` round-trips through save/load and changes a continued window where the context moved
    something; it leaves a window without context alone."""
    pipe = DexWorldPipeline(compact.transformer, compact.scheduler, carry_scene=True)
    wm = DiffusionWorldModel(pipe, 16, 16, window=9, context_frames=1, num_steps=2)
    wm.save_pretrained(tmp_path / "m")
    assert load(tmp_path / "m").pipeline.config.carry_scene is True
    static = ((_scene_with_box(9, 16, 2)[0].permute(0, 2, 3, 1) + 1) * 127.5).round().to(torch.uint8).numpy()[None]
    moved = ((_scene_with_box(1, 16, 9)[0].permute(0, 2, 3, 1) + 1) * 127.5).round().to(torch.uint8).numpy()[None]
    prompt = np.zeros_like(static)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    with_carry = pipe(static, prompt, context=moved, num_inference_steps=2, generator=g()).frames
    without = compact(static, prompt, context=moved, num_inference_steps=2, generator=g()).frames
    assert not np.array_equal(with_carry[:, 1:], without[:, 1:])
    assert np.array_equal(pipe(static, prompt, num_inference_steps=2, generator=g()).frames,
                          compact(static, prompt, num_inference_steps=2, generator=g()).frames)  # fmt: skip
