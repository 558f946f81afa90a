"""Training on Hugging Face Accelerate: one code path from one CPU process to many GPUs.

Checkpoints (``OUT/checkpoints/step-NNNNNNN/``, written into ``step-NNNNNNN.tmp`` and renamed, the
newest ``keep`` kept): the trainable weights and the EMA weights as safetensors, optimizer +
LR-scheduler state (loaded with ``weights_only=True``), the torch RNG state, the data position, and
the run's identity (:func:`run_identity`: a hash of the model, data and optimiser recipe, not of
``steps``, ``checkpoint_every`` or ``validate_every``), so a killed run resumes exactly where it
stopped and rerunning with more steps continues it. Validation writes an mp4 and a contact sheet
(static | hand prompt | generated | ground truth) and the JSON log ``OUT/log.jsonl`` gets one line
per logged step.

Rules of ``OUT``: resuming refuses a checkpoint of another run (or of an older dexsim, which has no
identity), naming both and the differing fields; ``resume=False`` (``--no-resume``) moves the files a
previous run wrote (its checkpoints, log, validation, model, config) into ``OUT/superseded/<UTC time>/``
instead of mixing with them; pruning deletes only this run's ``step-NNNNNNN`` folders (a user's
``step-0000020-best`` is never touched); an interrupted save (``step-NNNNNNN.tmp``) is ignored and
deleted at the next start.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import write_json
from ..data.dataset import recipe_differences
from ._weights import copy_matching_tensors
from .data import ClipWindows, DataPosition, dataset_identity
from .forecast import (
    FORECAST_PRESET,
    ForecastData,
    ForecastPipe,
    build_forecaster,
    export_forecaster,
    init_forecaster,
    validate_forecaster,
)
from .loss import diffusion_loss, motion_loss, moving_pixels
from .presets import COMPACT_PRESET, MOTION_PRESET, TrainConfig

__all__ = ["build_pipeline", "checkpoints", "export_checkpoint", "latest_checkpoint", "run_identity", "train"]

_CHECKPOINT = re.compile(r"step-(\d{7,})")  # exactly what _save_checkpoint names
_INTERRUPTED = re.compile(r"step-\d{7,}\.tmp")
#: what a run writes in OUT besides its checkpoints (moved aside with them by ``resume=False``)
_RUN_FILES = ("log.jsonl", "validation", "model", "train_config.json", "frozen-motion")
#: where a denoiser run keeps the frozen motion network of its ``init_from`` folder (a resume reads it there)
FROZEN_MOTION = "frozen-motion"


def build_pipeline(cfg: TrainConfig, from_checkpoint: bool = False) -> Any:
    """The pipeline a preset trains, with ``requires_grad`` set on exactly what it trains. ``from_checkpoint``:
    a checkpoint will overwrite every tensor of a compact model, so its ``init_from`` folder is not read (it may
    be gone since the run started)."""
    if cfg.preset == FORECAST_PRESET:
        if cfg.flow_loss > 0:
            raise ValueError("`flow_loss` is a world-model option, not the forecaster's")
        model = build_forecaster(cfg.model, cfg.seed)
        if cfg.init_from is not None:
            _print_init(cfg.init_from, init_forecaster(model, cfg.init_from))
        model.requires_grad_(True)
        return ForecastPipe(model)
    if cfg.preset in (COMPACT_PRESET, MOTION_PRESET):
        from ..worldmodel.models import compact_pipeline

        pipe = compact_pipeline(cfg.model, seed=cfg.seed, sample_size=cfg.width, sample_frames=cfg.window)
        motion = cfg.preset == MOTION_PRESET
        if cfg.init_from is not None and (motion or not from_checkpoint):  # a motion run exports the denoiser too
            _print_init(cfg.init_from, init_from_folder(pipe.transformer, cfg.init_from))
        if cfg.flow_loss > 0 and not hasattr(pipe.transformer, "flow_head"):
            raise ValueError(f"`flow_loss` needs a model with a flow head (e.g. compact-warp), not {cfg.model!r}")
        _attach_motion(pipe, cfg, train=motion, from_checkpoint=from_checkpoint)
        pipe.transformer.requires_grad_(not motion)
        return pipe
    if cfg.preset == "lora-cogvideox-fun":
        if cfg.flow_loss > 0:
            raise ValueError("`flow_loss` is for the compact preset's warp models, not a LoRA run")
        if cfg.init_from is not None:
            raise ValueError("`init_from` is for the compact preset; a LoRA run starts from its base model (`model`)")
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


def _attach_motion(pipe: Any, cfg: TrainConfig, train: bool, from_checkpoint: bool) -> None:
    """Give a compact pipeline its motion network: the ``init_from`` folder's (``motion/``), frozen, when it has
    one (kept in ``OUT/frozen-motion``, so that a resumed run does not need the folder any more); for a motion run
    (``train``) a new one otherwise, its trunk started from the folder's denoiser where names and shapes match."""
    from ..worldmodel.compact import CompactVideoDenoiser, motion_network, with_context_flow, with_occlusion
    from ..worldmodel.models import COMPACT_CONFIGS, model_folder

    kept = Path(cfg.out) / FROZEN_MOTION
    gone = from_checkpoint and cfg.init_from not in (None, "default") and not Path(str(cfg.init_from)).exists()
    root = None if cfg.init_from is None or (gone and not train) else model_folder(str(cfg.init_from))
    motion = None
    if not train and from_checkpoint and (kept / "config.json").is_file():
        motion = CompactVideoDenoiser.from_pretrained(kept, torch_dtype=torch.float32)
    elif root is not None and (root / "motion" / "config.json").is_file():
        motion = CompactVideoDenoiser.from_pretrained(root / "motion", torch_dtype=torch.float32)
        print(f"motion network from {root / 'motion'}" + ("" if train else " (frozen)"))
        if not train:  # frozen: kept with this run's options, so that a resume reads them back
            _set_occlusion_options(motion, cfg.occlusion_prior, cfg.occlusion_gate)
            motion.save_pretrained(kept)
    elif train:
        motion = motion_network(COMPACT_CONFIGS[cfg.model], seed=cfg.seed)
        if root is not None:
            _print_init(f"{cfg.init_from} (motion trunk)", init_from_folder(motion, cfg.init_from))
    if motion is not None:
        if train and cfg.occlusion_loss > 0 and motion.config.out_channels == 2:
            motion = with_occlusion(motion)  # its flow as before; the occlusion outputs start filling nothing
            print("motion network: occlusion outputs added (footprint, vacated)")
        if train and cfg.context_flow and motion.config.in_channels == 10:
            motion = with_context_flow(motion)  # predicts as before until it learns to read the new input
            print("motion network: context-flow input added")
        if train:
            _set_occlusion_options(motion, cfg.occlusion_prior, cfg.occlusion_gate)
        motion.requires_grad_(train)
        pipe.register_modules(motion=motion)
        pipe.register_to_config(motion_as=cfg.motion_as)


