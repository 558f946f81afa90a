"""``DexWorldPipeline``: hand-conditioned video diffusion in the DWM formulation.

Inputs per window of T frames: the static-scene video and the hand-prompt video along one camera
path, optionally the first C frames already known (the last frames generated so far, for
autoregressive continuation) and a text. The VAE (when there is one) encodes the videos; the
denoiser sees, concatenated on channels (DWM / CogVideoX-Fun-InP):

    noisy latents | inpainting mask (1 = generate, 0 = known) | known video latents | hand latents

where the known video is the static video with the context frames pasted in. Three backbones share
it: the compact pixel-space denoiser (1 mask channel, no VAE), CogVideoX-Fun (1 mask channel, constant:
the VAE's ``scaling_factor``, as DWM trains it; latents scaled by it) and Wan-Fun (4 constant mask channels of ones,
latents normalised by the VAE's per-channel mean and std, flow matching; the transformer takes
(B, C, F, H, W) and, for image-to-video bases, a zero image embedding, as DWM's inference gives it). With
``residual_to_static`` (the compact default) the diffusion variable is ``z(video) - z(static)``,
so the model learns only the residual dynamics and an untouched static scene passes through.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from tqdm.auto import tqdm

__all__ = [
    "COMPONENT_MODULES",
    "MOTION_AS",
    "Conditions",
    "DexWorldPipeline",
    "DexWorldPipelineOutput",
    "carry_scene_changes",
    "to_model_video",
]


#: The modules whose classes saved pipelines name as components (``model_index.json``, e.g.
#: ``["dexsim.worldmodel.compact", "CompactVideoDenoiser"]``), imported by name when loading: the
#: backbones build pipelines, so they import this module, not the other way round. A class that moves
#: leaves an alias module at its old path, listed here, so that folders written earlier still load.
COMPONENT_MODULES = ("dexsim.worldmodel.compact", "dexsim.worldmodel.cogvideox_fun", "dexsim.worldmodel.wan_fun")


def _image_shift(reference: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Whole-pixel translation of each frame against the reference by phase correlation.

    reference (B, H, W), frames (B, T, H, W) grey -> (B, T, 2) integer (dy, dx) with ``frames[t](y, x)`` ~
    ``reference(y - dy, x - dx)``."""
    h, w = reference.shape[-2:]
    cross = torch.fft.fft2(frames) * torch.fft.fft2(reference)[:, None].conj()
    corr = torch.fft.ifft2(cross / cross.abs().clamp_min(1e-8)).real
    peak = corr.flatten(-2).argmax(-1)
    dy, dx = peak // w, peak % w
    dy = torch.where(dy > h // 2, dy - h, dy)
    dx = torch.where(dx > w // 2, dx - w, dx)
    return torch.stack((dy, dx), -1)


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """(..., H, W) moved by (dy, dx) whole pixels; what enters from outside is zero."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def carry_scene_changes(static: torch.Tensor, prompt: torch.Tensor, context: torch.Tensor,
                        threshold: float = 0.1, hand_margin: int = 4) -> torch.Tensor:  # fmt: skip
    """The static video updated with what the hands already changed: the pixels of the last context frame
    that differ from the static frame at the same time (by more than ``threshold`` of the [0, 1] range on
    some channel, specks under 3x3 dropped), away from the hands (the prompt's pixels, grown by
    ``hand_margin``), pasted into every later frame, following the camera's whole-pixel shift between the
    static frames (phase correlation). A box pushed in an earlier window then starts the next one where it
    was left, and the motion network moves it from there instead of from the original scene.

    Model-space videos in [-1, 1]: static (B|1, T, 3, H, W), prompt (B, T, 3, H, W) (black = no hand),
    context (B|1, C, 3, H, W) -> (B', T, 3, H, W), B' the larger batch of static and context."""
    c = context.shape[1]
    b = max(static.shape[0], context.shape[0])
    ref = static[:, c - 1].expand(b, -1, -1, -1)
    last = context[:, -1].expand(b, -1, -1, -1)
    changed = ((last - ref).abs().amax(1, keepdim=True) > 2.0 * threshold).float()
    changed = -torch.nn.functional.max_pool2d(-changed, 3, 1, 1)  # opening: drop specks under 3x3
    changed = torch.nn.functional.max_pool2d(changed, 3, 1, 1)
    hand = (prompt[:, c - 1] > -0.9).any(1, keepdim=True).float()
    hand = torch.nn.functional.max_pool2d(hand, 2 * hand_margin + 1, 1, hand_margin)
    keep = changed * (1.0 - hand.expand(b, -1, -1, -1))  # (B, 1, H, W)
    out = static.expand(b, -1, -1, -1, -1).clone()
    if not bool(keep.any()):
        return out
    shifts = _image_shift(ref.mean(1), out[:, c:].mean(2))  # (B, T - C, 2)
    layer = torch.cat((last, keep), 1)
    for i in range(b):
        for j, (dy, dx) in enumerate(shifts[i].tolist()):
            moved = _shifted(layer[i], dy, dx)
            m = moved[3:] > 0.5
            out[i, c + j] = torch.where(m, moved[:3], out[i, c + j])
    return out


#: what a pipeline's motion network's moved video becomes (:class:`DexWorldPipeline`'s ``motion_as``)
MOTION_AS = ("base", "known")


@dataclass
class DexWorldPipelineOutput(BaseOutput):
    """``frames``: (B, T, H, W, 3) uint8 numpy (``output_type="uint8"``), float in [0, 1]
    (``"np"``) or a (B, T, 3, H, W) tensor in [-1, 1] (``"pt"``). ``flow``: with a motion network, its backward
    flow of each frame to the static video, (B, T, H, W, 2) float32 pixels (a tensor for ``"pt"``); a
    continuation call takes the last frame's as ``context_flow``. None without a motion network."""

    frames: np.ndarray | torch.Tensor
    flow: np.ndarray | torch.Tensor | None = None


@dataclass
class Conditions:
    """Encoded conditions of one batch: ``z_static`` (B, F, Cz, h, w) for the residual,
    ``cond`` (B, F, M + 2 * Cz, h, w) = mask (M = 1, Wan 4) | known | hand, ``known`` (B, T) bool per frame."""

    z_static: torch.Tensor
    cond: torch.Tensor
    known: torch.Tensor
    motion: torch.Tensor | None = None  # (B, T, 2 | 4, H, W): the motion network's output, when there is one


def to_model_video(
    video: np.ndarray | torch.Tensor, name: str, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 or float in [0, 1] -> (B, T, 3, H, W) in [-1, 1]."""
    x = torch.as_tensor(np.ascontiguousarray(video) if isinstance(video, np.ndarray) else video)
    if x.ndim == 4:
        x = x[None]
    if x.ndim != 5 or x.shape[-1] != 3:
        raise ValueError(f"`{name}` must be (B, T, H, W, 3) or (T, H, W, 3), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.to(device=device, dtype=torch.float32) / 127.5 - 1.0
    else:
        x = x.to(device=device, dtype=torch.float32)
        if not torch.isfinite(x).all():
            raise ValueError(f"`{name}` has non-finite values")
        if x.min() < -1e-3 or x.max() > 1.0 + 1e-3:
            raise ValueError(f"float `{name}` must lie in [0, 1], got [{x.min():.3f}, {x.max():.3f}]")
        x = x * 2.0 - 1.0
    return x.permute(0, 1, 4, 2, 3).to(dtype)


class DexWorldPipeline(DiffusionPipeline):
    """Static video + hand-prompt video (+ context frames, + text) -> interaction video.

    Modules: ``transformer`` (a :class:`~dexsim.worldmodel.compact.CompactVideoDenoiser` or a
    CogVideoX or Wan transformer in DWM's hand-concat layout), ``scheduler`` (any diffusers scheduler
    with ``set_timesteps`` / ``step``; few-step DDIM by default), optional ``vae``
    (``AutoencoderKLCogVideoX`` or ``AutoencoderKLWan``; none = pixel space), optional ``text_encoder`` +
    ``tokenizer`` (T5 / umT5), optional ``motion`` (compact backbone only: a
    :func:`~dexsim.worldmodel.compact.motion_network` whose backward flow moves the static video's pixels
    before the denoiser sees them, so that a pushed object arrives carried, and the denoiser adds what motion
    cannot explain). ``motion_as`` (:data:`MOTION_AS`): ``"base"``, the moved video is both the known video and
    the base the residual is added to; ``"known"``, only the known video (the residual stays one to the static
    video: the denoiser may take the carried object from it or not). ``carry_scene``: when continuing from context
    frames, the static video first takes in what the hands already changed (:func:`carry_scene_changes`), so
    a moved object stays moved from one window to the next.
    """

    model_cpu_offload_seq = "text_encoder->motion->transformer->vae"
    _optional_components: ClassVar[list[str]] = ["vae", "text_encoder", "tokenizer", "motion"]

    def __init__(self, transformer: Any, scheduler: Any, vae: Any = None, text_encoder: Any = None,
                 tokenizer: Any = None, motion: Any = None, motion_as: str = "base",
                 carry_scene: bool = False) -> None:  # fmt: skip
        super().__init__()
        if motion is not None and (vae is not None or not hasattr(transformer.config, "fold")):
            raise ValueError("a `motion` network moves pixels: it needs the compact pixel-space backbone (no VAE)")
        if motion_as not in MOTION_AS:
            raise ValueError(f"`motion_as` must be one of {MOTION_AS}, got {motion_as!r}")
        self.register_modules(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, motion=motion)  # fmt: skip
        self.register_to_config(motion_as=motion_as, carry_scene=bool(carry_scene))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> Any:
        """diffusers' ``from_pretrained``, after importing the modules whose classes a saved folder may
        name as components (diffusers resolves those only from modules already imported)."""
        for name in COMPONENT_MODULES:
            importlib.import_module(name)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ----------------------------------------------------------------- geometry of the latent space
    @property
    def backbone(self) -> str:
        """``"compact"``, ``"cogvideox"`` or ``"wan"``: which family the transformer belongs to."""
        cfg = self.transformer.config
        if hasattr(cfg, "text_dim") and isinstance(getattr(cfg, "patch_size", None), (list, tuple)):
            return "wan"
        return "cogvideox" if hasattr(cfg, "text_embed_dim") else "compact"

    @property
    def temporal_compression(self) -> int:
        if self.vae is None:
            return 1
        cfg = self.vae.config
        return int(getattr(cfg, "temporal_compression_ratio", None) or getattr(cfg, "scale_factor_temporal", 1))

    @property
    def spatial_compression(self) -> int:
        if self.vae is None:
            return 1
        cfg = self.vae.config
        return int(getattr(cfg, "scale_factor_spatial", None) or 2 ** (len(cfg.block_out_channels) - 1))

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this."""
        cfg = self.transformer.config
        if hasattr(cfg, "fold"):
            return self.spatial_compression * cfg.fold * 4
        patch = cfg.patch_size[-1] if isinstance(cfg.patch_size, (list, tuple)) else cfg.patch_size
        return self.spatial_compression * int(patch)

    @property
    def latent_channels(self) -> int:
        if self.vae is None:
            return int(self.transformer.config.out_channels)
        cfg = self.vae.config
        return int(getattr(cfg, "latent_channels", None) or cfg.z_dim)

    @property
    def mask_channels(self) -> int:
        """Input channels of the inpainting mask: all but noisy | known | hand latents (1, or Wan's 4)."""
        return int(self.transformer.config.in_channels) - 3 * self.latent_channels

    @property
    def mask_value(self) -> float:
        """What "generate" reads as in the mask: the VAE's ``scaling_factor`` for CogVideoX-Fun (DWM), else 1."""
        return float(self.vae.config.scaling_factor) if self.backbone == "cogvideox" and self.vae is not None else 1.0

    def _latent_stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Wan's per-channel latent mean and std, shaped to broadcast over (B, C, F, h, w); None otherwise."""
        cfg = self.vae.config
        if getattr(cfg, "latents_mean", None) is None:
            return None
        shape = (1, -1, 1, 1, 1)
        return (torch.tensor(cfg.latents_mean, device=z.device, dtype=z.dtype).view(shape),
                torch.tensor(cfg.latents_std, device=z.device, dtype=z.dtype).view(shape))  # fmt: skip

    @property
    def residual_to_static(self) -> bool:
        return bool(getattr(self.transformer.config, "residual_to_static", False))

    @property
    def uses_text(self) -> bool:
        return self.backbone != "compact"

    @property
    def text_shape(self) -> tuple[int, int]:
        """(tokens, width) of the text embeddings the transformer reads (Wan: umT5, 512 tokens)."""
        cfg = self.transformer.config
        if self.backbone == "wan":
            return 512, int(cfg.text_dim)
        return int(cfg.max_text_seq_length), int(cfg.text_embed_dim)

    @property
    def default_negative_prompt(self) -> str:
        """The text guidance pushes away from (DWM's inference: "" for CogVideoX, "bad detailed" for Wan)."""
        return "bad detailed" if self.backbone == "wan" else ""

    def padded_frames(self, frames: int) -> int:
        """The smallest frame count >= ``frames`` that the VAE accepts (1 + k * compression)."""
        r = self.temporal_compression
        return frames if r == 1 else 1 + r * max(1, -(-(frames - 1) // r))

    # ----------------------------------------------------------------------------- VAE helpers
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [-1, 1] -> latents (B, F, Cz, h, w) (the mode, scaled)."""
        if self.vae is None:
            return x
        z = self.vae.encode(x.permute(0, 2, 1, 3, 4).to(self.vae.dtype)).latent_dist.mode()
        stats = self._latent_stats(z)
        z = z * self.vae.config.scaling_factor if stats is None else (z - stats[0]) / stats[1]
        return z.permute(0, 2, 1, 3, 4)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, F, Cz, h, w) -> (B, T, 3, H, W) in [-1, 1]."""
        if self.vae is None:
            return z.clamp(-1.0, 1.0)
        z = z.permute(0, 2, 1, 3, 4).to(self.vae.dtype)
        stats = self._latent_stats(z)
        x = self.vae.decode(z / self.vae.config.scaling_factor if stats is None else z * stats[1] + stats[0]).sample
        return x.permute(0, 2, 1, 3, 4).clamp(-1.0, 1.0)

    def latent_frame_mask(self, known: torch.Tensor) -> torch.Tensor:
        """(B, T) known frames -> (B, F) float: 1 where a latent frame has anything to generate."""
        gen = (~known).float()
        r = self.temporal_compression
        if r == 1:
            return gen
        first, rest = gen[:, :1], gen[:, 1:]
        return torch.cat((first, rest.reshape(gen.shape[0], -1, r).amax(-1)), dim=1)

    # ------------------------------------------------------------------------------ conditions
    def _pad_time(self, x: torch.Tensor) -> torch.Tensor:
        t = self.padded_frames(x.shape[1])
        return x if t == x.shape[1] else torch.cat((x, x[:, -1:].expand(-1, t - x.shape[1], -1, -1, -1)), 1)

    @staticmethod
    def _known_video(static: torch.Tensor, context: torch.Tensor | None, b: int) -> torch.Tensor | None:
        """(B, T, 3, H, W): the static video with the context frames pasted in; None without context."""
        c = 0 if context is None else context.shape[1]
        if not c:
            return None
        return torch.cat((context.expand(b, -1, -1, -1, -1), static.expand(b, -1, -1, -1, -1)[:, c:]), 1)

    @property
    def takes_context_flow(self) -> bool:
        """Whether the motion network reads the last known frame's flow (a 12-input network)."""
        from .compact import MOTION_INPUTS

        return self.motion is not None and self.motion.config.in_channels == MOTION_INPUTS[1]

    def motion_outputs(self, static: torch.Tensor, prompt: torch.Tensor, context: torch.Tensor | None = None,
                       motion: Any = None, context_flow: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """The motion network's output (``motion``: the module to run instead of ``self.motion``, e.g. a DDP
        wrapper in training), fed as the denoiser's conditions are laid out: the static video, the known video
        (context pasted in), which frames are generated, the hand prompt; a context-flow network also the last
        context frame's flow (``context_flow`` (B|1, 2, H, W) pixels; zeros when None or without context).

        Model-space videos (B|1, T, 3, H, W), context (B|1, C, 3, H, W) -> (B, T, 2 | 4, H, W): the backward flow
        in pixels, then any occlusion logits (:func:`~dexsim.worldmodel.compact.predict_motion`)."""
        from .compact import predict_motion

        b, t = prompt.shape[:2]
        c = 0 if context is None else context.shape[1]
        static_b = static.expand(b, -1, -1, -1, -1)
        known = self._known_video(static, context, b)
        generate = torch.ones(b, t, device=prompt.device)
        generate[:, :c] = 0.0
        net = self.motion if motion is None else motion
        if not self.takes_context_flow:
            if context_flow is not None:
                raise ValueError("`context_flow` needs a motion network that reads it (12 inputs)")
        elif not c:
            context_flow = None  # a window without context starts from the scene at rest
        return predict_motion(net, static_b, generate, static_b if known is None else known, prompt,
                              context_flow=context_flow)  # fmt: skip

    def move_static(self, static: torch.Tensor, prompt: torch.Tensor, context: torch.Tensor | None = None,
                    motion: Any = None,
                    context_flow: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """The static video moved by :meth:`motion_outputs` (:func:`~dexsim.worldmodel.compact.move_by`): the moved
        video (B, T, 3, H, W) and the network's output (B, T, 2 | 4, H, W)."""
        from .compact import move_by, occlusion_options

        out = self.motion_outputs(static, prompt, context, motion, context_flow)
        net = self.motion if motion is None else motion
        return move_by(static.expand(out.shape[0], -1, -1, -1, -1), out, *occlusion_options(net)), out

    def prepare_conditions(self, static: torch.Tensor, prompt: torch.Tensor, context: torch.Tensor | None = None,
                           z_static: torch.Tensor | None = None,
                           context_flow: torch.Tensor | None = None) -> Conditions:  # fmt: skip
        """Model-space videos (B|1, T, 3, H, W), context (B, C, 3, H, W) -> encoded :class:`Conditions`.

        A static batch of one is encoded once and shared by every batch item (candidate actions
        of one scene); ``z_static`` skips even that (a cache from an earlier call). With a ``motion`` network
        the static video's pixels are first moved by its predicted flow (per item: it depends on the hands); the
        moved video is the known video and, with ``motion_as="base"``, also the residual's base
        (``Conditions.z_static``); ``context_flow`` as :meth:`motion_outputs` takes it.
        """
        b, t = prompt.shape[:2]
        if static.shape[0] not in (1, b):
            raise ValueError(f"`static` batch must be 1 or {b}, got {static.shape[0]}")
        if z_static is None:
            z_static = self.encode(self._pad_time(static))
        z_static = z_static.expand(b, *z_static.shape[1:]) if z_static.shape[0] == 1 else z_static
        z_prompt = self.encode(self._pad_time(prompt))
        known = torch.zeros(b, self.padded_frames(t), dtype=torch.bool, device=prompt.device)
        c = 0 if context is None else context.shape[1]
        if c >= t:
            raise ValueError(f"context ({c} frames) must be shorter than the window ({t} frames)")
        known[:, :c] = True
        known_video = self._known_video(static, context, b)
        motion_out = None
        if self.motion is not None:  # the known video (and, as "base", the residual's base): the static video, moved
            moved, motion_out = self.move_static(static, prompt, context, context_flow=context_flow)
            if self.config.motion_as == "base":
                z_static = moved.to(z_static.dtype)
            known_video = moved if not c else torch.cat((known_video[:, :c], moved[:, c:]), 1)
        z_known = z_static if known_video is None else self.encode(self._pad_time(known_video))
        if self.backbone == "compact":
            mask = self.latent_frame_mask(known)[:, :, None, None, None]
        else:  # DWM: a constant mask (VideoX-Fun's "every frame given" = the static video); context rides in `known`
            mask = torch.full_like(known[:, :: self.temporal_compression], self.mask_value, dtype=z_static.dtype)
            mask = mask[:, : z_static.shape[1], None, None, None]
        mask = mask.expand(-1, -1, self.mask_channels, *z_static.shape[-2:])
        cond = torch.cat((mask.to(z_static.dtype), z_known, z_prompt), dim=2)
        return Conditions(z_static=z_static, cond=cond, known=known[:, :t], motion=motion_out)

    def encode_text(
        self, text: list[str] | None, batch: int, device: torch.device, dtype: torch.dtype
    ) -> torch.Tensor | None:
        """(B, L, D) text embeddings for text-conditioned denoisers (zeros = no text), else None.

        Encodings are cached per text (an episode's text is encoded once, whatever the number of candidates
        and chunks); Wan's padding tokens are zeroed, as its pipelines do."""
        if not self.uses_text:
            return None
        length, width = self.text_shape
        if self.text_encoder is None or self.tokenizer is None:
            return torch.zeros(batch, length, width, device=device, dtype=dtype)
        text = [""] if text is None else text  # DWM always encodes a prompt, at least the empty one
        if len(text) not in (1, batch):
            raise ValueError(f"`text` must hold 1 or {batch} strings, got {len(text)}")
        cache = self.__dict__.setdefault("_text_cache", {})
        key = (tuple(text), str(device), dtype)
        if key not in cache:
            tok = self.tokenizer(list(text), padding="max_length", max_length=length, truncation=True,
                                 return_tensors="pt")  # fmt: skip
            ids = tok.input_ids.to(device)
            # never trained here; outside any autocast, so a cached encoding does not depend on the caller's precision
            with torch.no_grad(), torch.autocast(torch.device(device).type, enabled=False):
                if self.backbone == "wan":
                    keep = tok.attention_mask.to(device)
                    emb = self.text_encoder(ids, attention_mask=keep)[0] * keep[..., None]
                else:
                    emb = self.text_encoder(ids)[0]
            if len(cache) >= 64:
                cache.clear()
            cache[key] = emb.to(dtype)
        emb = cache[key]
        return emb.expand(batch, -1, -1) if emb.shape[0] == 1 else emb

    def _rotary(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        cfg = self.transformer.config
        if not getattr(cfg, "use_rotary_positional_embeddings", False):
            return None
        from diffusers.models.embeddings import get_3d_rotary_pos_embed

        p = cfg.patch_size
        gh, gw = latents.shape[-2] // p, latents.shape[-1] // p
        base_h, base_w = cfg.sample_height // p, cfg.sample_width // p
        # the resize-crop region of CogVideoX 1.0: the grid fitted into the base grid, centred
        r = gh / gw
        th, tw = (base_h, round(base_h / r)) if r > base_h / base_w else (round(base_w * r), base_w)
        top, left = round((base_h - th) / 2.0), round((base_w - tw) / 2.0)
        crops = ((top, left), (top + th, left + tw))
        return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, crops_coords=crops, grid_size=(gh, gw),
                                       temporal_size=latents.shape[1], device=latents.device)  # fmt: skip

    def predict(self, latents: torch.Tensor, timestep: torch.Tensor, cond: Conditions,
                text_embeds: torch.Tensor | None = None, denoiser: Any = None) -> torch.Tensor:  # fmt: skip
        """One denoiser evaluation: (B, F, Cz, h, w) -> the scheduler's prediction type, same shape.
        ``denoiser``: call this module instead of ``self.transformer`` (a DDP-wrapped copy in training)."""
        net = self.transformer if denoiser is None else denoiser
        x = torch.cat((latents, cond.cond.to(latents.dtype)), dim=2)
        t = timestep.reshape(-1).expand(latents.shape[0]).to(latents.device)
        if self.backbone == "wan":
            image_dim = getattr(self.transformer.config, "image_dim", None)
            image = None if not image_dim else x.new_zeros(x.shape[0], 257, image_dim)  # DWM: a zero CLIP image
            out = net(hidden_states=x.permute(0, 2, 1, 3, 4), timestep=t, encoder_hidden_states=text_embeds,
                      encoder_hidden_states_image=image, return_dict=False)[0]  # fmt: skip
            return out.permute(0, 2, 1, 3, 4)
        if self.uses_text:
            return net(hidden_states=x, encoder_hidden_states=text_embeds, timestep=t,
                       image_rotary_emb=self._rotary(latents), return_dict=False)[0]  # fmt: skip
        return net(hidden_states=x, timestep=t, return_dict=False)[0]

    # ------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def __call__(
        self,
        static: np.ndarray | torch.Tensor,
        prompt: np.ndarray | torch.Tensor,
        context: np.ndarray | torch.Tensor | None = None,
        text: str | list[str] | None = None,
        negative_prompt: str | None = None,
        num_inference_steps: int = 4,
        guidance_scale: float = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        z_static: torch.Tensor | None = None,
        output_type: str = "uint8",
        return_dict: bool = True,
        progress: bool = False,
        context_flow: np.ndarray | torch.Tensor | None = None,
    ) -> DexWorldPipelineOutput | tuple:
        """Generate the interaction video.

        Args:
            static: (B|1, T, H, W, 3) static-scene video (uint8, or float in [0, 1]); a batch of one
                is shared by all B items and encoded once.
            prompt: (B, T, H, W, 3) hand-prompt video.
            context: optional (B|1, C, H, W, 3) known first frames (C < T); they come back unchanged.
            text: one string or B strings (text-conditioned backbones; ignored otherwise).
            negative_prompt: what text guidance pushes away from (default: :attr:`default_negative_prompt`).
            num_inference_steps: denoising steps; guidance_scale > 1 adds text classifier-free guidance.
            generator: torch generator(s) for the initial noise: fixed generator, fixed result.
            context_flow: optional (B|1, H, W, 2) backward flow in pixels of the last context frame (the ``flow``
                an earlier call returned for it), for a motion network that reads it: what earlier windows moved
                stays moved. Zeros when None.
        """
        device, dtype = self._execution_device, self.transformer.dtype
        s = to_model_video(static, "static", device, dtype)
        p = to_model_video(prompt, "prompt", device, dtype)
        if s.shape[1:] != p.shape[1:]:
            raise ValueError(f"`static` {tuple(s.shape)} and `prompt` {tuple(p.shape)} must share (T, 3, H, W)")
        h, w = p.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(f"height and width must be multiples of {m} for this backbone, got {h}x{w}")
        if num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be >= 1, got {num_inference_steps}")
        c = None
        if context is not None:
            c = to_model_video(context, "context", device, dtype)
            if c.shape[2:] != p.shape[2:]:
                raise ValueError(f"`context` frames {tuple(c.shape[2:])} must match the videos {tuple(p.shape[2:])}")
        b, t = p.shape[:2]
        if c is not None and self.config.get("carry_scene", False):
            s = carry_scene_changes(s, p, c)
            z_static = None  # the static video changed: an encoding cached from the original one no longer fits
        cf = None
        if context_flow is not None:
            cf = torch.as_tensor(np.asarray(context_flow) if not torch.is_tensor(context_flow) else context_flow)
            if cf.ndim != 4 or cf.shape[0] not in (1, b) or tuple(cf.shape[1:]) != (h, w, 2):
                raise ValueError(f"`context_flow` must be (1 or {b}, {h}, {w}, 2), got {tuple(cf.shape)}")
            if not torch.isfinite(cf).all():
                raise ValueError("`context_flow` holds NaN or infinite values")
            if c is None:
                raise ValueError("`context_flow` is the flow of the last context frame: it needs `context`")
            cf = cf.to(device=device, dtype=torch.float32).permute(0, 3, 1, 2)
        cond = self.prepare_conditions(s, p, c, z_static=z_static, context_flow=cf)
        texts = [text] if isinstance(text, str) else text
        emb = self.encode_text(texts, b, device, dtype)
        do_cfg = guidance_scale > 1.0 and emb is not None and texts is not None
        shape = (b, *cond.z_static.shape[1:])
        if latents is None:
            latents = torch.randn(shape, generator=generator, device="cpu" if generator is None else None,
                                  dtype=torch.float32) if not isinstance(generator, list) else torch.cat(
                [torch.randn((1, *shape[1:]), generator=g, dtype=torch.float32) for g in generator])  # fmt: skip
        latents = latents.to(device=device, dtype=dtype) * getattr(self.scheduler, "init_noise_sigma", 1.0)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        extra = {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}
        if isinstance(generator, list):
            extra = {}
        if do_cfg:
            neg = self.default_negative_prompt if negative_prompt is None else negative_prompt
            null = self.encode_text([neg], b, device, dtype) if self.text_encoder is not None else torch.zeros_like(emb)
        scale_input = getattr(self.scheduler, "scale_model_input", lambda x, _t: x)  # flow matching has none
        for t_step in tqdm(self.scheduler.timesteps, disable=not progress, desc="denoising"):
            x_in = scale_input(latents, t_step)
            pred = self.predict(x_in, t_step, cond, emb)
            if do_cfg:
                uncond = self.predict(x_in, t_step, cond, null)
                pred = uncond + guidance_scale * (pred - uncond)
            latents = self.scheduler.step(pred, t_step, latents, **extra, return_dict=False)[0]
        z = latents + cond.z_static if self.residual_to_static else latents
        video = self.decode(z)[:, :t]
        if c is not None:
            video[:, : c.shape[1]] = c.expand(b, -1, -1, -1, -1).to(video.dtype)
        out: np.ndarray | torch.Tensor
        flow = None if cond.motion is None else cond.motion[:, :t, :2].float().permute(0, 1, 3, 4, 2)
        if output_type == "pt":
            out = video
        else:
            x = ((video.float() + 1.0) / 2.0).clamp(0, 1).permute(0, 1, 3, 4, 2).cpu()
            out = x.numpy() if output_type == "np" else (x * 255.0).round().to(torch.uint8).numpy()
            flow = None if flow is None else flow.cpu().numpy()
        self.maybe_free_model_hooks()
        return DexWorldPipelineOutput(frames=out, flow=flow) if return_dict else (out,)
