"""The diffusion training objective of :class:`~dexsim.worldmodel.pipeline.DexWorldPipeline`."""

from __future__ import annotations

from typing import Any

import torch

from ..worldmodel.pipeline import to_model_video

__all__ = ["change_map", "diffusion_loss", "motion_loss", "moving_pixels", "occlusion_targets"]


def diffusion_loss(
    pipe: Any, static: torch.Tensor, prompt: torch.Tensor, video: torch.Tensor, context: torch.Tensor,
    generator: torch.Generator | None = None, text: list[str] | None = None, denoiser: Any = None,
    pyramid: int = 1, flow: torch.Tensor | None = None, flow_valid: torch.Tensor | None = None,
    flow_weight: float = 0.0, change_weight: float = 0.0,
) -> torch.Tensor:  # fmt: skip
    """MSE of the scheduler's prediction target on the frames to generate.

    Videos (B, T, H, W, 3) uint8; ``context`` (B,) known first frames per item (0 = none);
    ``denoiser``: the module to train through (a DDP wrapper of ``pipe.transformer``); ``pyramid`` > 1
    adds the MSE of the 2x, 4x... average-pooled prediction and target (one term per level, summed): an
    object a few pixels off still has an error that points towards its place (a flow head learns from it).
    ``flow`` (B, T, H, W, 2) ground-truth backward flow in pixels, known where ``flow_valid`` (B, T, H, W):
    with ``flow_weight`` > 0 the loss adds that weight times the L1 error (pixels) of a warp denoiser's flow
    head, averaged over the moving pixels (ground truth over half a pixel) and over the still ones separately.
    A motion network that reads the context flow is given the true flow of each window's last context frame
    (``flow`` and ``flow_valid``), as in its own training and as a rollout carries it.
    ``change_weight`` > 0 weighs each pixel's error by ``1 + change_weight`` where the true video differs from
    the static one (:func:`change_map`): the few pixels a moved object covers or uncovers (and the hands) weigh
    more than the unchanging rest of the frame.
    """
    device, dtype = pipe.transformer.device, pipe.transformer.dtype
    s, p, v = (
        to_model_video(x, n, device, dtype) for x, n in ((static, "static"), (prompt, "prompt"), (video, "video"))
    )
    with torch.no_grad():
        z_video = pipe.encode(pipe._pad_time(v))
        reads_flow = flow is not None and flow_valid is not None and pipe.takes_context_flow
        parts = [pipe.prepare_conditions(s[i : i + 1], p[i : i + 1], v[i : i + 1, :c] if c else None,
                                         context_flow=context_flow_of(flow, flow_valid, torch.tensor([i]), c)
                                         if c and reads_flow else None)
                 for i, c in enumerate(context.tolist())]  # fmt: skip
        z_static = torch.cat([c.z_static for c in parts])
        cond_t = torch.cat([c.cond for c in parts])
        known = torch.cat([c.known for c in parts])
        text_embeds = pipe.encode_text(text, s.shape[0], device, dtype)
    from ..worldmodel.pipeline import Conditions

    cond = Conditions(z_static=z_static, cond=cond_t, known=known)
    x0 = z_video - z_static if pipe.residual_to_static else z_video
    sched = pipe.scheduler
    b = x0.shape[0]
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(device, dtype)
    if type(sched).__name__.startswith("FlowMatch"):  # Wan: x_s = (1 - s) x0 + s noise, velocity noise - x0
        u = torch.rand(b, generator=generator)
        shift = float(sched.config.shift)
        s_ = (shift * u / (1 + (shift - 1) * u)).to(device)  # the scheduler's static shift of a uniform level
        sigma = s_.to(x0.dtype).view(b, *[1] * (x0.ndim - 1))
        noisy, target, t = (1 - sigma) * x0 + sigma * noise, noise - x0, s_ * sched.config.num_train_timesteps
    else:
        t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=generator).to(device)
        noisy = sched.add_noise(x0, noise, t)
        target = sched.get_velocity(x0, noise, t) if sched.config.prediction_type == "v_prediction" else noise
        if sched.config.prediction_type == "sample":
            target = x0
    captured: list[torch.Tensor] = []
    hook = None
    if flow_weight > 0:
        head = getattr(pipe.transformer, "flow_out", None)
        if head is None or flow is None or flow_valid is None:
            raise ValueError("`flow_weight` > 0 needs a denoiser with a flow head (output_mode='warp') and `flow`")
        hook = head.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        pred = pipe.predict(noisy, t, cond, text_embeds, denoiser=denoiser)
    finally:
        if hook is not None:
            hook.remove()
    weight = pipe.latent_frame_mask(known)[:, :, None, None, None].to(pred.dtype)  # generated frames only
    pixels = None
    if change_weight > 0:
        changed = change_map(pipe._pad_time(s), pipe._pad_time(v), pred.shape[-2:], pred.shape[1])
        pixels = 1.0 + change_weight * changed
    total = _pyramid_mse(pred, target, weight, pyramid, pixels)
    if flow_weight > 0:
        total = total + flow_weight * _flow_l1(captured[-1], flow, flow_valid, weight[:, :, 0, 0, 0])
    return total