def _set_occlusion_options(motion: Any, prior: float, gate: bool) -> None:
    """Write a run's ``occlusion_prior`` / ``occlusion_gate`` into its motion network's config (kept with it when
    saved); 0 / False keep the network's own."""
    if prior == 0 and not gate:
        return
    if motion.config.out_channels != 4:
        raise ValueError(f"`occlusion_prior` {prior} / `occlusion_gate` {gate} need a motion network with occlusion "
                         f"outputs, this one has {motion.config.out_channels} channels")  # fmt: skip
    if prior != 0:
        motion.register_to_config(occlusion_prior=float(prior))
    if gate:
        motion.register_to_config(occlusion_gate=True)


def trained_module_name(cfg: TrainConfig) -> str:
    """Which of the pipeline's modules a run trains: ``"motion"`` for the motion preset, else ``"transformer"``."""
    return "motion" if cfg.preset == MOTION_PRESET else "transformer"


def _print_init(source: str, report: dict[str, list[str]]) -> None:
    fresh = report["skipped"]
    print(f"init from {source}: {len(report['copied'])} tensors copied, {len(fresh)} fresh "
          f"({', '.join(fresh[:4]) or 'none'})")  # fmt: skip


def init_from_folder(model: torch.nn.Module, folder: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Copy into ``model`` the tensors of a saved model folder (``"default"`` = the shipped one) whose name
    and shape match; returns ``{"copied", "skipped"}`` (skipped: absent there or another shape). Refuses a
    folder that shares no tensor with the model."""
    from safetensors.torch import load_file

    from ..worldmodel.models import model_folder

    root = model_folder(str(folder))
    files = sorted((root / "transformer").glob("*.safetensors")) if (root / "transformer").is_dir() else []
    if not files:
        raise FileNotFoundError(f"`init_from`: no transformer/*.safetensors in {root}")
    saved: dict[str, torch.Tensor] = {}
    for f in files:
        saved |= load_file(str(f))
    return copy_matching_tensors(model, saved, root)


def _trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def run_identity(cfg: TrainConfig) -> tuple[str, dict[str, Any]]:
    """The run's identity (a short SHA-256) and the recipe it hashes: :meth:`TrainConfig.recipe` with each
    data folder replaced by its :func:`~dexsim.training.data.dataset_identity`."""
    recipe = cfg.recipe() | {"data": [dataset_identity(d) for d in cfg.data]}
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16], recipe


def _state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _listed(folder: Path, run: str | None = None) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = sorted((int(m[1]), p) for p in folder.iterdir()
                   if (m := _CHECKPOINT.fullmatch(p.name)) and (p / "state.json").is_file())  # fmt: skip
    return [(s, p) for s, p in found if run is None or _state(p).get("run") == run]


def checkpoints(out: str | os.PathLike[str], run: str | None = None) -> list[tuple[int, Path]]:
    """(step, folder) of the checkpoints in ``out/checkpoints``, oldest first; only run ``run``'s when
    given. Only the names the trainer writes count: a ``step-0000020-best`` or ``step-N.tmp`` does not."""
    return _listed(Path(out) / "checkpoints", run)


def latest_checkpoint(out: str | os.PathLike[str], run: str | None = None) -> Path | None:
    """The newest checkpoint in ``out`` (of run ``run`` when given)."""
    found = checkpoints(out, run)
    return found[-1][1] if found else None


def _foreign(path: Path, run: str, recipe: dict[str, Any]) -> ValueError:
    """The error for checkpoint ``path`` of another run than ``run``."""
    state = _state(path)
    if state.get("run"):
        diffs = recipe_differences(state.get("recipe") or {}, recipe)
        theirs = f"run {state['run']}, differing in {'; '.join(diffs) or 'nothing recorded'} (that run vs this)"
    else:
        theirs = "no readable run identity: an older dexsim's, or damaged"
    return ValueError(f"{path} belongs to another run ({theirs}); this run is {run}. Give another --out, or "
                      "--no-resume to start over (the other run's files are moved to OUT/superseded/)")  # fmt: skip


def _resume_point(out: Path, run: str, recipe: dict[str, Any]) -> Path | None:
    """The newest checkpoint of ``run`` in ``out``; a ValueError when any checkpoint there is another run's."""
    found = checkpoints(out)
    foreign = [p for _, p in found if _state(p).get("run") != run]
    if foreign:
        raise _foreign(foreign[-1], run, recipe)
    return found[-1][1] if found else None


def _clean_interrupted(out: Path) -> int:
    """Delete the ``step-N.tmp`` folders of saves a kill interrupted. Returns how many."""
    folder = out / "checkpoints"
    stale = [p for p in folder.iterdir() if _INTERRUPTED.fullmatch(p.name)] if folder.is_dir() else []
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return len(stale)


def _supersede(out: Path) -> Path | None:
    """Move what a previous run wrote in ``out`` (its checkpoints, log, validation, model, config) into
    ``out/superseded/<UTC time>/``: nothing is lost and nothing of it is resumed. Returns where, if anything moved."""
    moving = [p for _, p in checkpoints(out)] + [out / n for n in _RUN_FILES if (out / n).exists()]
    if not moving:
        return None
    base = out / "superseded" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest, n = base, 1
    while dest.exists():
        dest, n = base.with_name(f"{base.name}-{n}"), n + 1
    for p in moving:
        target = dest / p.relative_to(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(p, target)
    return dest


def _save_checkpoint(path: Path, step: int, model: torch.nn.Module, ema: dict[str, torch.Tensor] | None,
                     optimizer: Any, scheduler: Any, data: ClipWindows, run: str, recipe: dict[str, Any],
                     keep: int = 2) -> None:  # fmt: skip
    """Write checkpoint ``path`` of run ``run`` (atomically, via ``path.tmp``); prune that run's older ones."""
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
                                                "data_items": data.position.items, "run": run,
                                                "recipe": recipe}))  # fmt: skip
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    old = [(s, p) for s, p in _listed(path.parent, run) if p != path]
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
                      seed=12345, cache=False, flow=pipe.motion is not None)  # fmt: skip
    w = val.next_batch(1)
    scores = {} if pipe.motion is None else {"val_motion_epe": _motion_epe(pipe, w)}
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
    return {"val_psnr": psnr, **scores}


