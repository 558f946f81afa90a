"""``dexsim bench worldmodel``: seconds per chunk, frames per second, peak memory."""

from __future__ import annotations

import resource
import statistics
import time
from typing import Any

import numpy as np
import torch

__all__ = ["BENCH_CONFIGS", "bench_overfit", "bench_worldmodel"]

BENCH_CONFIGS = ("default", "compact", "tiny-cogvideox-fun", "tiny-wan-fun")


def _model(config: str, width: int, height: int, device: str, precision: str = "auto") -> Any:
    from ..worldmodel.cogvideox_fun import tiny_cogvideox_fun_pipeline
    from ..worldmodel.models import COMPACT_CONFIGS, DiffusionWorldModel, compact_pipeline, load

    if config == "default":
        return load("default", device=device, precision=precision)
    if config == "tiny-cogvideox-fun":
        pipe = tiny_cogvideox_fun_pipeline(width, height, vae_channels=16, layers=2)
        return DiffusionWorldModel(pipe, width, height, window=9, context_frames=1, device=device, name=config,
                                   precision=precision)  # fmt: skip
    if config == "tiny-wan-fun":
        from ..worldmodel.wan_fun import tiny_wan_fun_pipeline

        return DiffusionWorldModel(tiny_wan_fun_pipeline(width, height, layers=2), width, height, window=9,
                                   context_frames=1, device=device, name=config, precision=precision)  # fmt: skip
    if config in COMPACT_CONFIGS:
        return DiffusionWorldModel(compact_pipeline(config), width, height, window=9, context_frames=1, device=device,
                                   name=config, precision=precision)  # fmt: skip
    return load(config, device=device, precision=precision)


def _quality_vs_fp32(config: str, model: Any, data: str, clips: int, device: str, num_steps: int) -> dict[str, Any]:
    """PSNR (dB) of ``model``'s first window of each of the first ``clips`` clips of ``data`` against the same
    model in float32 (same noise): what a faster precision costs."""
    from ..data.dataset import clip_ids, read_clip
    from ..metrics import psnr

    ref = _model(config, model.width, model.height, device, precision="fp32")
    ids = clip_ids(data)[:clips]
    if not ids:
        raise FileNotFoundError(f"no clips in {data}")
    t, c = model.window, model.context_frames
    values = []
    for cid in ids:
        clip = read_clip(data, cid)
        if clip.static.shape[1:3] != (model.height, model.width) or clip.static.shape[0] < t:
            raise ValueError(f"{data}/{cid}: needs {t} frames at {model.width}x{model.height}, got "
                             f"{clip.static.shape[0]} at {clip.static.shape[2]}x{clip.static.shape[1]}")  # fmt: skip
        args = (clip.static[None, :t], clip.prompt[None, :t])
        ctx = clip.interaction[None, :c] if c else None
        a, b = (m.generate(*args, context=ctx, num_steps=num_steps, generator=torch.Generator().manual_seed(0)).frames
                for m in (model, ref))  # fmt: skip
        values.append(psnr(a[0, c:], b[0, c:]))
    return {
        "data": str(data),
        "clips": len(values),
        "psnr_vs_fp32_median": statistics.median(values),
        "psnr_vs_fp32_min": min(values),
    }


