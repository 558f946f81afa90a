"""Wan-Fun-InP with DWM's hand channels on diffusers' Wan classes, and DWM's Wan checkpoint formats.

Facts of DWM's released ``byungjun-kim/DWM-Wan2.1-Fun-14b-LoRA`` (on ``alibaba-pai/Wan2.1-Fun-V1.1-14B-InP``) and
of its Wan code (snuvclab/dwm ``training/wan/``):

- DWM runs VideoX-Fun's own Wan transformer (original Wan key names: ``blocks.<i>.self_attn.q``, ``ffn.0``,
  ``head.head``...), whose weights are the same as diffusers' ``WanTransformer3DModel`` under the renames in
  :data:`WAN_RENAMES` (``norm2``/``norm3`` swap places). Wan2.1-Fun-InP's ``patch_embedding`` (Conv3d, kernel
  and stride (1, 2, 2)) takes 36 channels; DWM widens it to 52 (14B: [5120, 52, 1, 2, 2], 1.3B: [1536, 52, 1, 2, 2]),
  the 16 new hand-latent channels appended and zero-initialised. Wan2.2-Fun-5B-InP: 48-channel latents, 48 more.
- Channels, in order: noisy latents (16) | mask (4 channels of ones: every frame generated) | static-video latents
  (16) | hand-video latents (16). Latents are normalised per channel by the VAE's mean and std (no scaling
  factor). For an image-to-video base DWM's inference passes a zero CLIP image (257 tokens of 1280).
- Checkpoint folder: ``lora_diffusion_pytorch_model.safetensors`` (VideoX-Fun/kohya LoRA: keys
  ``lora_unet__<module path with . as _>.lora_down.weight`` [r, in], ``.lora_up.weight`` [out, r], ``.alpha``; rank 64,
  alpha 64, on every Linear of the transformer: attention, cross-attention incl. ``k_img``/``v_img``, FFN, text and
  time embeddings, ``time_projection``, ``head``, ``img_emb``) merged into the weights as
  ``W += (alpha / r) up @ down``; and ``non_lora_weights.safetensors`` (``patch_embedding.weight`` and ``.bias``).
- Sampling: ``FlowMatchEulerDiscreteScheduler`` with shift 5 (Wan2.2: 12), velocity ``noise - x0``, 50 steps, text
  guidance 6 against "bad detailed", umT5 at 512 tokens (padding zeroed), 49 frames at 720x480, 8 fps. A 4-step
  distillation LoRA (LightX2V) may be merged on top (then 4 steps, guidance 1).

dexsim reads safetensors only: a base in diffusers layout (``transformer/ vae/ text_encoder/ tokenizer/``; the
transformer may also be VideoX-Fun's original layout, renamed on load), never the pickled ``.pth`` files.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from diffusers import WanTransformer3DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (diffusers looks up a loadable base class by name in this module)

from ._checkpoint import init_kwargs, keep_fp32_modules, load_exact_tensors, read_safetensors_folder, widen_input_weight

__all__ = [
    "DWM_WAN_LORA_FILE",
    "WAN_RENAMES",
    "DexWanTransformer3DModel",
    "load_distill_lora",
    "load_dwm_wan_lora",
    "load_wan_fun",
    "tiny_wan_fun_pipeline",
    "to_diffusers_name",
    "to_original_name",
    "wan_flow_scheduler",
]

DWM_WAN_LORA_FILE = "lora_diffusion_pytorch_model.safetensors"
DWM_NON_LORA_FILE = "non_lora_weights.safetensors"

#: original Wan / VideoX-Fun module path -> diffusers ``WanTransformer3DModel`` path, outside the blocks
_TOP_RENAMES: tuple[tuple[str, str], ...] = (
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("img_emb.proj.0", "condition_embedder.image_embedder.norm1"),
    ("img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"),
    ("img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"),
    ("img_emb.proj.4", "condition_embedder.image_embedder.norm2"),
    ("head.head", "proj_out"),
    ("head.modulation", "scale_shift_table"),
)
#: the same inside ``blocks.<i>.``
_BLOCK_RENAMES: tuple[tuple[str, str], ...] = (
    *((f"self_attn.{a}", f"attn1.{b}") for a, b in (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("o", "to_out.0"),
                                                     ("norm_q", "norm_q"), ("norm_k", "norm_k"))),
    *((f"cross_attn.{a}", f"attn2.{b}") for a, b in (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("o", "to_out.0"),
                                                      ("norm_q", "norm_q"), ("norm_k", "norm_k"),
                                                      ("k_img", "add_k_proj"), ("v_img", "add_v_proj"),
                                                      ("norm_k_img", "norm_added_k"))),
    ("ffn.0", "ffn.net.0.proj"),
    ("ffn.2", "ffn.net.2"),
    ("norm3", "norm2"),  # the cross-attention pre-norm (the only affine one): the names swap places
    ("modulation", "scale_shift_table"),
)  # fmt: skip
#: every (original, diffusers) pair, the block ones prefixed ``blocks.<i>.``
WAN_RENAMES: tuple[tuple[str, str], ...] = _TOP_RENAMES + tuple((f"blocks.<i>.{a}", f"blocks.<i>.{b}")
                                                                for a, b in _BLOCK_RENAMES)  # fmt: skip


def _rename(name: str, to_diffusers: bool) -> str:
    m = re.match(r"(blocks\.\d+\.)(.*)", name)
    prefix, rest = m.groups() if m else ("", name)
    for pair in _BLOCK_RENAMES if m else _TOP_RENAMES:
        old, new = pair if to_diffusers else pair[::-1]
        if rest == old or rest.startswith(old + "."):
            return prefix + new + rest[len(old) :]
    return name


def to_diffusers_name(name: str) -> str:
    """An original Wan / VideoX-Fun parameter or module path in diffusers' naming (unknown paths unchanged)."""
    return _rename(name, to_diffusers=True)


