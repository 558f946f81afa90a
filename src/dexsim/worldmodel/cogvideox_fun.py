"""The CogVideoX-Fun-InP layout with DWM's hand-condition channels, and the DWM LoRA loader.

CogVideoX-Fun-InP's transformer takes 33 input channels (16 noisy latents | 1 mask | 16 masked
video latents); DWM keeps that patch embedding and adds ``patch_embed.cond_proj``, a zero-initialised
projection of 16 more channels (the hand video latents) summed with the image embedding. DWM's
LoRA checkpoints hold ``pytorch_lora_weights.safetensors`` (rank 64 on ``to_q/to_k/to_v/to_out.0``)
and ``non_lora_weights.safetensors`` (the trained ``patch_embed`` projections).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import CogVideoXPatchEmbed
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (diffusers looks up a loadable base class by name in this module)
from torch import nn

__all__ = [
    "DWM_LORA_TARGETS",
    "DexCogVideoXFunTransformer3DModel",
    "load_cogvideox_fun",
    "load_dwm_lora",
    "save_dwm_lora",
    "tiny_cogvideox_fun_pipeline",
]

DWM_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


class _ConditionedPatchEmbed(CogVideoXPatchEmbed):
    """``CogVideoXPatchEmbed`` whose ``proj`` sees the first ``in_channels`` channels and whose
    zero-initialised ``cond_proj`` sees the ``condition_channels`` after them (DWM's layout)."""

    def __init__(self, condition_channels: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_channels = kwargs["in_channels"]
        if kwargs.get("patch_size_t") is not None:
            raise ValueError("DWM's condition projection is defined for CogVideoX 1.0/1.1 (patch_size_t=None)")
        p = kwargs["patch_size"]
        self.cond_proj = nn.Conv2d(condition_channels, kwargs["embed_dim"], p, stride=p, bias=kwargs["bias"])
        nn.init.zeros_(self.cond_proj.weight)
        if self.cond_proj.bias is not None:
            nn.init.zeros_(self.cond_proj.bias)

    def forward(self, text_embeds: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        main, cond = image_embeds[:, :, : self.in_channels], image_embeds[:, :, self.in_channels :]
        b, f, c, h, w = cond.shape
        extra = self.cond_proj(cond.reshape(b * f, c, h, w)).flatten(2).transpose(1, 2).reshape(b, -1, self.embed_dim)
        embeds = super().forward(text_embeds, main)
        t = text_embeds.shape[1]
        return torch.cat((embeds[:, :t], embeds[:, t:] + extra.to(embeds.dtype)), dim=1)


class DexCogVideoXFunTransformer3DModel(CogVideoXTransformer3DModel):
    """``CogVideoXTransformer3DModel`` + DWM's ``condition_channels`` hand-latent projection.

    ``in_channels`` is the InP count (33 for CogVideoX-Fun); the forward takes
    ``in_channels + condition_channels`` channels. State-dict keys follow DWM
    (``patch_embed.proj.*``, ``patch_embed.cond_proj.*``).
    """

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 30,
        attention_head_dim: int = 64,
        in_channels: int = 33,
        out_channels: int | None = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        ofs_embed_dim: int | None = None,
        text_embed_dim: int = 4096,
        num_layers: int = 30,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        patch_size_t: int | None = None,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = False,
        use_learned_positional_embeddings: bool = False,
        patch_bias: bool = True,
        condition_channels: int = 16,
        residual_to_static: bool = False,
    ) -> None:
        args = {k: v for k, v in locals().items() if k not in ("self", "__class__", "condition_channels",
                                                                "residual_to_static")}  # fmt: skip
        super().__init__(**args)
        self.patch_embed = _ConditionedPatchEmbed(
            condition_channels, patch_size=patch_size, patch_size_t=patch_size_t, in_channels=in_channels,
            embed_dim=num_attention_heads * attention_head_dim, text_embed_dim=text_embed_dim, bias=patch_bias,
            sample_width=sample_width, sample_height=sample_height, sample_frames=sample_frames,
            temporal_compression_ratio=temporal_compression_ratio, max_text_seq_length=max_text_seq_length,
            spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_positional_embeddings=not use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings,
        )  # fmt: skip


# ---------------------------------------------------------------------------------- LoRA (peft)
def add_lora(transformer: torch.nn.Module, rank: int = 64, alpha: int | None = None,
             targets: list[str] | None = None) -> None:  # fmt: skip
    """Add a peft LoRA adapter (DWM: rank 64 on ``to_q/to_k/to_v/to_out.0``) to a diffusers model."""
    from peft import LoraConfig

    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights=True,
                                       target_modules=targets or DWM_LORA_TARGETS))  # fmt: skip