def bench_worldmodel(
    config: str = "default", chunks: int = 5, num_steps: int | None = None, batch: int = 1, width: int = 128,
    height: int = 128, device: str = "cpu", seed: int = 0, precision: str = "auto", quality_data: str | None = None,
    quality_clips: int = 8,
) -> dict[str, Any]:  # fmt: skip
    """Time ``chunks`` continuation windows (context + new frames) on random inputs; medians. With
    ``quality_data`` (a dataset folder) and a precision other than float32, also the PSNR of the outputs
    against float32 ones on its first ``quality_clips`` clips."""
    model = _model(config, width, height, device, precision)
    w, h, t = model.width, model.height, model.window
    rng = np.random.default_rng(seed)
    static = rng.integers(0, 255, (1, t, h, w, 3), dtype=np.uint8)
    prompt = rng.integers(0, 255, (batch, t, h, w, 3), dtype=np.uint8)
    context = rng.integers(0, 255, (batch, model.context_frames, h, w, 3), dtype=np.uint8)
    steps = num_steps or getattr(model, "num_steps", 4)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    model.generate(static, prompt, context=context, num_steps=steps)  # warm-up
    times = []
    for i in range(chunks):
        t0 = time.perf_counter()
        model.generate(static, prompt, context=context, num_steps=steps, generator=torch.Generator().manual_seed(i))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    new_frames = t - model.context_frames
    sec = statistics.median(times)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # fmt: skip
    params = sum(p.numel() for p in model.pipeline.transformer.parameters())
    motion = getattr(model.pipeline, "motion", None)
    motion_params = 0 if motion is None else sum(p.numel() for p in motion.parameters())
    quality = None
    if quality_data is not None and model.precision != "fp32":
        quality = _quality_vs_fp32(config, model, quality_data, quality_clips, device, steps)
    return {"config": config, "precision": model.precision, "quality": quality, "device": device,
            "torch_threads": torch.get_num_threads(), "num_steps": steps,
            "width": w, "height": h, "frames": t, "new_frames_per_chunk": new_frames, "batch": batch,
            "seconds_per_chunk": sec, "frames_per_s": batch * new_frames / sec, "seconds_all": times,
            "peak_memory_mb": peak, "denoiser_parameters": params,
            "motion_parameters": motion_params}  # fmt: skip


def bench_overfit(data: str, config: str = "compact", steps: int = 400, lr: float = 1e-3, check_every: int = 25,
                  clip_index: int = 0, window: int = 9, num_steps: int = 4, seed: int = 0,
                  target_db: float = 30.0) -> dict[str, Any]:  # fmt: skip
    """Sanity of the conditioning path: fit one window of one clip; PSNR of the generated window to the
    ground truth over time, and when it first reaches ``target_db``."""
    import math

    from ..data.dataset import clip_ids, read_clip
    from ..training.loss import diffusion_loss
    from ..worldmodel.models import compact_pipeline

    ids = clip_ids(data)
    if not ids:
        raise FileNotFoundError(f"no clips in {data}")
    c = read_clip(data, ids[clip_index])
    to = lambda v: torch.from_numpy(np.ascontiguousarray(v[None, :window]))  # noqa: E731
    static, prompt, video = to(c.static), to(c.prompt), to(c.interaction)
    pipe = compact_pipeline(config, seed=seed)
    opt = torch.optim.AdamW(pipe.transformer.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    curve, reached = [], None
    for step in range(1, steps + 1):
        pipe.transformer.train()
        loss = diffusion_loss(pipe, static, prompt, video, torch.zeros(1, dtype=torch.long), generator=gen)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % check_every == 0 or step == steps:
            pipe.transformer.eval()
            out = pipe(static.numpy(), prompt.numpy(), num_inference_steps=num_steps,
                       generator=torch.Generator().manual_seed(0)).frames[0]  # fmt: skip
            mse = float(np.mean((out.astype(np.float64) - video[0].numpy()) ** 2))
            psnr = 10 * math.log10(255**2 / max(mse, 1e-10))
            curve.append(
                {"step": step, "seconds": time.perf_counter() - t0, "psnr": psnr, "loss": float(loss.detach())}
            )
            if reached is None and psnr >= target_db:
                reached = curve[-1]
                break
    identity = float(np.mean((static[0].numpy().astype(np.float64) - video[0].numpy()) ** 2))
    return {"config": config, "clip": ids[clip_index], "window": window, "num_steps": num_steps, "lr": lr,
            "target_db": target_db, "reached": reached, "curve": curve, "final_psnr": curve[-1]["psnr"],
            "identity_psnr": 10 * math.log10(255**2 / max(identity, 1e-10)),
            "torch_threads": torch.get_num_threads()}  # fmt: skip
