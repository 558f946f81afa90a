"""CogVideoX-Fun-InP with DWM's hand channels, exactly as DWM (snuvclab/dwm) trains and releases it.

Facts of DWM's released ``byungjun-kim/DWM-CogVideoX-Fun-5b-LoRA`` (on ``alibaba-pai/CogVideoX-Fun-V1.1-5b-InP``),
read from DWM's training and inference code:

- The transformer is diffusers' ``CogVideoXTransformer3DModel`` (5B: 42 blocks, 48 heads x 64 = 3072, patch 2,
  ``patch_size_t`` None, text 4096-d T5 at 226 tokens). CogVideoX-Fun-InP's ``patch_embed.proj`` takes 33
  channels; DWM widens that one convolution to 49 input channels, the 16 new ones (the hand latents)
  appended after the old ones and zero-initialised, so the widened model starts as the base model.
- Channels the transformer sees, in order: noisy latents (16) | inpainting mask (1; all frames generated:
  ones times the VAE's ``scaling_factor``) | static-scene video latents (16; the VAE mode, scaled) | hand-video
  latents (16). The real video's first frame is not given.
- Checkpoint folder: ``pytorch_lora_weights.safetensors`` (peft state dict, keys
  ``transformer_blocks.<i>.attn1.to_{q,k,v}.lora_{A,B}.weight`` and ``...to_out.0.lora_{A,B}.weight``, no prefix, no
  alpha; rank 64; DWM's inference sets alpha = rank, so the LoRA scale is 1) and
  ``non_lora_weights.safetensors`` (exactly ``patch_embed.proj.weight`` [3072, 49, 2, 2] and ``patch_embed.proj.bias``
  [3072]).
- Sampling: the base's CogVideoX DDIM (v-prediction), 50 steps, text guidance 6.0 against the empty prompt,
  49 frames at 720x480, 8 fps.

dexsim keeps the layout (``DexCogVideoXFunTransformer3DModel`` is the diffusers class with two config fields) so
DWM's files load with zero missing and zero unexpected keys; its own LoRA runs save the same two files.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (diffusers looks up a loadable base class by name in this module)

from ._checkpoint import init_kwargs, load_exact_tensors, read_safetensors_folder, widen_input_weight

__all__ = [
    "DWM_LORA_FILE",
    "DWM_LORA_TARGETS",
    "DWM_NON_LORA_FILE",
    "DexCogVideoXFunTransformer3DModel",
    "load_cogvideox_fun",
    "load_dwm_lora",
    "save_dwm_lora",
    "tiny_cogvideox_fun_pipeline",
]

DWM_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
DWM_LORA_FILE = "pytorch_lora_weights.safetensors"
DWM_NON_LORA_FILE = "non_lora_weights.safetensors"
#: the non-LoRA tensors DWM stores for CogVideoX: the widened patch projection
DWM_NON_LORA_KEYS = ("patch_embed.proj.weight", "patch_embed.proj.bias")


class DexCogVideoXFunTransformer3DModel(CogVideoXTransformer3DModel):
    """diffusers' ``CogVideoXTransformer3DModel`` in DWM's static+hand concat layout.

    ``in_channels`` counts every input channel (49 for the 5B: 16 noisy | 1 mask | 16 static | 16 hand);
    ``condition_channels`` says how many of them (the last) are the hand latents that DWM added to the
    InP model; ``residual_to_static`` makes the diffusion variable the residual to the static video
    (dexsim's own runs; DWM's checkpoints: False). State-dict keys are diffusers' (= DWM's).
    """

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 30,
        attention_head_dim: int = 64,
        in_channels: int = 49,
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
        if not 0 < condition_channels < in_channels:
            raise ValueError(f"`condition_channels` ({condition_channels}) must lie in (0, in_channels={in_channels})")
        args = {k: v for k, v in locals().items() if k not in ("self", "__class__", "condition_channels",
                                                                "residual_to_static")}  # fmt: skip
        super().__init__(**args)


# ---------------------------------------------------------------------------------- LoRA (peft)
def add_lora(transformer: torch.nn.Module, rank: int = 64, alpha: int | None = None,
             targets: list[str] | None = None) -> None:  # fmt: skip
    """Add a peft LoRA adapter (DWM: rank 64 on ``to_q/to_k/to_v/to_out.0``) to a diffusers model."""
    from peft import LoraConfig

    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights=True,
                                       target_modules=targets or DWM_LORA_TARGETS))  # fmt: skip


def save_dwm_lora(transformer: torch.nn.Module, out_dir: str | os.PathLike[str],
                  non_lora_patterns: tuple[str, ...] = ("patch_embed.proj",)) -> Path:  # fmt: skip
    """Write DWM's checkpoint layout: :data:`DWM_LORA_FILE` (the peft state dict, keys
    ``transformer_blocks.<i>.attn1.to_q.lora_A.weight``...) and :data:`DWM_NON_LORA_FILE` (the trained non-LoRA
    parameters matching ``non_lora_patterns``: DWM's widened ``patch_embed.proj``)."""
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    from .._io import atomic_write

    out = Path(out_dir)
    lora = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(transformer).items()}
    extra = {k: v.detach().cpu().contiguous() for k, v in transformer.state_dict().items()
             if any(k.startswith(p) for p in non_lora_patterns) and "lora" not in k}  # fmt: skip
    atomic_write(out / DWM_LORA_FILE, lambda p: save_file(lora, str(p)))
    atomic_write(out / DWM_NON_LORA_FILE, lambda p: save_file(extra, str(p)))
    return out