#: a pixel "changes" where the true video differs from the static one by more than this (of 255) in a channel
CHANGE_THRESHOLD = 10


def change_map(static: torch.Tensor, video: torch.Tensor, size: tuple[int, int] | torch.Size,
               frames: int) -> torch.Tensor:  # fmt: skip
    """(B, F, 1, h, w) float 0/1: where ``video`` differs from ``static`` ((B, T, 3, H, W) in [-1, 1]) by over
    :data:`CHANGE_THRESHOLD`/255, dilated by one pixel, max-pooled to the prediction's ``frames`` x ``size``."""
    diff = (video.float() - static.float()).abs().amax(2, keepdim=True) > (2.0 * CHANGE_THRESHOLD / 255.0)
    m = torch.nn.functional.max_pool3d(diff.float().transpose(1, 2), (1, 3, 3), stride=1, padding=(0, 1, 1))
    if m.shape[2:] != (frames, *size):
        m = torch.nn.functional.adaptive_max_pool3d(m, (frames, *size))
    return m.transpose(1, 2)


def motion_loss(pipe: Any, static: torch.Tensor, prompt: torch.Tensor, video: torch.Tensor, context: torch.Tensor,
                flow: torch.Tensor, flow_valid: torch.Tensor, motion: Any = None,
                occlusion_weight: float = 0.0, occlusion_balanced: bool = False) -> torch.Tensor:  # fmt: skip
    """L1 (pixels) of the pipeline's motion network's flow against the ground-truth backward flow on the frames
    to generate, averaged over the moving pixels (:func:`moving_pixels`) and over the still ones separately; for
    an occluding network (4 output channels) plus ``occlusion_weight`` times the binary cross-entropy of its
    occlusion logits against :func:`occlusion_targets`, the mean over the valid pixels (calibrated, so that a
    probability over one half means more likely than not; a loss balancing the few positive pixels against the
    rest over-predicted the vacated places sixfold). ``occlusion_balanced``: that balanced loss instead (the
    positive and the negative pixels averaged apart; the default model's recipe used it for 1,500 steps before a
    logit prior calibrated it). ``occlusion_weight`` > 0 needs an occluding network.

    Videos (B, T, H, W, 3) uint8; ``context`` (B,) known first frames per item; ``flow`` (B, T, H, W, 2),
    ``flow_valid`` (B, T, H, W) as :class:`~dexsim.training.data.Windows` carries them; ``motion``: the module to
    train through (a DDP wrapper of ``pipe.motion``).
    """
    if pipe.motion is None:
        raise ValueError("`motion_loss` needs a pipeline with a motion network")
    device, dtype = pipe.motion.device, pipe.motion.dtype
    s, p, v = (to_model_video(x, n, device, dtype) for x, n in ((static, "static"), (prompt, "prompt"),
                                                                (video, "video")))  # fmt: skip
    counts = context.tolist()
    parts = []
    for c in sorted(set(counts)):  # one batched pass per context length
        i = torch.tensor([k for k, n in enumerate(counts) if n == c], device=device)
        known_flow = context_flow_of(flow, flow_valid, i, c) if c and pipe.takes_context_flow else None
        parts.append((i, pipe.motion_outputs(s[i], p[i], v[i, :c] if c else None, motion=motion,
                                             context_flow=known_flow).float()))  # fmt: skip
    pred = torch.empty(*s.shape[:2], parts[0][1].shape[2], *s.shape[3:], device=device)
    for i, out in parts:
        pred[i] = out
    if occlusion_weight > 0 and pred.shape[2] != 4:
        raise ValueError(f"`occlusion_weight` {occlusion_weight} needs a motion network with occlusion outputs "
                         f"(4 channels), this one has {pred.shape[2]}")  # fmt: skip
    generate = torch.ones(s.shape[:2], device=device)
    for i, c in enumerate(counts):
        generate[i, :c] = 0.0
    total = _flow_l1(pred[:, :, :2].flatten(0, 1), flow, flow_valid, generate)
    if occlusion_weight > 0:
        gt = flow.to(device, torch.float32).flatten(0, 1).permute(0, 3, 1, 2)
        ok = flow_valid.to(device).flatten(0, 1) & (generate.flatten() > 0)[:, None, None]
        for logits, target in zip(pred[:, :, 2:].flatten(0, 1).unbind(1), occlusion_targets(gt), strict=True):
            bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
            groups = (ok & target, ok & ~target) if occlusion_balanced else (ok,)
            total = total + occlusion_weight * sum((bce * m).sum() / m.sum().clamp_min(1) for m in groups)
    return total


