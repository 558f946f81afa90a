"""Training on Hugging Face Accelerate: one code path from one CPU process to many GPUs.

Checkpoints (``OUT/checkpoints/step-N/``, written atomically, the newest ``keep`` kept): the
trainable weights and the EMA weights as safetensors, optimizer + LR-scheduler state (loaded with
``weights_only=True``), the torch RNG state, and the data position, so a killed run resumes
exactly where it stopped. Validation writes an mp4 and a contact sheet (static | hand prompt |
generated | ground truth) and the JSON log ``OUT/log.jsonl`` gets one line per logged step.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import write_json
from .data import ClipWindows, DataPosition
from .loss import diffusion_loss
from .presets import TrainConfig

__all__ = ["build_pipeline", "export_checkpoint", "latest_checkpoint", "train"]


def build_pipeline(cfg: TrainConfig) -> Any:
    """The pipeline a preset trains, with ``requires_grad`` set on exactly what it trains."""
    if cfg.preset == "compact-from-scratch":
        from ..worldmodel.models import compact_pipeline

        pipe = compact_pipeline(cfg.model, seed=cfg.seed, sample_size=cfg.width, sample_frames=cfg.window)
        pipe.transformer.requires_grad_(True)
        return pipe
    if cfg.preset == "lora-cogvideox-fun":
        from ..worldmodel.cogvideox_fun import add_lora, load_cogvideox_fun, tiny_cogvideox_fun_pipeline

        if cfg.model == "tiny":
            pipe = tiny_cogvideox_fun_pipeline(cfg.width, cfg.height, seed=cfg.seed)
        else:
            pipe = load_cogvideox_fun(cfg.model, dtype=torch.float32)
        for m in (pipe.vae, pipe.text_encoder):
            if m is not None:
                m.requires_grad_(False)
        pipe.transformer.requires_grad_(False)
        add_lora(pipe.transformer, rank=cfg.lora_rank, alpha=cfg.lora_alpha)
        for name, p in pipe.transformer.named_parameters():
            if any(pat in name for pat in cfg.trainable_patterns) and "lora" not in name:
                p.requires_grad_(True)
        return pipe
    raise ValueError(f"unknown preset {cfg.preset!r}")


def _trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def latest_checkpoint(out: str | os.PathLike[str]) -> Path | None:
    d = Path(out) / "checkpoints"
    steps = (
        sorted((int(p.name.split("-")[1]), p) for p in d.glob("step-*") if (p / "state.json").is_file())
        if d.is_dir()
        else []
    )
    return steps[-1][1] if steps else None


def _save_checkpoint(path: Path, step: int, model: torch.nn.Module, ema: dict[str, torch.Tensor] | None,
                     optimizer: Any, scheduler: Any, data: ClipWindows, keep: int = 2) -> None:  # fmt: skip
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(
        {n: p.detach().cpu().contiguous() for n, p in _trainable(model).items()}, str(tmp / "trainable.safetensors")
    )
    if ema is not None:
        save_file({n: t.cpu().contiguous() for n, t in ema.items()}, str(tmp / "ema.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state()}, tmp / "training_state.pt")  # fmt: skip
    (tmp / "state.json").write_text(json.dumps({"step": step, "data_epoch": data.position.epoch,
                                                "data_index": data.position.index,
                                                "data_items": data.position.items}))  # fmt: skip
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    old = sorted((int(p.name.split("-")[1]), p) for p in path.parent.glob("step-*") if p != path)
    for _, p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)


def _load_checkpoint(path: Path, model: torch.nn.Module, ema: dict[str, torch.Tensor] | None, optimizer: Any,
                     scheduler: Any, data: ClipWindows) -> int:  # fmt: skip
    from safetensors.torch import load_file

    params = _trainable(model)
    with torch.no_grad():
        for n, t in load_file(str(path / "trainable.safetensors")).items():
            params[n].copy_(t)
        if ema is not None and (path / "ema.safetensors").is_file():
            for n, t in load_file(str(path / "ema.safetensors")).items():
                ema[n].copy_(t)
    state = torch.load(path / "training_state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    meta = json.loads((path / "state.json").read_text())
    data.restore(DataPosition(meta["data_epoch"], meta["data_index"], meta.get("data_items")))
    return int(meta["step"])


def _validate(pipe: Any, cfg: TrainConfig, step: int, out: Path) -> dict[str, float]:
    """Generate one held-out window; write an mp4 + contact sheet; return its PSNR."""
    from ..video import contact_sheet, write_mp4, write_png

    root = cfg.validation_data or cfg.data[0]
    val = ClipWindows([root], window=cfg.window, width=cfg.width, height=cfg.height, context_prob=0.0,
                      seed=12345, cache=False)  # fmt: skip
    w = val.next_batch(1)
    frames = pipe(w.static.numpy(), w.prompt.numpy(), num_inference_steps=cfg.num_steps_eval,
                  generator=torch.Generator().manual_seed(0)).frames[0]  # fmt: skip
    gt = w.video[0].numpy()
    mse = float(np.mean((frames.astype(np.float64) - gt) ** 2))
    psnr = 10 * math.log10(255.0**2 / max(mse, 1e-10))
    vdir = out / "validation"
    row = np.concatenate((w.static[0].numpy(), w.prompt[0].numpy(), frames, gt), axis=2)
    write_mp4(vdir / f"step-{step:07d}.mp4", row, fps=8)
    rows = [
        ("static", w.static[0].numpy()),
        ("hand prompt", w.prompt[0].numpy()),
        ("generated", frames),
        ("ground truth", gt),
    ]
    write_png(vdir / f"step-{step:07d}.png", contact_sheet(rows, max_frames=9))
    return {"val_psnr": psnr}


def train(
    cfg: TrainConfig, resume: bool = True, progress: bool = True, stop_after: int | None = None
) -> dict[str, Any]:
    """Train (or resume) ``cfg``; returns a summary. ``stop_after`` ends the run early after that many
    optimizer steps in this call (tests use it to simulate a killed run)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler
    from tqdm.auto import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cuda = torch.cuda.is_available()
    mp = (
        cfg.mixed_precision
        if cfg.mixed_precision != "auto"
        else ("bf16" if cuda and torch.cuda.is_bf16_supported() else "no")
    )
    acc = Accelerator(mixed_precision=mp, gradient_accumulation_steps=cfg.grad_accum, cpu=not cuda)
    set_seed(cfg.seed + acc.process_index)
    out = Path(cfg.out)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "train_config.json", cfg.to_json())
    pipe = build_pipeline(cfg)
    model = pipe.transformer
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    params = list(_trainable(model).values())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.warmup_steps,
                              num_training_steps=cfg.steps)  # fmt: skip
    data = ClipWindows(cfg.data, window=cfg.window, width=cfg.width, height=cfg.height, context_max=cfg.context_max,
                       context_prob=cfg.context_prob, seed=cfg.seed, rank=acc.process_index,
                       world=acc.num_processes, grow=cfg.grow_data)  # fmt: skip
    ema = {n: p.detach().clone().float() for n, p in _trainable(model).items()} if cfg.ema_decay > 0 else None
    step = 0
    ckpt = latest_checkpoint(out) if resume else None
    if ckpt is not None:
        step = _load_checkpoint(ckpt, model, ema, optimizer, scheduler, data)
        acc.print(f"resumed from {ckpt} at step {step}")
    model, optimizer, scheduler = acc.prepare(model, optimizer, scheduler)
    pipe.transformer = acc.unwrap_model(model)
    pipe.to(acc.device)
    gen = torch.Generator()
    log_path = out / "log.jsonl"
    t0, done_here = time.perf_counter(), 0
    bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and acc.is_main_process), desc="train", unit="step")
    losses: list[float] = []
    while step < cfg.steps:
        model.train()
        # noise and timesteps of step n depend only on (seed, n, rank): a resumed run draws the same ones
        gen.manual_seed(int(np.random.SeedSequence([cfg.seed, step, acc.process_index]).generate_state(1)[0]))
        for _ in range(cfg.grad_accum):
            w = data.next_batch(cfg.batch_size)
            with acc.accumulate(model), acc.autocast():
                loss = diffusion_loss(
                    pipe, w.static, w.prompt, w.video, w.context, generator=gen, text=w.text, denoiser=model
                )
                acc.backward(loss)
                if acc.sync_gradients and cfg.max_grad_norm > 0:
                    acc.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        step += 1
        done_here += 1
        if ema is not None:
            d = min(cfg.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for n, p in _trainable(acc.unwrap_model(model)).items():
                    ema[n].mul_(d).add_(p.detach().float(), alpha=1 - d)
        bar.update(1)
        if step % 10 == 0 or step == cfg.steps:
            mean = float(acc.gather(torch.tensor([np.mean(losses)], device=acc.device)).mean())
            losses.clear()
            bar.set_postfix(loss=f"{mean:.4f}")
            if acc.is_main_process:
                with log_path.open("a") as f:
                    f.write(json.dumps({"step": step, "loss": mean, "lr": scheduler.get_last_lr()[0],
                                        "elapsed_s": time.perf_counter() - t0}) + "\n")  # fmt: skip
        if acc.is_main_process and (step % cfg.validate_every == 0 or step == cfg.steps):
            model.eval()
            with _ema_weights(acc.unwrap_model(model), ema):
                v = _validate(pipe, cfg, step, out)
            with log_path.open("a") as f:
                f.write(json.dumps({"step": step, **v}) + "\n")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            acc.wait_for_everyone()
            if acc.is_main_process:
                _save_checkpoint(out / "checkpoints" / f"step-{step:07d}", step, acc.unwrap_model(model), ema,
                                 optimizer, scheduler, data)  # fmt: skip
        if stop_after is not None and done_here >= stop_after:
            break
    bar.close()
    acc.wait_for_everyone()
    final = step >= cfg.steps
    if acc.is_main_process and final:
        export(pipe, acc.unwrap_model(model), ema, cfg, out / "model")
    return {"step": step, "finished": final, "out": str(out), "seconds": time.perf_counter() - t0,
            "processes": acc.num_processes}  # fmt: skip


class _ema_weights:
    """Context manager: swap EMA weights in (and back out)."""

    def __init__(self, model: torch.nn.Module, ema: dict[str, torch.Tensor] | None) -> None:
        self.model, self.ema = model, ema
        self.saved: dict[str, torch.Tensor] | None = None

    def __enter__(self) -> None:
        if self.ema is None:
            return
        params = _trainable(self.model)
        self.saved = {n: p.detach().clone() for n, p in params.items()}
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(self.ema[n].to(p.dtype))

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            return
        with torch.no_grad():
            for n, p in _trainable(self.model).items():
                p.copy_(self.saved[n])


def export(
    pipe: Any, model: torch.nn.Module, ema: dict[str, torch.Tensor] | None, cfg: TrainConfig, path: Path
) -> Path:
    """Save the trained model (EMA weights when kept) as a loadable world-model folder."""
    from ..worldmodel.models import DiffusionWorldModel

    with _ema_weights(model, ema):
        if cfg.preset == "lora-cogvideox-fun":
            from ..worldmodel.cogvideox_fun import save_dwm_lora

            save_dwm_lora(model, path / "lora")
        wm = DiffusionWorldModel(pipe, cfg.width, cfg.height, window=cfg.window, context_frames=cfg.context_max,
                                 num_steps=cfg.num_steps_eval)  # fmt: skip
        if cfg.preset == "compact-from-scratch":
            wm.save_pretrained(path)
    return path


def export_checkpoint(cfg: TrainConfig, checkpoint: str | os.PathLike[str] | None = None,
                      out: str | os.PathLike[str] | None = None) -> Path:  # fmt: skip
    """Export a model folder from a checkpoint (the newest by default) with its EMA weights, e.g. when a
    run had to stop before its last step."""
    from safetensors.torch import load_file

    ckpt = Path(checkpoint) if checkpoint else latest_checkpoint(cfg.out)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint in {cfg.out}/checkpoints")
    pipe = build_pipeline(cfg)
    params = _trainable(pipe.transformer)
    with torch.no_grad():
        for n, t in load_file(str(ckpt / "trainable.safetensors")).items():
            params[n].copy_(t)
    ema = load_file(str(ckpt / "ema.safetensors")) if (ckpt / "ema.safetensors").is_file() else None
    return export(pipe, pipe.transformer, ema, cfg, Path(out) if out else Path(cfg.out) / "model")