def _motion_epe(pipe: Any, w: Any) -> float:
    """Mean end-point error (pixels) of the motion network's flow on one window's moving pixels (true flow over
    half a pixel; NaN where nothing moves)."""
    from ..worldmodel.pipeline import to_model_video

    dev, dt = pipe.motion.device, pipe.motion.dtype
    s, p = to_model_video(w.static, "static", dev, dt), to_model_video(w.prompt, "prompt", dev, dt)
    with torch.no_grad():
        pred = pipe.motion_outputs(s, p)[:, :, :2].permute(0, 1, 3, 4, 2)
    gt = w.flow.to(dev)
    moving = w.flow_valid.to(dev) & moving_pixels(gt.permute(0, 1, 4, 2, 3).flatten(0, 1)).view(gt.shape[:-1])
    err = (pred - gt).norm(dim=-1)[moving]
    return float(err.mean()) if err.numel() else float("nan")


def train(
    cfg: TrainConfig, resume: bool = True, progress: bool = True, stop_after: int | None = None
) -> dict[str, Any]:
    """Train (or resume) ``cfg``; returns a summary. ``stop_after`` ends the run early after that many
    optimizer steps in this call (tests use it to simulate a killed run). Resuming refuses (ValueError)
    a checkpoint of another run; ``resume=False`` moves a previous run's files to ``OUT/superseded/``."""
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
    run, recipe = run_identity(cfg)
    ckpt = _resume_point(out, run, recipe) if resume else None  # before anything changes in OUT
    superseded, interrupted = None, 0
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        interrupted = _clean_interrupted(out)
        superseded = None if resume else _supersede(out)
        if superseded is not None:
            acc.print(f"moved the previous run's files to {superseded}")
        write_json(out / "train_config.json", cfg.to_json())
    acc.wait_for_everyone()
    pipe = build_pipeline(cfg, from_checkpoint=ckpt is not None)
    trained = trained_module_name(cfg)
    model = getattr(pipe, trained)
    forecaster = cfg.preset == FORECAST_PRESET
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    params = list(_trainable(model).values())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.warmup_steps,
                              num_training_steps=cfg.steps)  # fmt: skip
    data = _training_data(cfg, model, acc.process_index, acc.num_processes, progress and acc.is_main_process,
                          context_flow=not forecaster and trained != "motion" and pipe.takes_context_flow)  # fmt: skip
    ema = {n: p.detach().clone().float() for n, p in _trainable(model).items()} if cfg.ema_decay > 0 else None
    step = 0
    if ckpt is not None:
        step = _load_checkpoint(ckpt, model, ema, optimizer, scheduler, data)
        acc.print(f"resumed from {ckpt} at step {step}")
    model, optimizer, scheduler = acc.prepare(model, optimizer, scheduler)
    setattr(pipe, trained, acc.unwrap_model(model))
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
                loss = (
                    acc.unwrap_model(model).loss(w, generator=gen)
                    if forecaster
                    else motion_loss(
                        pipe,
                        w.static,
                        w.prompt,
                        w.video,
                        w.context,
                        w.flow,
                        w.flow_valid,
                        motion=model,
                        occlusion_weight=cfg.occlusion_loss,
                        occlusion_balanced=cfg.occlusion_balanced,
                    )
                    if trained == "motion"
                    else diffusion_loss(
                        pipe,
                        w.static,
                        w.prompt,
                        w.video,
                        w.context,
                        generator=gen,
                        text=w.text,
                        denoiser=model,
                        pyramid=cfg.loss_pyramid,
                        flow=w.flow,
                        flow_valid=w.flow_valid,
                        flow_weight=cfg.flow_loss,
                        change_weight=cfg.change_weight,
                    )
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
                v = (validate_forecaster(acc.unwrap_model(model), cfg.validation_data or cfg.data[0],
                                         bank=data.bank_for_validation()) if forecaster
                     else _validate(pipe, cfg, step, out))  # fmt: skip
            with log_path.open("a") as f:
                f.write(json.dumps({"step": step, **v}) + "\n")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            acc.wait_for_everyone()
            if acc.is_main_process:
                _save_checkpoint(out / "checkpoints" / f"step-{step:07d}", step, acc.unwrap_model(model), ema,
                                 optimizer, scheduler, data, run, recipe)  # fmt: skip
        if stop_after is not None and done_here >= stop_after:
            break
    bar.close()
    acc.wait_for_everyone()
    final = step >= cfg.steps
    if acc.is_main_process and final:
        export(pipe, acc.unwrap_model(model), ema, cfg, out / "model", data)
    return {"step": step, "finished": final, "out": str(out), "seconds": time.perf_counter() - t0,
            "processes": acc.num_processes, "run": run, "superseded": str(superseded) if superseded else None,
            "interrupted_saves_removed": interrupted}  # fmt: skip


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


def _training_data(cfg: TrainConfig, model: torch.nn.Module, rank: int, world: int, progress: bool,
                   context_flow: bool = False) -> Any:  # fmt: skip
    """The preset's data stream; the forecaster also takes its normalisation statistics from it. ``context_flow``:
    the clips' flow is read for a frozen motion network that reads the context frame's flow."""
    if cfg.preset == FORECAST_PRESET:
        data = ForecastData(cfg.data, model, seed=cfg.seed, rank=rank, progress=progress, windows=cfg.forecast_windows)
        model.set_statistics(data.states())
        if getattr(model.config, "bridge_residual", False):
            model.set_residual_statistics(data.residual_states())
        return data
    return ClipWindows(cfg.data, window=cfg.window, width=cfg.width, height=cfg.height, context_max=cfg.context_max,
                       context_prob=cfg.context_prob, seed=cfg.seed, rank=rank, world=world, grow=cfg.grow_data,
                       flow=cfg.flow_loss > 0 or cfg.preset == MOTION_PRESET or context_flow)  # fmt: skip


def export(
    pipe: Any,
    model: torch.nn.Module,
    ema: dict[str, torch.Tensor] | None,
    cfg: TrainConfig,
    path: Path,
    data: Any = None,
) -> Path:
    """Save the trained model (EMA weights when kept) as a loadable world-model (or forecaster) folder."""
    from ..worldmodel.models import DiffusionWorldModel

    if cfg.preset == FORECAST_PRESET:
        with _ema_weights(model, ema):
            return export_forecaster(model, data or ForecastData(cfg.data, model, cfg.seed, progress=False), path)
    with _ema_weights(model, ema):
        if cfg.preset == "lora-cogvideox-fun":
            from ..worldmodel.cogvideox_fun import save_dwm_lora

            save_dwm_lora(model, path / "lora")
        wm = DiffusionWorldModel(pipe, cfg.width, cfg.height, window=cfg.window, context_frames=cfg.context_max,
                                 num_steps=cfg.num_steps_eval)  # fmt: skip
        if cfg.preset in (COMPACT_PRESET, MOTION_PRESET):
            wm.save_pretrained(path)
    return path


def export_checkpoint(cfg: TrainConfig, checkpoint: str | os.PathLike[str] | None = None,
                      out: str | os.PathLike[str] | None = None) -> Path:  # fmt: skip
    """Export a model folder from a checkpoint (the newest of ``cfg``'s run by default) with its EMA weights,
    e.g. when a run had to stop before its last step. A checkpoint of another run is refused (ValueError)."""
    from safetensors.torch import load_file

    run, recipe = run_identity(cfg)
    ckpt = Path(checkpoint) if checkpoint else _resume_point(Path(cfg.out), run, recipe)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint in {cfg.out}/checkpoints")
    if _state(ckpt).get("run", run) != run:
        raise _foreign(ckpt, run, recipe)
    pipe = build_pipeline(cfg, from_checkpoint=True)
    data = None
    if cfg.preset == FORECAST_PRESET:
        data = _training_data(cfg, pipe.transformer, 0, 1, progress=False)
    module = getattr(pipe, trained_module_name(cfg))
    params = _trainable(module)
    with torch.no_grad():
        for n, t in load_file(str(ckpt / "trainable.safetensors")).items():
            params[n].copy_(t)
    ema = load_file(str(ckpt / "ema.safetensors")) if (ckpt / "ema.safetensors").is_file() else None
    return export(pipe, module, ema, cfg, Path(out) if out else Path(cfg.out) / "model", data)