def save_dwm_lora(
    transformer: torch.nn.Module, out_dir: str | os.PathLike[str],
    non_lora_patterns: tuple[str, ...] = ("patch_embed.proj", "patch_embed.cond_proj"),
) -> Path:  # fmt: skip
    """Write DWM's LoRA layout: ``pytorch_lora_weights.safetensors`` (keys ``transformer.<module>.lora_A.weight``)
    and ``non_lora_weights.safetensors`` (the trained, non-LoRA parameters matching ``non_lora_patterns``)."""
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    from .._io import atomic_write

    out = Path(out_dir)
    lora = {
        f"transformer.{k}": v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(transformer).items()
    }
    extra = {k: v.detach().cpu().contiguous() for k, v in transformer.state_dict().items()
             if any(k.startswith(p) for p in non_lora_patterns) and "lora" not in k}  # fmt: skip
    atomic_write(out / "pytorch_lora_weights.safetensors", lambda p: save_file(lora, str(p)))
    atomic_write(out / "non_lora_weights.safetensors", lambda p: save_file(extra, str(p)))
    return out


def load_dwm_lora(transformer: torch.nn.Module, lora_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a DWM LoRA checkpoint folder into ``transformer`` (adds the adapter with the file's rank).

    Returns ``{"rank", "lora_keys", "non_lora_keys"}``. Raises a clear error when the folder lacks
    ``pytorch_lora_weights.safetensors`` or its keys do not fit the model.
    """
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    d = Path(lora_dir)
    path = d / "pytorch_lora_weights.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} in {d}: download a DWM LoRA checkpoint (CogVideoX-Fun static+hand "
                                "concat, see github.com/snuvclab/dwm) into that folder")  # fmt: skip
    raw = load_file(str(path))
    sd = {k.removeprefix("transformer."): v for k, v in raw.items()}
    ranks = {v.shape[0] for k, v in sd.items() if "lora_A" in k}
    if len(ranks) != 1:
        raise ValueError(f"{path}: expected one LoRA rank, found {sorted(ranks)}")
    rank = ranks.pop()
    if getattr(transformer, "peft_config", None):
        raise ValueError("the transformer already has a LoRA adapter; load DWM weights into a fresh model")
    add_lora(transformer, rank=rank)
    result = set_peft_model_state_dict(transformer, sd, adapter_name="default")
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise ValueError(f"{path}: {len(unexpected)} LoRA keys do not fit this model, e.g. {unexpected[:3]}")
    non_lora: list[str] = []
    extra_path = d / "non_lora_weights.safetensors"
    if extra_path.is_file():
        own = transformer.state_dict()
        for k, v in load_file(str(extra_path)).items():
            if k not in own:
                raise ValueError(f"{extra_path}: parameter {k!r} is not in this model")
            if own[k].shape != v.shape:
                raise ValueError(f"{extra_path}: {k!r} has shape {tuple(v.shape)}, the model {tuple(own[k].shape)}")
            with torch.no_grad():
                own[k].copy_(v.to(own[k].dtype))
            non_lora.append(k)
    return {"rank": rank, "lora_keys": len(sd), "non_lora_keys": non_lora}


# -------------------------------------------------------------------------------- constructors
def cogvideox_scheduler() -> Any:
    """CogVideoX's DDIM: v-prediction, zero terminal SNR, trailing timesteps (few-step friendly)."""
    from diffusers import CogVideoXDDIMScheduler

    return CogVideoXDDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                  timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=True)  # fmt: skip


def tiny_text_encoder(dim: int = 8) -> tuple[Any, Any]:
    """A tiny random T5 encoder and a word-level tokenizer built offline (tests and benches)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    words = ("the a hand hands left right push pushes touch pokes pick place open close drawer box block cube "
             "red green blue yellow ball cylinder table toward away lifts puts waves over").split()  # fmt: skip
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2} | {w: i + 3 for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    cfg = T5Config(vocab_size=len(vocab), d_model=dim, d_kv=4, d_ff=2 * dim, num_layers=1, num_heads=2)
    return T5EncoderModel(cfg), tokenizer


def tiny_cogvideox_fun_pipeline(width: int = 16, height: int = 16, seed: int = 0, text: bool = True,
                                latent_channels: int = 4, vae_channels: int = 8, layers: int = 1) -> Any:  # fmt: skip
    """A tiny random instance of the CogVideoX-Fun-InP layout + DWM condition channels (2 heads x 8).

    VAE: ``AutoencoderKLCogVideoX`` (8x spatial, 4x temporal compression); transformer: 2 heads x 8,
    ``in_channels = 2 * latent + 1`` (noisy | mask | masked video), ``condition_channels = latent``.
    """
    from diffusers import AutoencoderKLCogVideoX

    from .pipeline import DexWorldPipeline

    torch.manual_seed(seed)
    c = vae_channels
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, latent_channels=latent_channels, block_out_channels=(c, c, c, c),
        down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
        layers_per_block=1, norm_num_groups=min(4, c), temporal_compression_ratio=4,
        sample_height=height, sample_width=width,
    )  # fmt: skip
    transformer = DexCogVideoXFunTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=2 * latent_channels + 1, out_channels=latent_channels,
        time_embed_dim=8, text_embed_dim=8, num_layers=layers, sample_width=width // 8, sample_height=height // 8,
        sample_frames=9, max_text_seq_length=8, condition_channels=latent_channels,
    )  # fmt: skip
    with torch.no_grad():  # a random, not a zero, condition path: tests can see the hands matter
        transformer.patch_embed.cond_proj.weight.normal_(0.0, 0.02)
    text_encoder, tokenizer = tiny_text_encoder(8) if text else (None, None)
    return DexWorldPipeline(transformer=transformer, scheduler=cogvideox_scheduler(), vae=vae,
                            text_encoder=text_encoder, tokenizer=tokenizer)  # fmt: skip


def load_cogvideox_fun(base_dir: str | os.PathLike[str], lora_dir: str | os.PathLike[str] | None = None,
                       dtype: torch.dtype = torch.bfloat16, condition_channels: int = 16) -> Any:  # fmt: skip
    """The real backbone from local folders: CogVideoX-Fun-V1.1-5b-InP (diffusers layout) + a DWM LoRA.

    Nothing is downloaded: a missing folder raises an error naming what to fetch and where to put it.
    """
    from diffusers import AutoencoderKLCogVideoX
    from transformers import AutoTokenizer, T5EncoderModel

    from .pipeline import DexWorldPipeline

    base = Path(base_dir)
    for sub in ("transformer", "vae", "text_encoder", "tokenizer"):
        if not (base / sub).is_dir():
            raise FileNotFoundError(
                f"{base / sub} is missing: download alibaba-pai/CogVideoX-Fun-V1.1-5b-InP "
                f"(diffusers layout: transformer/ vae/ text_encoder/ tokenizer/) to {base}"
            )
    transformer = DexCogVideoXFunTransformer3DModel.from_pretrained(
        base / "transformer", condition_channels=condition_channels, low_cpu_mem_usage=False, torch_dtype=dtype
    )
    with torch.no_grad():
        transformer.patch_embed.cond_proj.weight.zero_()
        if transformer.patch_embed.cond_proj.bias is not None:
            transformer.patch_embed.cond_proj.bias.zero_()
    if lora_dir is not None:
        load_dwm_lora(transformer, lora_dir)
    vae = AutoencoderKLCogVideoX.from_pretrained(base / "vae", torch_dtype=dtype)
    text_encoder = T5EncoderModel.from_pretrained(base / "text_encoder", torch_dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(base / "tokenizer")
    return DexWorldPipeline(transformer=transformer, scheduler=cogvideox_scheduler(), vae=vae,
                            text_encoder=text_encoder, tokenizer=tokenizer)  # fmt: skip
