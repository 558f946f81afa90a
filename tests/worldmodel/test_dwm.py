"""DWM's real checkpoint layouts: CogVideoX-Fun (peft LoRA + widened patch_embed.proj) and Wan-Fun (VideoX-Fun
LoRA merged + widened patch_embedding), built by hand in DWM's exact key format at tiny sizes."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dexsim.worldmodel.cogvideox_fun import (
    load_cogvideox_fun,
    load_dwm_lora,
    tiny_cogvideox_fun_pipeline,
)
from dexsim.worldmodel.wan_fun import (
    _linear_names,
    load_distill_lora,
    load_dwm_wan_lora,
    tiny_wan_fun_pipeline,
    to_diffusers_name,
    to_original_name,
)


def _videos(t: int = 9, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (1, t, size, size, 3), dtype=np.uint8),
            rng.integers(0, 256, (1, t, size, size, 3), dtype=np.uint8))  # fmt: skip


def _run(pipe, text=None) -> np.ndarray:
    s, p = _videos()
    return pipe(s, p, text=text, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames


def _released_cogvideox_ckpt(transformer, folder, rank: int = 4) -> dict[str, torch.Tensor]:
    """A checkpoint folder as DWM writes it: plain diffusers LoRA keys, no prefix, no alpha."""
    g = torch.Generator().manual_seed(3)
    lora = {}
    for i, block in enumerate(transformer.transformer_blocks):
        for t in ("to_q", "to_k", "to_v", "to_out.0"):
            lin = block.attn1.get_submodule(t)
            lora[f"transformer_blocks.{i}.attn1.{t}.lora_A.weight"] = torch.randn(rank, lin.in_features, generator=g)
            lora[f"transformer_blocks.{i}.attn1.{t}.lora_B.weight"] = (
                torch.randn(lin.out_features, rank, generator=g) * 0.1
            )
    proj = transformer.patch_embed.proj
    extra = {"patch_embed.proj.weight": torch.randn(proj.weight.shape, generator=g) * 0.1,
             "patch_embed.proj.bias": torch.randn(proj.bias.shape, generator=g) * 0.1}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    save_file(lora, str(folder / "pytorch_lora_weights.safetensors"))
    save_file(extra, str(folder / "non_lora_weights.safetensors"))
    return lora | extra


def test_cogvideox_release_loads_exactly_with_scale_one(tmp_path) -> None:
    pipe = tiny_cogvideox_fun_pipeline(16, 16, text=False)
    merged = copy.deepcopy(pipe)
    tensors = _released_cogvideox_ckpt(pipe.transformer, tmp_path / "ckpt")
    info = load_dwm_lora(pipe.transformer, tmp_path / "ckpt")
    assert info["rank"] == 4 and info["lora_keys"] == 8 and len(info["non_lora_keys"]) == 2
    # the same function by hand: W + B @ A (alpha = rank), the widened projection copied
    with torch.no_grad():
        for k, a in tensors.items():
            if k.endswith("lora_A.weight"):
                lin = merged.transformer.get_submodule(k.removesuffix(".lora_A.weight"))
                lin.weight += tensors[k.replace("lora_A", "lora_B")] @ a
        merged.transformer.patch_embed.proj.weight.copy_(tensors["patch_embed.proj.weight"])
        merged.transformer.patch_embed.proj.bias.copy_(tensors["patch_embed.proj.bias"])
    assert np.abs(_run(pipe).astype(int) - _run(merged).astype(int)).max() <= 1


def test_cogvideox_loader_refuses_what_is_not_dwm(tmp_path) -> None:
    from safetensors.torch import load_file

    fresh = lambda: tiny_cogvideox_fun_pipeline(16, 16, text=False).transformer  # noqa: E731
    good = tmp_path / "good"
    _released_cogvideox_ckpt(fresh(), good)
    lora = load_file(str(good / "pytorch_lora_weights.safetensors"))
    extra = load_file(str(good / "non_lora_weights.safetensors"))

    def folder(name, lora_sd, extra_sd):
        d = tmp_path / name
        d.mkdir()
        save_file(lora_sd, str(d / "pytorch_lora_weights.safetensors"))
        if extra_sd is not None:
            save_file(extra_sd, str(d / "non_lora_weights.safetensors"))
        return d

    with pytest.raises(ValueError, match="not DWM CogVideoX LoRA keys"):
        load_dwm_lora(fresh(), folder("ffn", lora | {"transformer_blocks.0.ff.net.0.proj.lora_A.weight":
                                                         torch.zeros(4, 16)}, extra))  # fmt: skip
    missing = dict(lora)
    missing.pop("transformer_blocks.0.attn1.to_v.lora_B.weight")
    with pytest.raises(ValueError, match="1 LoRA keys missing"):
        load_dwm_lora(fresh(), folder("missing", missing, extra))
    narrow = extra | {"patch_embed.proj.weight": extra["patch_embed.proj.weight"][:, :9].contiguous()}
    with pytest.raises(ValueError, match=r"widens the 33 InP channels to 49"):
        load_dwm_lora(fresh(), folder("narrow", lora, narrow))
    with pytest.raises(FileNotFoundError, match="non_lora_weights"):
        load_dwm_lora(fresh(), folder("nolora", lora, None))
    prefixed = {f"transformer.{k}": v for k, v in lora.items()}  # diffusers' save_lora_weights style is fine
    assert load_dwm_lora(fresh(), folder("prefixed", prefixed, extra))["rank"] == 4


def test_widening_keeps_the_function() -> None:
    from dexsim.worldmodel._checkpoint import widen_input_weight

    conv = torch.nn.Conv3d(5, 7, (1, 2, 2), stride=(1, 2, 2))
    wide = torch.nn.Conv3d(8, 7, (1, 2, 2), stride=(1, 2, 2))
    with torch.no_grad():
        wide.weight.copy_(widen_input_weight(conv.weight, 3))
        wide.bias.copy_(conv.bias)
    x = torch.randn(2, 5, 3, 8, 8)
    assert torch.allclose(wide(torch.cat((x, torch.zeros(2, 3, 3, 8, 8)), 1)), conv(x), atol=1e-6)
    assert wide.weight[:, 5:].abs().max() == 0 and torch.equal(wide.weight[:, :5], conv.weight)


def test_cogvideox_base_folder_is_widened_with_zeros(tmp_path) -> None:
    """A base CogVideoX-Fun-InP folder (33-channel layout at tiny size) loads widened: with zero hand latents
    the widened model is the base model."""
    from diffusers import CogVideoXTransformer3DModel

    ref = tiny_cogvideox_fun_pipeline(16, 16, text=True)
    cfg = {k: v for k, v in ref.transformer.config.items() if not k.startswith("_")}
    cfg.pop("condition_channels"), cfg.pop("residual_to_static")
    base_t = CogVideoXTransformer3DModel(**(cfg | {"in_channels": cfg["in_channels"] - 4}))
    base = tmp_path / "base"
    base_t.save_pretrained(base / "transformer")
    ref.vae.save_pretrained(base / "vae")
    ref.text_encoder.save_pretrained(base / "text_encoder")
    ref.tokenizer.save_pretrained(base / "tokenizer")
    ref.scheduler.save_pretrained(base / "scheduler")
    pipe = load_cogvideox_fun(base, dtype=torch.float32, condition_channels=4)
    assert pipe.transformer.patch_embed.proj.weight.shape[1] == cfg["in_channels"]
    x = torch.randn(1, 3, cfg["in_channels"] - 4, 2, 2)
    emb = torch.zeros(1, 8, 8)
    with torch.no_grad():
        a = base_t(hidden_states=x, encoder_hidden_states=emb, timestep=torch.tensor([10])).sample
        b = pipe.transformer(hidden_states=torch.cat((x, torch.zeros(1, 3, 4, 2, 2)), 2), encoder_hidden_states=emb,
                             timestep=torch.tensor([10])).sample  # fmt: skip
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(FileNotFoundError, match=r"CogVideoX-Fun-V1\.1-5b-InP"):
        load_cogvideox_fun(tmp_path / "nothing")


# ----------------------------------------------------------------------------------------------- Wan
def _released_wan_ckpt(transformer, folder, rank: int = 2, alpha: float = 4.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    sd = {}
    modules = dict(transformer.named_modules())
    for stem, name in _linear_names(transformer).items():
        lin = modules[name]
        sd[f"lora_unet__{stem}.lora_down.weight"] = torch.randn(rank, lin.in_features, generator=g)
        sd[f"lora_unet__{stem}.lora_up.weight"] = torch.randn(lin.out_features, rank, generator=g) * 0.1
        sd[f"lora_unet__{stem}.alpha"] = torch.tensor(alpha)
    pe = transformer.patch_embedding
    extra = {"patch_embedding.weight": torch.randn(pe.weight.shape, generator=g) * 0.1,
             "patch_embedding.bias": torch.randn(pe.bias.shape, generator=g) * 0.1}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(folder / "lora_diffusion_pytorch_model.safetensors"))
    save_file(extra, str(folder / "non_lora_weights.safetensors"))
    return sd


def test_wan_lora_names_are_videox_fun_names() -> None:
    pipe = tiny_wan_fun_pipeline(16, 16)
    stems = set(_linear_names(pipe.transformer))
    assert {"blocks_0_self_attn_q", "blocks_0_cross_attn_k_img", "blocks_0_ffn_0", "time_projection_1", "head_head",
            "img_emb_proj_1", "text_embedding_2"} <= stems  # fmt: skip
    assert to_diffusers_name("blocks.3.norm3.weight") == "blocks.3.norm2.weight"
    assert to_diffusers_name("blocks.3.cross_attn.norm_k_img.weight") == "blocks.3.attn2.norm_added_k.weight"
    assert to_diffusers_name("head.modulation") == "scale_shift_table"
    for name in pipe.transformer.state_dict():  # the two namings map one-to-one on every parameter
        assert to_diffusers_name(to_original_name(name)) == name
    assert to_original_name("blocks.0.attn1.to_out.0.weight") == "blocks.0.self_attn.o.weight"


def test_wan_release_merges_with_alpha_over_rank(tmp_path) -> None:
    pipe = tiny_wan_fun_pipeline(16, 16, text=True)
    before = pipe.transformer.blocks[0].attn1.to_q.weight.detach().clone()
    sd = _released_wan_ckpt(pipe.transformer, tmp_path / "ckpt")
    info = load_dwm_wan_lora(pipe.transformer, tmp_path / "ckpt")
    assert info["rank"] == [2] and info["modules"] == len(_linear_names(pipe.transformer))
    want = before + 2.0 * sd["lora_unet__blocks_0_self_attn_q.lora_up.weight"] @ sd[
        "lora_unet__blocks_0_self_attn_q.lora_down.weight"]  # alpha 4 / rank 2  # fmt: skip
    assert torch.allclose(pipe.transformer.blocks[0].attn1.to_q.weight, want, atol=1e-5)
    a, b = _run(pipe, "push the red box"), _run(pipe, "open the drawer")
    assert a.shape == (1, 9, 16, 16, 3) and not np.array_equal(a, b)


def test_wan_loader_refuses_other_models(tmp_path) -> None:
    from safetensors.torch import load_file

    small = tiny_wan_fun_pipeline(16, 16, image_dim=None).transformer  # a text-to-video variant: no k_img/img_emb
    _released_wan_ckpt(tiny_wan_fun_pipeline(16, 16).transformer, tmp_path / "i2v")
    with pytest.raises(ValueError, match="LoRA modules are not in it"):
        load_dwm_wan_lora(small, tmp_path / "i2v")
    good = tiny_wan_fun_pipeline(16, 16).transformer
    d = tmp_path / "narrow"
    _released_wan_ckpt(good, d)
    extra = load_file(str(d / "non_lora_weights.safetensors"))
    save_file(extra | {"patch_embedding.weight": extra["patch_embedding.weight"][:, :-4].contiguous()},
              str(d / "non_lora_weights.safetensors"))  # fmt: skip
    with pytest.raises(ValueError, match="36 input channels to 52"):
        load_dwm_wan_lora(good, d)
    with pytest.raises(FileNotFoundError, match=r"DWM-Wan2\.1-Fun-14b-LoRA"):
        load_dwm_wan_lora(good, tmp_path / "nothing")


def test_distill_lora_formats_merge(tmp_path) -> None:
    t = tiny_wan_fun_pipeline(16, 16).transformer
    q = t.blocks[0].attn1.to_q
    w0, b0 = q.weight.detach().clone(), q.bias.detach().clone()
    down, up = torch.randn(2, q.in_features), torch.randn(q.out_features, 2)
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": down,
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": up,
               "diffusion_model.blocks.0.self_attn.q.alpha": torch.tensor(1.0),
               "diffusion_model.blocks.0.self_attn.q.diff_b": torch.ones(q.out_features)},
              str(tmp_path / "distill.safetensors"))  # fmt: skip
    assert load_distill_lora(t, tmp_path / "distill.safetensors") == 1
    assert torch.allclose(q.weight, w0 + 0.5 * up @ down, atol=1e-5) and torch.allclose(q.bias, b0 + 1.0)
    save_file({"diffusion_model.blocks.7.self_attn.q.lora_down.weight": down}, str(tmp_path / "big.safetensors"))
    with pytest.raises(ValueError, match="not a module of this transformer"):
        load_distill_lora(t, tmp_path / "big.safetensors")


# ------------------------------------------------------------------------------------------- names
def test_names_say_what_to_download(tmp_path, monkeypatch) -> None:
    from dexsim.worldmodel import load
    from dexsim.worldmodel.models import frame_size

    monkeypatch.setenv("DEXSIM_CHECKPOINTS", str(tmp_path))
    assert frame_size("dwm-cogvideox-5b") == (720, 480)
    with pytest.raises(FileNotFoundError, match=r"alibaba-pai/Wan2\.1-Fun-V1\.1-14B-InP"):
        load("dwm-wan2.1-14b")
    (tmp_path / "dwm-cogvideox-5b" / "base").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="byungjun-kim/DWM-CogVideoX-Fun-5b-LoRA"):
        load("dwm-cogvideox-5b")
    with pytest.raises(FileNotFoundError, match="transformer is missing"):
        load("dwm-cogvideox-5b", lora=tmp_path)
    from dexsim.doctor import check_dwm_checkpoints

    check = check_dwm_checkpoints()
    assert check.data["ready"] == [] and json.dumps(check.data)


def test_text_is_encoded_once_per_text() -> None:
    pipe = tiny_cogvideox_fun_pipeline(16, 16, text=True)
    calls = []
    pipe.text_encoder.register_forward_hook(lambda *_: calls.append(1))
    for _ in range(3):
        pipe.encode_text(["push the red box"], 4, torch.device("cpu"), torch.float32)
    assert len(calls) == 1


def test_wan_flow_matching_loss_trains() -> None:
    from dexsim.training.loss import diffusion_loss

    pipe = tiny_wan_fun_pipeline(16, 16, text=False)
    s, p = _videos()
    opt = torch.optim.Adam(pipe.transformer.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = diffusion_loss(pipe, torch.from_numpy(s), torch.from_numpy(p), torch.from_numpy(s), torch.tensor([0]),
                              generator=torch.Generator().manual_seed(0))  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("layout", ["diffusers", "original"])
def test_wan_base_folder_loads_widened(layout: str, tmp_path) -> None:
    """A Wan-Fun-InP base (36-channel layout at tiny size: 4 noisy | 4 mask | 4 static) in diffusers' or
    VideoX-Fun's original layout loads widened by zeros, then takes a DWM checkpoint of the widened size."""
    from diffusers import WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from dexsim.worldmodel.cogvideox_fun import tiny_text_encoder
    from dexsim.worldmodel.wan_fun import load_wan_fun

    ref = tiny_wan_fun_pipeline(16, 16, text=False, image_dim=None)
    cfg = {k: v for k, v in ref.transformer.config.items() if not k.startswith("_")}
    cfg.pop("condition_channels"), cfg.pop("residual_to_static")
    torch.manual_seed(1)
    base_t = WanTransformer3DModel(**(cfg | {"in_channels": 12}))
    base = tmp_path / "base"
    if layout == "diffusers":
        base_t.save_pretrained(base / "transformer")
    else:
        base.mkdir()
        save_file({to_original_name(k): v.contiguous() for k, v in base_t.state_dict().items()},
                  str(base / "diffusion_pytorch_model.safetensors"))  # fmt: skip
        (base / "config.json").write_text(json.dumps({"model_type": "t2v", "dim": 16, "in_dim": 12, "out_dim": 4,
                                                      "num_heads": 2, "ffn_dim": 32, "num_layers": 1, "text_dim": 8,
                                                      "freq_dim": 8, "eps": 1e-6}))  # fmt: skip
    ref.vae.save_pretrained(base / "vae")
    _, tokenizer = tiny_text_encoder(8)
    tokenizer.save_pretrained(base / "tokenizer")
    UMT5EncoderModel(UMT5Config(vocab_size=64, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2)).save_pretrained(
        base / "text_encoder")  # fmt: skip
    pipe = load_wan_fun(base, dtype=torch.float32)
    own, src = pipe.transformer.state_dict(), base_t.state_dict()
    assert own["patch_embedding.weight"].shape[1] == 16 and own["patch_embedding.weight"][:, 12:].abs().max() == 0
    assert all(torch.equal(own[k], v) for k, v in src.items() if k != "patch_embedding.weight")
    _released_wan_ckpt(pipe.transformer, tmp_path / "lora")
    with_lora = load_wan_fun(base, tmp_path / "lora", dtype=torch.bfloat16).transformer
    assert with_lora.condition_embedder.time_embedder.linear_1.weight.dtype == torch.float32  # kept in fp32
    assert with_lora.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert _run(pipe, "push the red box").shape == (1, 9, 16, 16, 3)