def context_flow_of(flow: torch.Tensor, flow_valid: torch.Tensor, items: torch.Tensor, context: int) -> torch.Tensor:
    """The true backward flow of the last context frame of the windows ``items`` (zero where not valid), as a
    context-flow motion network reads it: ``flow`` (B, T, H, W, 2), ``flow_valid`` (B, T, H, W) ->
    (len(items), 2, H, W) float32 pixels, on ``items``' device."""
    rows = items.to(flow.device)
    known = flow[rows, context - 1].float() * flow_valid[rows, context - 1, ..., None].float()
    return known.permute(0, 3, 1, 2).to(items.device)


#: a pixel of ground-truth backward flow "moves" beyond this many pixels (Euclidean length)
MOVING_PIXELS = 0.5


def moving_pixels(flow: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) backward flow in pixels -> (N, H, W) bool: longer than :data:`MOVING_PIXELS`."""
    return flow.float().norm(dim=1) > MOVING_PIXELS


def occlusion_targets(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 2, H, W) true backward flow in pixels -> the targets of :data:`~dexsim.worldmodel.compact.
    OCCLUSION_OUTPUTS`, each (N, H, W) bool: ``footprint``, the static frame's pixels some moving pixel comes from
    (sources off the frame dropped; grown one pixel), and ``vacated``, the footprint's pixels that do not move
    themselves (the object left them)."""
    n, _, h, w = flow.shape
    moving = moving_pixels(flow)
    ys = torch.arange(h, device=flow.device)[None, :, None].expand(n, h, w)
    xs = torch.arange(w, device=flow.device)[None, None, :].expand(n, h, w)
    sx, sy = (xs + flow[:, 0]).round().long(), (ys + flow[:, 1]).round().long()
    keep = moving & (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    frame = torch.arange(n, device=flow.device)[:, None, None].expand(n, h, w)[keep]
    hit = torch.zeros(n, h * w, device=flow.device)
    hit[frame, sy[keep] * w + sx[keep]] = 1.0
    footprint = torch.nn.functional.max_pool2d(hit.view(n, 1, h, w), 3, stride=1, padding=1)[:, 0] > 0
    return footprint, footprint & ~moving


def _flow_l1(pred: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """L1 (pixels) of a warp denoiser's full-resolution flow ``pred`` (B*F, 2, H, W) against ``flow``."""
    b, t, h, w, _ = flow.shape
    if pred.shape[0] != b * t or pred.shape[-2:] != (h, w):
        raise ValueError(f"the flow head gave {tuple(pred.shape)}, the ground truth is {b}x{t} frames of {h}x{w}")
    pred = pred.float()
    gt = flow.to(pred.device, torch.float32).flatten(0, 1).permute(0, 3, 1, 2)
    err = (pred - gt).abs().sum(1)  # (B*T, H, W)
    ok = valid.to(pred.device).flatten(0, 1) & (frames.flatten() > 0)[:, None, None]
    moving = ok & moving_pixels(gt)
    still = ok & ~moving
    return sum(((err * m).sum() / m.sum().clamp_min(1)) for m in (moving, still))


def _pyramid_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, pyramid: int,
                 pixels: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """MSE over the weighted frames, plus the same on ``pyramid - 1`` 2x average-pooled levels.

    ``weight`` (B, F, 1, 1, 1) per frame; ``pixels`` (B, F, 1, h, w), optional, multiplies each pixel's error
    (average-pooled along with the frames); the sum is normalised by the frame weights alone."""
    diff = (pred.float() - target.float()).flatten(0, 1)  # (B*F, C, h, w)
    w = weight.float().flatten(0, 1)
    frames = w.sum()
    px = None if pixels is None else pixels.float().flatten(0, 1)
    total = diff.new_zeros(())
    for level in range(pyramid):
        if level:
            if min(diff.shape[-2:]) < 2:
                break
            diff = torch.nn.functional.avg_pool2d(diff, 2)
            px = None if px is None else torch.nn.functional.avg_pool2d(px, 2)
        err = diff.square() * w if px is None else diff.square() * w * px
        total = total + err.sum() / (frames * diff[0].numel()).clamp_min(1.0)
    return total
