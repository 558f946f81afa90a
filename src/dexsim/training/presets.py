"""Named training recipes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["COMPACT_PRESET", "MOTION_PRESET", "PRESETS", "RUN_INDEPENDENT", "TrainConfig", "preset"]

#: the compact world model's denoiser preset, and the preset that trains its motion network (frozen denoiser)
COMPACT_PRESET = "compact-from-scratch"
MOTION_PRESET = "motion-flow"

#: fields that do not change the weights a step makes: a rerun that changes only these continues the run
RUN_INDEPENDENT = frozenset({"out", "steps", "checkpoint_every", "validate_every", "validation_data",
                             "num_steps_eval", "threads"})  # fmt: skip


def _path(name: str, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"`{name}` must be a path, got {value!r}")
    return str(os.fspath(value))


@dataclass
class TrainConfig:
    """Everything one training run needs (JSON-able; saved beside the checkpoints)."""

    preset: str
    data: list[str]
    out: str
    steps: int = 4000
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    lr_scheduler: str = "cosine"
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    window: int = 9
    context_max: int = 1
    context_prob: float = 0.5
    width: int = 128
    height: int = 128
    ema_decay: float = 0.999
    gradient_checkpointing: bool = False
    mixed_precision: str = "auto"  # auto: bf16 on CUDA, none elsewhere
    checkpoint_every: int = 500
    validate_every: int = 500
    validation_data: str | None = None
    num_steps_eval: int = 4
    seed: int = 0
    model: str = "compact"  # compact config name, or (lora preset) a CogVideoX-Fun folder / "tiny"
    lora_rank: int = 64
    lora_alpha: int = 64
    trainable_patterns: list[str] = field(default_factory=list)
    threads: int = 0
    grow_data: bool = False  # the data folders are still being generated: each epoch re-lists them
    init_from: str | None = None  # a saved model folder (or "default"): its tensors of matching name and shape
    loss_pyramid: int = 1  # levels of the 2x-downsampled pyramid the loss also compares (1 = plain MSE)
    flow_loss: float = 0.0  # weight of the flow head's L1 error against the clips' ground-truth flow (warp models)
    change_weight: float = 0.0  # extra loss weight on the pixels where the true video differs from the static one
    # forecaster windows: "mixed" (planning windows, observed windows, bridges' retrieved starts) or "observed" (only
    # observed windows, every one of a bridge forecaster from a retrieved start: a residual corrector's training)
    forecast_windows: str = "mixed"
    # what a pipeline's motion network's moved video becomes: "base" (the known video and the residual's base) or
    # "known" (the known video only; the residual stays one to the static video)
    motion_as: str = "base"
    # motion preset: weight of the motion network's occlusion cross-entropy; > 0 gives it occlusion outputs
    occlusion_loss: float = 0.0
    # ... averaged over the positive and the negative pixels apart (balanced) instead of over all of them
    occlusion_balanced: bool = False
    # compact runs with an occluding motion network: the prior added to its occlusion logits where they are used
    # (saved in the network's config; negative corrects a network trained with a balanced loss; 0 keeps its own)
    occlusion_prior: float = 0.0
    # ... and whether its flow is gated by the footprint at each pixel's source (saved; False keeps its own)
    occlusion_gate: bool = False
    # motion preset: the motion network also reads the last known frame's flow (true flow in training, its own
    # last prediction in a rollout), so that what an earlier window moved stays moved
    context_flow: bool = False

    def __post_init__(self) -> None:
        self.out = _path("out", self.out)  # paths as str: the config is saved as JSON
        self.data = [_path("data", d) for d in self.data]
        if self.validation_data is not None:
            self.validation_data = _path("validation_data", self.validation_data)
        if self.init_from is not None:
            self.init_from = _path("init_from", self.init_from)
        if not isinstance(self.loss_pyramid, int) or not 1 <= self.loss_pyramid <= 6:
            raise ValueError(f"`loss_pyramid` must be an int in [1, 6], got {self.loss_pyramid!r}")
        if (
            isinstance(self.flow_loss, bool)
            or not isinstance(self.flow_loss, (int, float))
            or not 0 <= self.flow_loss <= 10
        ):
            raise ValueError(f"`flow_loss` must be a number in [0, 10], got {self.flow_loss!r}")
        if (
            isinstance(self.change_weight, bool)
            or not isinstance(self.change_weight, (int, float))
            or not 0 <= self.change_weight <= 100
        ):
            raise ValueError(f"`change_weight` must be a number in [0, 100], got {self.change_weight!r}")
        if (
            isinstance(self.occlusion_loss, bool)
            or not isinstance(self.occlusion_loss, (int, float))
            or not 0 <= self.occlusion_loss <= 10
        ):
            raise ValueError(f"`occlusion_loss` must be a number in [0, 10], got {self.occlusion_loss!r}")
        if self.occlusion_loss > 0 and self.preset != MOTION_PRESET:
            raise ValueError(
                f"`occlusion_loss` trains a motion network's occlusion outputs: it needs the "
                f"{MOTION_PRESET!r} preset, got {self.preset!r}"
            )
        if not isinstance(self.occlusion_balanced, bool):
            raise ValueError(f"`occlusion_balanced` must be true or false, got {self.occlusion_balanced!r}")
        if self.occlusion_balanced and self.occlusion_loss == 0:
            raise ValueError("`occlusion_balanced` balances the occlusion loss: it needs `occlusion_loss` > 0")
        if (
            isinstance(self.occlusion_prior, bool)
            or not isinstance(self.occlusion_prior, (int, float))
            or not -20 <= self.occlusion_prior <= 20
        ):
            raise ValueError(f"`occlusion_prior` must be a number in [-20, 20], got {self.occlusion_prior!r}")
        if not isinstance(self.occlusion_gate, bool):
            raise ValueError(f"`occlusion_gate` must be true or false, got {self.occlusion_gate!r}")
        if not isinstance(self.context_flow, bool):
            raise ValueError(f"`context_flow` must be true or false, got {self.context_flow!r}")
        if self.context_flow and self.preset != MOTION_PRESET:
            raise ValueError(f"`context_flow` trains a motion network: it needs the {MOTION_PRESET!r} preset, got "
                             f"{self.preset!r}")  # fmt: skip
        if (self.occlusion_prior != 0 or self.occlusion_gate) and self.preset not in (COMPACT_PRESET, MOTION_PRESET):
            raise ValueError(
                f"`occlusion_prior` and `occlusion_gate` are for a compact model's motion network, not the "
                f"{self.preset!r} preset"
            )
        if self.forecast_windows not in FORECAST_WINDOWS:
            raise ValueError(f"`forecast_windows` must be one of {FORECAST_WINDOWS}, got {self.forecast_windows!r}")
        if self.motion_as not in ("base", "known"):
            raise ValueError(f"`motion_as` must be 'base' or 'known', got {self.motion_as!r}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"`mixed_precision` must be auto, no, bf16 or fp16, got {self.mixed_precision!r}")
        for name in ("steps", "batch_size", "grad_accum", "window", "width", "height", "checkpoint_every",
                     "validate_every"):  # fmt: skip
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if not self.data:
            raise ValueError("`data` needs at least one dataset folder")
        if not 0.0 <= self.context_prob <= 1.0:
            raise ValueError(f"`context_prob` must lie in [0, 1], got {self.context_prob}")
        if self.context_max >= self.window:
            raise ValueError(f"`context_max` ({self.context_max}) must be below `window` ({self.window})")

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_run(cls, out: str | os.PathLike[str]) -> TrainConfig:
        """The config a run saved in ``out/train_config.json`` (what the trainer writes when it starts)."""
        path = Path(out) / "train_config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{out} holds no train_config.json: not a `dexsim train` output folder")
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict):
            raise ValueError(f"{path} must hold a JSON object, got {type(raw).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path} has fields this dexsim does not know: {', '.join(unknown)}")
        if isinstance(raw.get("betas"), list):
            raw["betas"] = tuple(raw["betas"])
        return cls(**{**raw, "out": str(out)})  # the folder may have moved since

    def recipe(self) -> dict[str, Any]:
        """The fields that decide the run's weights (model, data, optimiser, schedule, seed...): all but
        :data:`RUN_INDEPENDENT`. ``data`` holds the folders as given; the trainer replaces them by their
        dataset identities. Fields added later leave the recipe while at their old behaviour
        (:data:`DEFAULT_OMITTED`), so runs started before them keep their identity and resume."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.to_json().items()
                if k not in RUN_INDEPENDENT and (k not in DEFAULT_OMITTED or v != DEFAULT_OMITTED[k])}  # fmt: skip


