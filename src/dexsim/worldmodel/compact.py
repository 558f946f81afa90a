"""The compact CPU backbone: a small spatio-temporal U-Net over pixels folded into channels.

Space-to-depth (factor ``fold``) turns each frame into a (C * fold^2, H / fold, W / fold) grid; a
3-level U-Net with per-frame 3x3 convolutions, temporal 1D convolutions and joint space-time
self-attention at the coarsest level denoises every frame of the window at once. The pipeline
concatenates on channels what DWM concatenates: noisy sample | inpainting mask | known video
(static with the context frames pasted in) | hand prompt. No VAE: the latent space is the pixel
space, so the static video passes through bit-exact when the model predicts the residual.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

__all__ = [
    "CONTEXT_FLOW_SCALE",
    "MOTION_CHANNELS",
    "MOTION_FLOW_SCALE",
    "MOTION_INPUTS",
    "OCCLUSION_OUTPUTS",
    "OUTPUT_MODES",
    "CompactVideoDenoiser",
    "apply_motion",
    "inpaint",
    "motion_network",
    "move_by",
    "occlusion_options",
    "predict_motion",
    "warp",
    "with_context_flow",
    "with_occlusion",
]


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) sinusoidal features."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat((args.cos(), args.sin()), dim=-1)


class ResBlock(nn.Module):
    """Per-frame 3x3 residual block with FiLM from the timestep and a zero-initialised temporal conv."""

    def __init__(self, cin: int, cout: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(8, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.temporal = nn.Conv1d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.temporal.weight)
        nn.init.zeros_(self.temporal.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        """x (B*T, C, h, w), emb (B*T, E) -> (B*T, Cout, h, w)."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[..., None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        h = h + self.skip(x)
        bt, c, hh, ww = h.shape
        seq = h.view(bt // frames, frames, c, hh * ww).permute(0, 3, 2, 1).reshape(-1, c, frames)
        mix = self.temporal(F.silu(seq)).view(bt // frames, hh * ww, c, frames).permute(0, 3, 2, 1)
        return h + mix.reshape(bt, c, hh, ww)


class SpaceTimeAttention(nn.Module):
    """Self-attention over all (frame, y, x) tokens of one video, with learned space/time positions."""

    def __init__(self, dim: int, heads: int, max_frames: int = 64, max_side: int = 64) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(8, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.pos_t = nn.Parameter(torch.zeros(max_frames, dim))
        self.pos_s = nn.Parameter(torch.randn(max_side * max_side, dim) * 0.02)
        self.max_side = max_side

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        bt, c, h, w = x.shape
        if frames > self.pos_t.shape[0] or max(h, w) > self.max_side:
            raise ValueError(f"attention supports up to {self.pos_t.shape[0]} frames of {self.max_side}^2 tokens")
        tok = self.norm(x).view(bt // frames, frames, c, h * w).permute(0, 1, 3, 2)  # B, T, hw, C
        pos_s = self.pos_s.view(self.max_side, self.max_side, c)[:h, :w].reshape(h * w, c)
        tok = (tok + self.pos_t[:frames, None] + pos_s[None]).reshape(bt // frames, frames * h * w, c)
        q, k, v = self.qkv(tok).view(tok.shape[0], tok.shape[1], 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(tok.shape)
        att = self.out(att).view(bt // frames, frames, h * w, c).permute(0, 1, 3, 2).reshape(bt, c, h, w)
        return x + att


#: what the denoiser outputs: ``residual`` = the residual to the static video directly; ``warp`` = the
#: static video's pixels moved by a predicted backward flow, minus the static video, plus a residual
#: for what motion cannot explain (hands, uncovered table): a slightly misplaced object stays an object
OUTPUT_MODES = ("residual", "warp")

#: how a warp denoiser's flow, predicted on the folded grid, reaches full resolution: ``bilinear``
#: interpolation (smooth, blurs an object's edge over ``fold`` pixels), or ``convex``: each pixel takes a
#: learned convex combination of its cell's 3x3 neighbourhood of coarse flows (RAFT's upsampling), so a
#: rigid object's edge can fall between two pixels of one cell
FLOW_UPSAMPLING = ("bilinear", "convex")


def convex_upsample(flow: torch.Tensor, mask: torch.Tensor, fold: int) -> torch.Tensor:
    """(N, 2, h, w) coarse flow + (N, 9 * fold**2, h, w) mask logits -> (N, 2, h * fold, w * fold): each fine
    pixel's flow is the softmax(mask)-weighted mean of the 3x3 coarse flows around its cell (zeros past the
    border). Flow units are kept (pixels in, pixels out)."""
    n, _, h, w = flow.shape
    weights = mask.float().view(n, 1, 9, fold, fold, h, w).softmax(dim=2)
    neighbours = F.unfold(flow.float(), 3, padding=1).view(n, 2, 9, 1, 1, h, w)
    up = (weights * neighbours).sum(dim=2)  # (N, 2, fold, fold, h, w)
    return up.permute(0, 1, 4, 2, 5, 3).reshape(n, 2, h * fold, w * fold).to(flow.dtype)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: (N, C, H, W) image, (N, 2, H, W) flow in pixels (x, y) -> (N, C, H, W) where output
    pixel p takes ``image`` at ``p + flow(p)`` (bilinear, borders repeated)."""
    h, w = image.shape[-2:]
    ys = torch.arange(h, device=image.device, dtype=torch.float32)  # float32 even for half weights: exact pixels
    xs = torch.arange(w, device=image.device, dtype=torch.float32)
    gx = (xs[None, None, :] + flow[:, 0].float()) * (2.0 / w) + (1.0 / w - 1.0)
    gy = (ys[None, :, None] + flow[:, 1].float()) * (2.0 / h) + (1.0 / h - 1.0)
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=False).to(
        image.dtype
    )


def inpaint(image: torch.Tensor, hole: torch.Tensor, levels: int = 8) -> torch.Tensor:
    """Push-pull fill: (N, C, H, W) image, (N, 1, H, W) hole in [0, 1] (1 = unknown) -> (N, C, H, W) where each
    hole pixel takes the mean of the known pixels around it, from the finest pyramid level that has any (a soft
    hole blends). Differentiable in ``image`` and ``hole``; known pixels (hole 0) pass through unchanged."""
    weight = (1.0 - hole.float()).clamp(0.0, 1.0)
    colours, alphas = [], []
    x = image.float() * weight  # premultiplied colour
    for _ in range(levels):
        colours.append(x / weight.clamp_min(1e-6))
        alphas.append(weight.clamp(0.0, 1.0))
        if min(x.shape[-2:]) < 2:
            break
        x, weight = F.avg_pool2d(x, 2) * 4.0, F.avg_pool2d(weight, 2) * 4.0  # sums: one known pixel fills a cell
        x, weight = x / weight.clamp_min(1.0), weight.clamp(max=1.0)  # still premultiplied by the weight
    out = colours[-1]
    for colour, alpha in zip(reversed(colours[:-1]), reversed(alphas[:-1]), strict=True):
        up = F.interpolate(out, size=colour.shape[-2:], mode="bilinear", align_corners=False)
        out = alpha * colour + (1.0 - alpha) * up
    return out.to(image.dtype)


#: the largest compact model dexsim builds (parameters): a config beyond it is refused before allocating
MAX_PARAMETERS = 500_000_000


def _check_config(in_channels: int, out_channels: int, fold: int, block_channels: tuple[int, ...],
                  mid_blocks: int, attention_head_dim: int) -> None:  # fmt: skip
    """Refuse a config that cannot build or would allocate absurd memory, naming the argument."""

    def positive(name: str, v: object, most: int) -> None:
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= most:
            raise ValueError(f"`{name}` must be an int in [1, {most}], got {v!r}")

    positive("in_channels", in_channels, 1024)
    positive("out_channels", out_channels, 1024)
    positive("fold", fold, 16)
    positive("mid_blocks", mid_blocks, 64)
    positive("attention_head_dim", attention_head_dim, 4096)
    if len(block_channels) != 3:
        raise ValueError(f"`block_channels` must be 3 ints, got {block_channels!r}")
    for c in block_channels:
        positive("block_channels", c, 1 << 16)
        if c % 8:
            raise ValueError(f"`block_channels` must be multiples of 8 (GroupNorm of 8 groups), got {block_channels}")
    c0, c1, c2 = block_channels
    estimate = 18 * (3 * c0 * c0 + 3 * c1 * c1 + (mid_blocks + 1) * c2 * c2) + 4 * mid_blocks * c2 * c2
    estimate += (in_channels + out_channels) * fold * fold * c0 * 9
    if estimate > MAX_PARAMETERS:
        raise ValueError(f"this compact config has about {estimate / 1e6:.0f} M parameters (block_channels="
                         f"{tuple(block_channels)}, mid_blocks={mid_blocks}), over the {MAX_PARAMETERS / 1e6:.0f} M "
                         "limit")  # fmt: skip


class CompactVideoDenoiser(ModelMixin, ConfigMixin):
    """A diffusers model: ``hidden_states`` (B, T, in_channels, H, W) + ``timestep`` (B,) -> (B, T, out_channels, H, W).

    ``in_channels`` = noisy (3) + mask (1) + known video (3) + hand prompt (3). H and W must be
    multiples of ``fold * 4``. Frames per window are free (temporal convolutions; attention
    positions up to 64 frames). ``output_mode="warp"`` (see :data:`OUTPUT_MODES`) reads the known video
    from input channels ``out_channels + 1 : 2 * out_channels + 1`` (the pipeline's layout), its flow brought
    to full resolution as ``flow_upsampling`` says (:data:`FLOW_UPSAMPLING`). ``occlusion_prior``: for a motion
    network with occlusion outputs, added to their logits where they are used (:func:`move_by`): a network trained
    with a loss that balances the rare occluded pixels against the rest over-predicts them, and a negative prior
    (the log of their odds) corrects it. ``occlusion_gate``: such a network's flow moves a pixel only as far as the
    pixel's source lies in the predicted footprint (a smooth flow spreads onto the still table next to an object).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 10,
        out_channels: int = 3,
        fold: int = 4,
        block_channels: tuple[int, int, int] = (48, 96, 160),
        mid_blocks: int = 2,
        attention_head_dim: int = 32,
        sample_size: int = 128,
        sample_frames: int = 9,
        residual_to_static: bool = True,
        output_mode: str = "residual",
        flow_gain: float = 1.0,
        flow_upsampling: str = "bilinear",
        occlusion_prior: float = 0.0,
        occlusion_gate: bool = False,
    ) -> None:
        _check_config(in_channels, out_channels, fold, block_channels, mid_blocks, attention_head_dim)
        if isinstance(flow_gain, bool) or not isinstance(flow_gain, (int, float)) or not 0 < flow_gain <= 1e3:
            raise ValueError(f"`flow_gain` must be a number in (0, 1000], got {flow_gain!r}")
        if (
            isinstance(occlusion_prior, bool)
            or not isinstance(occlusion_prior, (int, float))
            or not (-20 <= occlusion_prior <= 20)
        ):
            raise ValueError(f"`occlusion_prior` must be a number in [-20, 20], got {occlusion_prior!r}")
        if flow_upsampling not in FLOW_UPSAMPLING:
            raise ValueError(f"`flow_upsampling` must be one of {FLOW_UPSAMPLING}, got {flow_upsampling!r}")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"`output_mode` must be one of {OUTPUT_MODES}, got {output_mode!r}")
        if flow_upsampling != "bilinear" and output_mode != "warp":
            raise ValueError(f"`flow_upsampling={flow_upsampling!r}` needs `output_mode='warp'` (a flow to upsample), "
                             f"got output_mode={output_mode!r}")  # fmt: skip
        if output_mode == "warp" and (not residual_to_static or in_channels < 2 * out_channels + 1):
            raise ValueError(
                "`output_mode='warp'` needs `residual_to_static` and the known video in the input "
                f"channels (in_channels >= {2 * out_channels + 1}), got in_channels={in_channels}"
            )
        super().__init__()
        c0, c1, c2 = block_channels
        emb = 4 * c0
        self.time_mlp = nn.Sequential(nn.Linear(c0, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.stem = nn.Conv2d(in_channels * fold * fold, c0, 1)
        self.enc0 = ResBlock(c0, c0, emb)
        self.down0 = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.enc1 = ResBlock(c1, c1, emb)
        self.down1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.mid = nn.ModuleList(ResBlock(c2, c2, emb) for _ in range(mid_blocks))
        self.attn = nn.ModuleList(SpaceTimeAttention(c2, max(1, c2 // attention_head_dim)) for _ in range(mid_blocks))
        self.up1 = nn.Conv2d(c2, c1, 3, padding=1)
        self.dec1 = ResBlock(2 * c1, c1, emb)
        self.up0 = nn.Conv2d(c1, c0, 3, padding=1)
        self.dec0 = ResBlock(2 * c0, c0, emb)
        self.norm_out = nn.GroupNorm(8, c0)
        self.head = nn.Conv2d(c0, out_channels * fold * fold, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        if output_mode == "warp":
            # backward flow on the folded grid (in units of fold / flow_gain pixels), zero at init: the model starts as
            # the residual one; a flow_gain > 1 lets the flow grow that much faster under Adam's per-weight steps
            self.flow_head = nn.Conv2d(c0, 2, 3, padding=1)
            nn.init.zeros_(self.flow_head.weight)
            nn.init.zeros_(self.flow_head.bias)
            if flow_upsampling == "convex":  # zero at init: each pixel averages its cell's 3x3 neighbourhood
                self.flow_mask = nn.Conv2d(c0, 9 * fold * fold, 3, padding=1)
                nn.init.zeros_(self.flow_mask.weight)
                nn.init.zeros_(self.flow_mask.bias)
            # no parameters: the full-resolution flow (N, 2, H, W) in pixels passes through it, where a training
            # loss (or a diagnostic) can read it with a forward hook
            self.flow_out = nn.Identity()
        self.gradient_checkpointing = False

    def _run(self, block: nn.Module, *args: object) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def _full_flow(self, feat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Decoder features (N, c0, h, w) on the folded grid -> backward flow (N, 2, H, W) in pixels."""
        f = self.config.fold
        flow = self.flow_head(feat) * (f * self.config.flow_gain)
        if self.config.flow_upsampling == "convex":
            return convex_upsample(flow, self.flow_mask(feat), f)
        return F.interpolate(flow, size=size, mode="bilinear", align_corners=False)

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        b, t, c, h, w = hidden_states.shape
        f = self.config.fold
        if c != self.config.in_channels:
            raise ValueError(f"expected {self.config.in_channels} input channels, got {c}")
        if h % (4 * f) or w % (4 * f):
            raise ValueError(f"height and width must be multiples of {4 * f}, got {h}x{w}")
        timestep = torch.as_tensor(timestep, device=hidden_states.device).reshape(-1).expand(b)
        emb = self.time_mlp(timestep_embedding(timestep, self.config.block_channels[0]).to(hidden_states.dtype))
        emb = emb.repeat_interleave(t, dim=0)
        x = F.pixel_unshuffle(hidden_states.reshape(b * t, c, h, w), f)
        x0 = self._run(self.enc0, self.stem(x), emb, t)
        x1 = self._run(self.enc1, self.down0(x0), emb, t)
        x2 = self.down1(x1)
        for block, attn in zip(self.mid, self.attn, strict=True):
            x2 = self._run(block, x2, emb, t)
            x2 = self._run(attn, x2, t)
        u1 = self.up1(F.interpolate(x2, scale_factor=2.0, mode="nearest"))
        u1 = self._run(self.dec1, torch.cat((u1, x1), dim=1), emb, t)
        u0 = self.up0(F.interpolate(u1, scale_factor=2.0, mode="nearest"))
        u0 = self._run(self.dec0, torch.cat((u0, x0), dim=1), emb, t)
        feat = F.silu(self.norm_out(u0))
        out = F.pixel_shuffle(self.head(feat), f)
        if self.config.output_mode == "warp":
            oc = self.config.out_channels
            known = hidden_states.reshape(b * t, c, h, w)[:, oc + 1 : 2 * oc + 1]
            flow = self.flow_out(self._full_flow(feat, (h, w)))
            out = out + warp(known, flow) - known
        out = out.view(b, t, -1, h, w)
        return Transformer2DModelOutput(sample=out) if return_dict else (out,)


#: pixels of backward flow per unit of a motion network's output (its head starts at zero: no motion)
MOTION_FLOW_SCALE = 4.0
#: a motion network's output channels: a backward flow (2), optionally followed by 2 occlusion logits
#: (:data:`OCCLUSION_OUTPUTS`)
MOTION_CHANNELS = (2, 4)
#: what an occluding motion network's two extra channels predict (logits, per pixel of each frame):
#: ``footprint``, the static video's pixels of an object that moves (where the table must be guessed for a clean
#: plate), and ``vacated``, the pixels the object has left (they show the clean plate, not the static video)
OCCLUSION_OUTPUTS = ("footprint", "vacated")
#: an occluding network's occlusion logits start here (probability 0.0025): it fills nothing until trained
OCCLUSION_LOGIT_INIT = -6.0
#: a motion network's input channels: ``static | mask | known | hand`` (10), or those and the context flow (12:
#: the backward flow of the last known frame, so that what an earlier window moved stays moved)
MOTION_INPUTS = (10, 12)
#: pixels of context flow per unit of a context-flow network's input
CONTEXT_FLOW_SCALE = 16.0


def motion_network(config: dict | None = None, seed: int = 0, occlusion: bool = False,
                   context_flow: bool = False) -> CompactVideoDenoiser:  # fmt: skip
    """A fresh motion network: the compact U-Net with ``static | mask | known | hand`` in (10 channels, the
    denoiser's layout with the static video where the noisy sample goes; ``context_flow``: and the last known
    frame's backward flow, 12 channels) and a backward flow out (2 channels, in units of
    :data:`MOTION_FLOW_SCALE` pixels), with ``occlusion`` also the 2 logits of :data:`OCCLUSION_OUTPUTS`
    (4 channels). ``config``: the trunk (``block_channels``, ``mid_blocks``, ``fold``...; the default model's
    when None)."""
    torch.manual_seed(seed)
    own = ("output_mode", "flow_gain", "flow_upsampling", "in_channels", "out_channels", "residual_to_static")
    trunk = {k: v for k, v in (config or {}).items() if not k.startswith("_") and k not in own}
    inputs = MOTION_INPUTS[1] if context_flow else MOTION_INPUTS[0]
    net = CompactVideoDenoiser(**(trunk | {"in_channels": inputs, "out_channels": 4 if occlusion else 2,
                                           "residual_to_static": False, "output_mode": "residual"}))  # fmt: skip
    if occlusion:
        with torch.no_grad():
            net.head.bias[2 * net.config.fold**2 :] = OCCLUSION_LOGIT_INIT
    return net


def with_occlusion(motion: CompactVideoDenoiser) -> CompactVideoDenoiser:
    """A 4-channel (occluding) copy of a 2-channel motion network: the same trunk and flow, occlusion logits at
    :data:`OCCLUSION_LOGIT_INIT` (so it moves pixels as ``motion`` does, but for a 0.25% blend of the clean plate,
    until trained). Leaves the global random state as it was; on ``motion``'s device and dtype."""
    if motion.config.out_channels != 2:
        raise ValueError(f"`with_occlusion` takes a 2-channel motion network, got {motion.config.out_channels}")
    with torch.random.fork_rng(devices=[]):
        net = motion_network(dict(motion.config), occlusion=True,
                             context_flow=motion.config.in_channels == MOTION_INPUTS[1])  # fmt: skip
    own = motion.state_dict()
    fresh = net.state_dict()
    flow_rows = 2 * motion.config.fold**2  # pixel_shuffle reads output channel c from head rows c*f^2 .. (c+1)*f^2-1
    for name, tensor in own.items():
        if name.startswith("head."):
            fresh[name][:flow_rows] = tensor.to(fresh[name].dtype)
        else:
            fresh[name] = tensor
    net.load_state_dict(fresh)
    return net.to(device=motion.device, dtype=motion.dtype)


def with_context_flow(motion: CompactVideoDenoiser) -> CompactVideoDenoiser:
    """A copy of a 10-input motion network that also reads the last known frame's flow (12 inputs,
    :func:`predict_motion`'s ``context_flow``): the new inputs' stem weights start at zero, so it predicts what
    ``motion`` does until trained. Leaves the global random state as it was; on ``motion``'s device and dtype."""
    if motion.config.in_channels != MOTION_INPUTS[0]:
        raise ValueError(f"`with_context_flow` takes a {MOTION_INPUTS[0]}-input motion network, got "
                         f"{motion.config.in_channels} inputs")  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        net = motion_network(dict(motion.config), occlusion=motion.config.out_channels == 4, context_flow=True)
    own = motion.state_dict()
    old_columns = own["stem.weight"].shape[1]  # pixel_unshuffle puts input channel c at columns c*f^2 .. (c+1)*f^2-1
    stem = torch.zeros_like(net.state_dict()["stem.weight"])
    stem[:, :old_columns] = own["stem.weight"]
    net.load_state_dict(own | {"stem.weight": stem})
    return net.to(device=motion.device, dtype=motion.dtype)


def predict_motion(motion: CompactVideoDenoiser, static: torch.Tensor, generate: torch.Tensor, known: torch.Tensor,
                   prompt: torch.Tensor, context_flow: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """The motion network's backward flow of each frame to the static video (and its occlusion logits).

    Args:
        static, known, prompt: (B, T, 3, H, W) in [-1, 1]: the static video, the static video with the context
            frames pasted in, the hand prompt.
        generate: (B, T) float, 1 where a frame is to be generated, 0 where it is given (context).
        context_flow: (B|1, 2, H, W) pixels: the backward flow of the last known frame (what earlier windows moved),
            for a 12-input network (zeros when None: nothing moved yet); a 10-input network refuses it.

    Returns:
        (B, T, 2 | 4, H, W) float32: channels 0-1 the flow in pixels (x, y): output pixel p of frame t shows the
        static frame t at ``p + flow(p)`` (:func:`warp`); an occluding network adds the logits of
        :data:`OCCLUSION_OUTPUTS`.
    """
    inputs = motion.config.in_channels
    if inputs not in MOTION_INPUTS or motion.config.out_channels not in MOTION_CHANNELS:
        raise ValueError(f"a motion network maps 10 or 12 channels to 2 or 4, this one {inputs} to "
                         f"{motion.config.out_channels}")  # fmt: skip
    if context_flow is not None and inputs == MOTION_INPUTS[0]:
        raise ValueError("this motion network has no context-flow input (10 channels); pass `context_flow=None`")
    b, t, _, h, w = static.shape
    mask = generate.to(static.dtype)[:, :, None, None, None].expand(b, t, 1, h, w)
    parts = [static, mask, known.to(static.dtype), prompt.to(static.dtype)]
    if inputs == MOTION_INPUTS[1]:
        if context_flow is None:
            context_flow = static.new_zeros(1, 2, h, w)
        if context_flow.shape[0] not in (1, b) or tuple(context_flow.shape[1:]) != (2, h, w):
            raise ValueError(f"`context_flow` must be (1 or {b}, 2, {h}, {w}), got {tuple(context_flow.shape)}")
        scaled = (context_flow.to(static.dtype) / CONTEXT_FLOW_SCALE)[:, None]
        parts.append(scaled.expand(b, t, 2, h, w))
    x = torch.cat(parts, dim=2)
    zero = torch.zeros(b, device=static.device)
    out = motion(hidden_states=x, timestep=zero, return_dict=False)[0].float()
    return torch.cat((out[:, :, :2] * MOTION_FLOW_SCALE, out[:, :, 2:]), dim=2)


def move_by(static: torch.Tensor, out: torch.Tensor, prior: float = 0.0, gate: bool = False) -> torch.Tensor:
    """The static video (B, T, 3, H, W) moved by a motion network's output (B, T, 2 | 4, H, W)
    (:func:`predict_motion`): warped by the flow; where an occluding network says vacated, a clean plate instead
    (the static frame with the predicted footprint, grown one more pixel, filled by :func:`inpaint`); ``prior`` is
    added to the occlusion logits first (the network's ``occlusion_prior``); ``gate`` scales each pixel's flow by
    that footprint's probability at the pixel's source (the network's ``occlusion_gate``). In ``static``'s dtype."""
    frames = static.flatten(0, 1)
    flow = out[:, :, :2].flatten(0, 1)
    if out.shape[2] == 4:
        footprint, vacated = torch.sigmoid(out[:, :, 2:].flatten(0, 1) + prior).split(1, dim=1)
        hole = F.max_pool2d(footprint, 3, stride=1, padding=1)
        if gate:
            flow = flow * warp(hole, flow)
    moved = warp(frames, flow)
    if out.shape[2] == 4:
        clean = inpaint(frames, hole)
        moved = moved.float() * (1.0 - vacated) + clean.float() * vacated
    return moved.view(static.shape).to(static.dtype)


def apply_motion(motion: CompactVideoDenoiser, static: torch.Tensor, generate: torch.Tensor, known: torch.Tensor,
                 prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """:func:`predict_motion` then :func:`move_by` (shapes of :func:`predict_motion`): returns the moved video
    (B, T, 3, H, W), in ``static``'s dtype, and the network's output (B, T, 2 | 4, H, W): the flow, then any
    occlusion logits."""
    out = predict_motion(motion, static, generate, known, prompt)
    return move_by(static, out, *occlusion_options(motion)), out


def occlusion_options(motion: object) -> tuple[float, bool]:
    """A motion network's (or the one a DDP wrapper holds) ``occlusion_prior`` and ``occlusion_gate``."""
    config = getattr(motion, "module", motion).config
    return float(getattr(config, "occlusion_prior", 0.0)), bool(getattr(config, "occlusion_gate", False))