def to_original_name(name: str) -> str:
    """The inverse of :func:`to_diffusers_name`."""
    return _rename(name, to_diffusers=False)


class DexWanTransformer3DModel(WanTransformer3DModel):
    """diffusers' ``WanTransformer3DModel`` in DWM's hand-concat layout: ``in_channels`` counts every channel
    (Wan2.1: 16 noisy | 4 mask | 16 static | 16 hand = 52), the last ``condition_channels`` the hand latents."""

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 40,
        attention_head_dim: int = 128,
        in_channels: int = 52,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 13824,
        num_layers: int = 40,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = None,
        added_kv_proj_dim: int | None = None,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
        condition_channels: int = 16,
        residual_to_static: bool = False,
    ) -> None:
        if not 0 < condition_channels < in_channels:
            raise ValueError(f"`condition_channels` ({condition_channels}) must lie in (0, in_channels={in_channels})")
        args = {k: v for k, v in locals().items() if k not in ("self", "__class__", "condition_channels",
                                                                "residual_to_static")}  # fmt: skip
        super().__init__(**args)


def wan_flow_scheduler(shift: float = 5.0) -> Any:
    """DWM's Wan sampler: flow-matching Euler, static shift (5 for Wan2.1, 12 for Wan2.2)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift, use_dynamic_shifting=False)


# ------------------------------------------------------------------------------------------ LoRA formats
def _linear_names(transformer: torch.nn.Module) -> dict[str, str]:
    """diffusers Linear module path -> its original Wan path with ``.`` as ``_`` (the LoRA key stem)."""
    linears = [name for name, mod in transformer.named_modules() if isinstance(mod, torch.nn.Linear)]
    return {to_original_name(name).replace(".", "_"): name for name in linears}


def _merge(linear: torch.nn.Linear, down: torch.Tensor, up: torch.Tensor, scale: float) -> None:
    with torch.no_grad():
        delta = (up.float() @ down.float()) * scale
        linear.weight.add_(delta.to(linear.weight.dtype))


def load_dwm_wan_lora(transformer: torch.nn.Module, lora_dir: str | os.PathLike[str],
                      multiplier: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """Merge a DWM Wan checkpoint folder into ``transformer`` (a :class:`DexWanTransformer3DModel` of the right
    size): ``W += multiplier * alpha / r * up @ down`` on every Linear, then the widened ``patch_embedding``.

    Every Linear of the model must have its pair in the file and every key of the file must name one (with
    the right shapes); anything else raises an error naming it. Returns ``{"rank", "modules", "non_lora_keys"}``.
    """
    from safetensors.torch import load_file

    d = Path(lora_dir)
    path = d / DWM_WAN_LORA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {DWM_WAN_LORA_FILE} in {d}: download byungjun-kim/DWM-Wan2.1-Fun-14b-LoRA (or a "
                                "checkpoint-<step> folder of DWM's Wan training) into that folder")  # fmt: skip
    raw = load_file(str(path))
    groups: dict[str, dict[str, torch.Tensor]] = {}
    bad = []
    for k, v in raw.items():
        m = re.fullmatch(r"lora_unet__(.+)\.(lora_down\.weight|lora_up\.weight|alpha)", k)
        if m is None:
            bad.append(k)
            continue
        groups.setdefault(m.group(1), {})[m.group(2)] = v
    if bad:
        raise ValueError(f"{path}: {len(bad)} keys are not DWM Wan LoRA keys (lora_unet__<module>.lora_down.weight "
                         f"| .lora_up.weight | .alpha), e.g. {bad[:3]}")  # fmt: skip
    names = _linear_names(transformer)
    missing, unexpected = sorted(set(names) - set(groups)), sorted(set(groups) - set(names))
    if missing or unexpected:
        raise ValueError(f"{path}: {len(missing)} Linear layers of this model have no LoRA (e.g. {missing[:2]}) and "
                         f"{len(unexpected)} LoRA modules are not in it (e.g. {unexpected[:2]}): a checkpoint of "
                         "another Wan size or variant?")  # fmt: skip
    modules = dict(transformer.named_modules())
    ranks = set()
    for stem, parts in groups.items():
        if set(parts) != {"lora_down.weight", "lora_up.weight", "alpha"}:
            raise ValueError(f"{path}: lora_unet__{stem} has {sorted(parts)}, needs lora_down, lora_up and alpha")
        lin = modules[names[stem]]
        down, up = parts["lora_down.weight"], parts["lora_up.weight"]
        r = down.shape[0]
        if tuple(down.shape) != (r, lin.in_features) or tuple(up.shape) != (lin.out_features, r):
            raise ValueError(f"{path}: lora_unet__{stem} down {tuple(down.shape)} / up {tuple(up.shape)} do not fit "
                             f"{names[stem]} ({lin.out_features} x {lin.in_features})")  # fmt: skip
        ranks.add(r)
        _merge(lin, down, up, multiplier * float(parts["alpha"]) / r)
    non_lora = _load_patch_embedding(d / DWM_NON_LORA_FILE, transformer)
    return {"rank": sorted(ranks), "modules": len(groups), "non_lora_keys": non_lora}


def _load_patch_embedding(path: Path, transformer: torch.nn.Module) -> list[str]:
    return load_exact_tensors(path, transformer, ("patch_embedding.weight", "patch_embedding.bias"),
                              f"a DWM Wan checkpoint folder holds {DWM_WAN_LORA_FILE} and {DWM_NON_LORA_FILE} (the "
                              "widened patch embedding)", "DWM's hand concat widens Wan2.1-Fun-InP's 36 input "
                              "channels to 52")  # fmt: skip


_DISTILL_KEY = re.compile(
    r"(?:diffusion_model\.|transformer\.|base_model\.model\.)?(.+?)\."
    r"(lora_down\.weight|lora_up\.weight|lora_A\.weight|lora_B\.weight|alpha|diff|diff_b)"
)


def load_distill_lora(transformer: torch.nn.Module, path: str | os.PathLike[str], scale: float = 1.0) -> int:
    """Merge a few-step distillation LoRA (LightX2V's, as DWM's Wan inference accepts) into ``transformer``.

    Formats: ``diffusion_model.<original path>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha`` (plus
    ``.diff`` / ``.diff_b`` full deltas of weights and biases), or peft ``lora_A`` / ``lora_B`` keys in diffusers or
    original naming (optionally prefixed ``transformer.`` or ``base_model.model.``). Returns the modules changed;
    a key naming no module of this model raises. Sample with 4 steps and guidance 1 afterwards.
    """
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing: download a Wan2.1 step-distillation LoRA (e.g. LightX2V's "
                                "rank-64 safetensors for your Wan size) to that path")  # fmt: skip
    params = dict(transformer.named_parameters())
    modules = dict(transformer.named_modules())
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in load_file(str(p)).items():
        m = _DISTILL_KEY.fullmatch(k)
        if m is None:
            raise ValueError(f"{p}: key {k!r} is not a LoRA key this loader knows")
        groups.setdefault(to_diffusers_name(m.group(1)), {})[m.group(2)] = v
    for name, parts in groups.items():
        mod = modules.get(name)
        if mod is None or not hasattr(mod, "weight"):
            raise ValueError(f"{p}: {name!r} is not a module of this transformer (another Wan size?)")
        down = parts.get("lora_down.weight", parts.get("lora_A.weight"))
        up = parts.get("lora_up.weight", parts.get("lora_B.weight"))
        with torch.no_grad():
            if down is not None and up is not None:
                alpha = float(parts["alpha"]) / down.shape[0] if "alpha" in parts else 1.0
                _merge(mod, down, up, scale * alpha)
            if "diff" in parts:
                mod.weight.add_((scale * parts["diff"].float()).to(mod.weight.dtype).view_as(mod.weight))
            if "diff_b" in parts and getattr(mod, "bias", None) is not None:
                params[f"{name}.bias"].add_((scale * parts["diff_b"].float()).to(mod.bias.dtype))
    return len(groups)


# ------------------------------------------------------------------------------------------- constructors
def tiny_wan_fun_pipeline(width: int = 16, height: int = 16, seed: int = 0, text: bool = True,
                          latent_channels: int = 4, image_dim: int | None = 8, layers: int = 1) -> Any:  # fmt: skip
    """A tiny random instance of DWM's Wan-Fun layout (2 heads x 8; a small ``AutoencoderKLWan``, 8x spatial and
    4x temporal compression; 4 mask channels; an image-to-video cross-attention when ``image_dim``)."""
    from diffusers import AutoencoderKLWan

    from .cogvideox_fun import tiny_text_encoder
    from .pipeline import DexWorldPipeline

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=8, z_dim=latent_channels, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                           latents_mean=[0.1 * i for i in range(latent_channels)],
                           latents_std=[1.0 + 0.1 * i for i in range(latent_channels)])  # fmt: skip
    transformer = DexWanTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=3 * latent_channels + 4,
        out_channels=latent_channels, text_dim=8, freq_dim=8, ffn_dim=32, num_layers=layers, image_dim=image_dim,
        added_kv_proj_dim=16 if image_dim else None, condition_channels=latent_channels,
    )  # fmt: skip
    text_encoder, tokenizer = tiny_text_encoder(8) if text else (None, None)
    return DexWorldPipeline(transformer=transformer, scheduler=wan_flow_scheduler(), vae=vae,
                            text_encoder=text_encoder, tokenizer=tokenizer)  # fmt: skip


def _original_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """diffusers constructor arguments of an original Wan ``config.json`` (``dim``, ``in_dim``, ``num_heads``...)."""
    i2v = cfg.get("model_type") in ("i2v", "flf2v")
    dim, heads = int(cfg["dim"]), int(cfg["num_heads"])
    return {"patch_size": tuple(cfg.get("patch_size", (1, 2, 2))), "num_attention_heads": heads,
            "attention_head_dim": dim // heads, "in_channels": int(cfg["in_dim"]), "out_channels": int(cfg["out_dim"]),
            "text_dim": int(cfg.get("text_dim", 4096)), "freq_dim": int(cfg.get("freq_dim", 256)),
            "ffn_dim": int(cfg["ffn_dim"]), "num_layers": int(cfg["num_layers"]), "eps": float(cfg.get("eps", 1e-6)),
            "cross_attn_norm": bool(cfg.get("cross_attn_norm", True)), "image_dim": 1280 if i2v else None,
            "added_kv_proj_dim": dim if i2v else None}  # fmt: skip


def _transformer_source(base: Path) -> tuple[Path, dict[str, Any], bool]:
    """(folder, diffusers constructor arguments, whether the weights use original Wan names)."""
    if (base / "transformer" / "config.json").is_file():
        cfg = json.loads((base / "transformer" / "config.json").read_text())
        return base / "transformer", init_kwargs(DexWanTransformer3DModel, cfg), False
    if (base / "config.json").is_file():
        cfg = json.loads((base / "config.json").read_text())
        if "dim" in cfg and "in_dim" in cfg:
            return base, _original_config(cfg), True
    raise FileNotFoundError(f"{base}: no Wan transformer (transformer/config.json in diffusers layout, or the "
                            "original config.json + *.safetensors of alibaba-pai/Wan2.1-Fun-V1.1-14B-InP)")  # fmt: skip


def load_wan_fun(base_dir: str | os.PathLike[str], lora_dir: str | os.PathLike[str] | None = None,
                 dtype: torch.dtype = torch.bfloat16, condition_channels: int | None = None,
                 distill_lora: str | os.PathLike[str] | None = None, shift: float = 5.0,
                 vae_repo: str = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers") -> Any:  # fmt: skip
    """DWM's Wan backbone from local folders: a Wan-Fun-InP base, its patch embedding widened by the hand
    channels (default: the VAE's latent channels), a DWM Wan checkpoint merged in, optionally a distillation LoRA.

    ``base_dir`` holds ``vae/`` (``AutoencoderKLWan``), ``text_encoder/`` (umT5) and ``tokenizer/`` in diffusers
    layout, and the transformer in diffusers layout (``transformer/``) or VideoX-Fun's (``config.json`` and
    ``*.safetensors`` at the root). Nothing is downloaded; what is missing is named.
    """
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLWan
    from transformers import AutoTokenizer, UMT5EncoderModel

    from .pipeline import DexWorldPipeline

    base = Path(base_dir)
    for sub in ("vae", "text_encoder", "tokenizer"):
        if not (base / sub).is_dir():
            raise FileNotFoundError(
                f"{base / sub} is missing: dexsim reads Wan's VAE, umT5 and tokenizer in diffusers layout (never the "
                f"pickled Wan2.1_VAE.pth / models_t5_*.pth); copy vae/ text_encoder/ tokenizer/ from "
                f"{vae_repo} into {base}"
            )
    folder, kwargs, original = _transformer_source(base)
    vae = AutoencoderKLWan.from_pretrained(base / "vae", torch_dtype=torch.float32)
    extra = int(condition_channels or vae.config.z_dim)
    state = read_safetensors_folder(folder)
    if original:
        state = {to_diffusers_name(k): v for k, v in state.items()}
    proj = state["patch_embedding.weight"]
    kwargs |= {"in_channels": int(proj.shape[1]) + extra, "condition_channels": extra}
    with init_empty_weights():
        transformer = DexWanTransformer3DModel(**kwargs)
    state["patch_embedding.weight"] = widen_input_weight(proj, extra)
    transformer.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    keep_fp32_modules(transformer)
    if lora_dir is not None:
        load_dwm_wan_lora(transformer, lora_dir)
    if distill_lora is not None:
        load_distill_lora(transformer, distill_lora)
    text_encoder = UMT5EncoderModel.from_pretrained(base / "text_encoder", torch_dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(base / "tokenizer")
    return DexWorldPipeline(transformer=transformer, scheduler=wan_flow_scheduler(shift), vae=vae,
                            text_encoder=text_encoder, tokenizer=tokenizer)  # fmt: skip