#: recipe fields added after runs existed, with the value that means "as before": left out of the recipe then
DEFAULT_OMITTED: dict[str, Any] = {"init_from": None, "loss_pyramid": 1, "flow_loss": 0.0, "change_weight": 0.0,
                                   "forecast_windows": "mixed", "motion_as": "base", "occlusion_loss": 0.0,
                                   "occlusion_balanced": False, "occlusion_prior": 0.0,
                                   "occlusion_gate": False, "context_flow": False}  # fmt: skip
#: the forecaster's training windows (:attr:`TrainConfig.forecast_windows`)
FORECAST_WINDOWS = ("mixed", "observed")

#: preset name -> overrides of :class:`TrainConfig`
PRESETS: dict[str, dict[str, Any]] = {
    # the compact CPU default from scratch: residual-to-static pixel-space denoiser, AdamW, EMA
    "compact-from-scratch": {"lr": 4e-4, "betas": (0.9, 0.99), "batch_size": 4, "model": "compact",
                             "lr_scheduler": "cosine", "warmup_steps": 200, "ema_decay": 0.999},
    # the compact pipeline's motion network (the denoiser frozen): L1 of its flow against the clips' true flow
    "motion-flow": {"lr": 1e-3, "betas": (0.9, 0.99), "batch_size": 4, "model": "compact-warp",
                    "lr_scheduler": "cosine", "warmup_steps": 200, "ema_decay": 0.999},
    # DWM's recipe: LoRA rank 64 (alpha 64) on attention + the trained patch-embedding projections,
    # AdamW (0.9, 0.95), lr 1e-4, weight decay 0.01, cosine with restarts, warmup 100, clip 1.0
    "lora-cogvideox-fun": {"lr": 1e-4, "betas": (0.9, 0.95), "weight_decay": 0.01,
                           "lr_scheduler": "cosine_with_restarts", "warmup_steps": 100, "max_grad_norm": 1.0,
                           "lora_rank": 64, "lora_alpha": 64,
                           "trainable_patterns": ["patch_embed.proj"],
                           "gradient_checkpointing": True, "batch_size": 1, "ema_decay": 0.0},
    # the hand forecaster (dexsim.forecast): flow matching on datagen clips' actions, AdamW, EMA
    "forecast-flow-matching": {"lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": 0.01, "batch_size": 64,
                               "model": "default", "lr_scheduler": "cosine", "warmup_steps": 200,
                               "ema_decay": 0.999, "steps": 6000, "checkpoint_every": 1000,
                               "validate_every": 1000},
}  # fmt: skip


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a named preset plus explicit overrides (``None`` values ignored)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return TrainConfig(preset=name, **(PRESETS[name] | given))