_LORA_KEY = re.compile(r"^transformer_blocks\.(\d+)\.attn1\.(to_q|to_k|to_v|to_out\.0)\.lora_([AB])\.weight$")


def _lora_file_keys(path: Path, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DWM's LoRA keys (a ``transformer.`` prefix, diffusers' ``save_lora_weights`` style, is accepted too)."""
    sd = {k.removeprefix("transformer."): v for k, v in raw.items()}
    unexpected = sorted(k for k in sd if not _LORA_KEY.match(k))
    if unexpected:
        raise ValueError(f"{path}: {len(unexpected)} keys are not DWM CogVideoX LoRA keys "
                         f"(transformer_blocks.<i>.attn1.<to_q|to_k|to_v|to_out.0>.lora_<A|B>.weight), "
                         f"e.g. {unexpected[:3]}")  # fmt: skip
    return sd


def _check_lora_fits(path: Path, transformer: torch.nn.Module, sd: dict[str, torch.Tensor]) -> int:
    """The file's one rank; every attention projection of ``transformer`` covered, with matching shapes."""
    ranks = {v.shape[0] for k, v in sd.items() if k.endswith("lora_A.weight")}
    if len(ranks) != 1:
        raise ValueError(f"{path}: expected one LoRA rank, found {sorted(ranks)}")
    rank = ranks.pop()
    modules = dict(transformer.named_modules())
    blocks = range(len(transformer.transformer_blocks))
    expected = {f"transformer_blocks.{i}.attn1.{t}.lora_{ab}.weight" for i in blocks for t in DWM_LORA_TARGETS
                for ab in "AB"}  # fmt: skip
    missing, unexpected = sorted(expected - sd.keys()), sorted(sd.keys() - expected)
    if missing or unexpected:
        raise ValueError(f"{path}: {len(missing)} LoRA keys missing (e.g. {missing[:2]}) and {len(unexpected)} "
                         f"unexpected (e.g. {unexpected[:2]}) for this {len(transformer.transformer_blocks)}-block "
                         "transformer: a checkpoint of another model size?")  # fmt: skip
    for k, v in sd.items():
        lin = modules[k.rsplit(".lora_", 1)[0]]
        want = (rank, lin.in_features) if ".lora_A." in k else (lin.out_features, rank)
        if tuple(v.shape) != want:
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, this model needs {want}")
    return rank


def _load_non_lora(path: Path, transformer: torch.nn.Module) -> list[str]:
    """Copy DWM's widened ``patch_embed.proj`` into ``transformer`` (exactly those two tensors)."""
    missing = f"a DWM checkpoint folder holds {DWM_LORA_FILE} and {DWM_NON_LORA_FILE} (the widened patch projection)"
    return load_exact_tensors(path, transformer, DWM_NON_LORA_KEYS, missing,
                              "DWM's static+hand concat widens the 33 InP channels to 49")  # fmt: skip


def load_dwm_lora(transformer: torch.nn.Module, lora_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a DWM CogVideoX LoRA checkpoint folder (as released, or as ``dexsim train`` saves it) into a fresh
    ``transformer``: a peft adapter of the file's rank with alpha = rank (DWM's inference), every key checked.

    Returns ``{"rank", "lora_keys", "non_lora_keys"}``; any missing, unexpected or misshapen key raises an
    error naming it.
    """
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    d = Path(lora_dir)
    path = d / DWM_LORA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} in {d}: download byungjun-kim/DWM-CogVideoX-Fun-5b-LoRA (or a "
                                "checkpoint-<step> folder of DWM's CogVideoX training) into that folder")  # fmt: skip
    if getattr(transformer, "peft_config", None):
        raise ValueError("the transformer already has a LoRA adapter; load DWM weights into a fresh model")
    sd = _lora_file_keys(path, load_file(str(path)))
    rank = _check_lora_fits(path, transformer, sd)
    non_lora = _load_non_lora(d / DWM_NON_LORA_FILE, transformer)
    add_lora(transformer, rank=rank, alpha=rank)
    result = set_peft_model_state_dict(transformer, sd, adapter_name="default")
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    missing = [k for k in getattr(result, "missing_keys", []) or [] if "lora_" in k]
    if unexpected or missing:  # cannot happen after the checks above; kept as the last word
        raise ValueError(f"{path}: peft left {len(missing)} LoRA weights unset and {len(unexpected)} unused")
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
    return T5EncoderModel(cfg).eval(), tokenizer  # eval: no dropout in the embeddings


def tiny_cogvideox_fun_pipeline(width: int = 16, height: int = 16, seed: int = 0, text: bool = True,
                                latent_channels: int = 4, vae_channels: int = 8, layers: int = 1) -> Any:  # fmt: skip
    """A tiny random instance of DWM's CogVideoX-Fun layout (2 heads x 8).

    VAE: ``AutoencoderKLCogVideoX`` (8x spatial, 4x temporal compression); transformer: 2 heads x 8,
    ``in_channels = 3 * latent + 1`` (noisy | mask | static | hand), ``condition_channels = latent``.
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
        num_attention_heads=2, attention_head_dim=8, in_channels=3 * latent_channels + 1,
        out_channels=latent_channels, time_embed_dim=8, text_embed_dim=8, num_layers=layers,
        sample_width=width // 8, sample_height=height // 8, sample_frames=9, max_text_seq_length=8,
        condition_channels=latent_channels,
    )  # fmt: skip
    text_encoder, tokenizer = tiny_text_encoder(8) if text else (None, None)
    return DexWorldPipeline(transformer=transformer, scheduler=cogvideox_scheduler(), vae=vae,
                            text_encoder=text_encoder, tokenizer=tokenizer)  # fmt: skip


def load_cogvideox_fun(base_dir: str | os.PathLike[str], lora_dir: str | os.PathLike[str] | None = None,
                       dtype: torch.dtype = torch.bfloat16, condition_channels: int = 16) -> Any:  # fmt: skip
    """DWM's CogVideoX backbone from local folders: CogVideoX-Fun-V1.1-5b-InP (diffusers layout), its patch
    projection widened by ``condition_channels`` zero channels, plus a DWM LoRA checkpoint folder.

    Nothing is downloaded: a missing folder raises an error naming what to fetch and where to put it.
    """
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLCogVideoX
    from transformers import AutoTokenizer, T5EncoderModel

    from .pipeline import DexWorldPipeline

    base = Path(base_dir)
    for sub in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"):
        if not (base / sub).is_dir():
            raise FileNotFoundError(
                f"{base / sub} is missing: download alibaba-pai/CogVideoX-Fun-V1.1-5b-InP "
                f"(diffusers layout: transformer/ vae/ text_encoder/ tokenizer/ scheduler/) to {base}"
            )
    config = json.loads((base / "transformer" / "config.json").read_text())
    state = read_safetensors_folder(base / "transformer")
    proj = state["patch_embed.proj.weight"]
    if proj.shape[1] != config["in_channels"]:
        raise ValueError(f"{base}/transformer: patch_embed.proj has {proj.shape[1]} input channels, its config "
                         f"{config['in_channels']}")  # fmt: skip
    kwargs = init_kwargs(DexCogVideoXFunTransformer3DModel, config)
    kwargs |= {"in_channels": config["in_channels"] + condition_channels, "condition_channels": condition_channels}
    with init_empty_weights():
        transformer = DexCogVideoXFunTransformer3DModel(**kwargs)
    state["patch_embed.proj.weight"] = widen_input_weight(proj, condition_channels)
    transformer.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    if lora_dir is not None:
        load_dwm_lora(transformer, lora_dir)
    vae = AutoencoderKLCogVideoX.from_pretrained(base / "vae", torch_dtype=dtype)
    text_encoder = T5EncoderModel.from_pretrained(base / "text_encoder", torch_dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(base / "tokenizer")
    return DexWorldPipeline(transformer=transformer, scheduler=_base_scheduler(base), vae=vae,
                            text_encoder=text_encoder, tokenizer=tokenizer)  # fmt: skip


def _base_scheduler(base: Path) -> Any:
    """CogVideoX's DDIM with the base model's own schedule settings (DWM samples with the base scheduler;
    a DPM config is read as DDIM: its multistep update is not what this pipeline's loop calls)."""
    from diffusers import CogVideoXDDIMScheduler

    cfg_path = base / "scheduler" / "scheduler_config.json"
    return CogVideoXDDIMScheduler.from_config(json.loads(cfg_path.read_text())) if cfg_path.is_file() \
        else cogvideox_scheduler()  # fmt: skip
