"""World models behind the protocol: diffusion pipelines, the physics oracle; ``load`` by name."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .protocol import Generation

__all__ = [
    "COMPACT_CONFIGS",
    "DiffusionWorldModel",
    "OracleWorldModel",
    "compact_pipeline",
    "compact_scheduler",
    "default_model_dir",
    "load",
]

#: named sizes of the compact backbone (``compact`` is the shipped default's)
COMPACT_CONFIGS: dict[str, dict[str, Any]] = {
    "compact": {"block_channels": (48, 96, 160), "mid_blocks": 2, "fold": 4},
    # v2: the same trunk; the output moves the static video's pixels (flow) plus a residual
    "compact-warp": {
        "block_channels": (48, 96, 160),
        "mid_blocks": 2,
        "fold": 4,
        "output_mode": "warp",
        "flow_gain": 4.0,
    },
    # v2 with the flow brought to full resolution by RAFT's convex upsampling (sharp object edges)
    "compact-warp-convex": {
        "block_channels": (48, 96, 160),
        "mid_blocks": 2,
        "fold": 4,
        "output_mode": "warp",
        "flow_gain": 4.0,
        "flow_upsampling": "convex",
    },
    "compact-large": {"block_channels": (64, 128, 192), "mid_blocks": 2, "fold": 4},
    "compact-small": {"block_channels": (32, 64, 128), "mid_blocks": 1, "fold": 4},
    "tiny": {"block_channels": (16, 16, 16), "mid_blocks": 1, "fold": 2, "attention_head_dim": 8},
    "tiny-warp": {
        "block_channels": (16, 16, 16),
        "mid_blocks": 1,
        "fold": 2,
        "attention_head_dim": 8,
        "output_mode": "warp",
    },
}


def compact_scheduler() -> Any:
    """DDIM predicting the clean sample (the residual: a zero model is the identity, as DWM wants of its
    initialisation), zero terminal SNR, trailing spacing: sound with 2-8 steps."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                         prediction_type="sample", rescale_betas_zero_snr=True, timestep_spacing="trailing",
                         clip_sample=False, set_alpha_to_one=True)  # fmt: skip


def compact_pipeline(config: str = "compact", seed: int = 0, **overrides: Any) -> Any:
    """A fresh (random) compact pipeline: :class:`CompactVideoDenoiser` in pixel space, no VAE."""
    from .compact import CompactVideoDenoiser
    from .pipeline import DexWorldPipeline

    if config not in COMPACT_CONFIGS:
        raise ValueError(f"unknown compact config {config!r}; choose one of {sorted(COMPACT_CONFIGS)}")
    torch.manual_seed(seed)
    denoiser = CompactVideoDenoiser(**(COMPACT_CONFIGS[config] | overrides))
    return DexWorldPipeline(transformer=denoiser, scheduler=compact_scheduler())


def _check_frames_config(pipeline: Any, width: Any, height: Any, window: Any, context_frames: Any, fps: Any,
                         num_steps: Any, name: str) -> None:  # fmt: skip
    """Refuse frame settings a model cannot run (``dexsim_world_model.json`` is checked at load, not later)."""

    def is_int(v: Any, least: int) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= least

    for key, v, least in (("width", width, 1), ("height", height, 1), ("window", window, 2),
                          ("context_frames", context_frames, 0), ("num_steps", num_steps, 1)):  # fmt: skip
        if not is_int(v, least):
            raise ValueError(f"world model {name!r}: `{key}` must be an int >= {least}, got {v!r}")
    if context_frames >= window:
        raise ValueError(f"world model {name!r}: `context_frames` ({context_frames}) must be below `window` ({window})")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"world model {name!r}: `fps` must be a finite number > 0, got {fps!r}")
    fold = getattr(getattr(getattr(pipeline, "transformer", None), "config", None), "fold", None)
    if isinstance(fold, int) and (width % (4 * fold) or height % (4 * fold)):
        raise ValueError(f"world model {name!r}: `width` x `height` ({width}x{height}) must be multiples of "
                         f"{4 * fold} for its backbone (fold {fold})")  # fmt: skip


#: how a world model computes: ``fp32``; ``bf16`` (autocast: matrix products and convolutions in bfloat16, weights
#: kept in float32); ``auto`` = bf16 on a CPU with native bfloat16 (AVX-512-BF16 / AMX) for float32 weights, else fp32
PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512-BF16 or AMX): there bf16 autocast pays."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # an older torch without the probes
        return False


#: how many generated frames' motion flows a :class:`DiffusionWorldModel` remembers for continuation calls
FLOW_MEMORY = 512


def _frame_key(frame: np.ndarray) -> bytes:
    """A (H, W, 3) uint8 frame's identity: the digest of its bytes."""
    return hashlib.blake2b(np.ascontiguousarray(frame).tobytes(), digest_size=16).digest()


class DiffusionWorldModel:
    """A :class:`DexWorldPipeline` behind the :class:`WorldModel` protocol.

    With a motion network that reads the last known frame's flow, the model remembers the flow of the last frame
    of each window it generated (the :data:`FLOW_MEMORY` newest, keyed by the frame's bytes): a continuation call
    whose context ends with such a frame starts from where that window left the objects, so the protocol needs no
    state; a context frame it did not generate starts from the scene at rest.

    ``precision`` (see :data:`PRECISIONS`; ``auto`` follows ``$DEXSIM_PRECISION`` when set): on this project's
    AVX-512-BF16 CPUs ``auto`` runs the default model in bf16 autocast, 1.76x faster than float32 for outputs
    within ~66 dB PSNR of it on held-out clips (``dexsim bench worldmodel --precision --quality-data``). On the
    CPU a convolutional backbone's weights are converted to the channels-last layout in place (the
    pipeline passed in is changed; saving still writes contiguous tensors).
    """

    def __init__(self, pipeline: Any, width: int = 128, height: int = 128, window: int = 9, context_frames: int = 1,
                 fps: float = 8.0, num_steps: int = 4, device: str | torch.device | None = "cpu",
                 name: str = "diffusion", guidance_scale: float = 1.0, precision: str = "auto") -> None:  # fmt: skip
        _check_frames_config(pipeline, width, height, window, context_frames, fps, num_steps, name)
        if not (isinstance(guidance_scale, (int, float)) and math.isfinite(guidance_scale) and guidance_scale >= 1.0):
            raise ValueError(f"world model {name!r}: `guidance_scale` must be a number >= 1, got {guidance_scale!r}")
        # device None: leave the modules where they are (diffusers' CPU offload places them per call)
        self.pipeline = pipeline if device is None else pipeline.to(device)
        self.width, self.height, self.window, self.context_frames, self.fps = width, height, window, context_frames, fps
        self.num_steps, self.name, self.guidance_scale = num_steps, name, float(guidance_scale)
        self._flows: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.device = torch.device(device) if device is not None else pipeline._execution_device
        if precision not in PRECISIONS:
            raise ValueError(f"world model {name!r}: `precision` must be one of {PRECISIONS}, got {precision!r}")
        if precision == "auto" and os.environ.get("DEXSIM_PRECISION"):
            precision = os.environ["DEXSIM_PRECISION"]
            if precision not in PRECISIONS:
                raise ValueError(f"DEXSIM_PRECISION must be one of {PRECISIONS}, got {precision!r}")
        if precision == "auto":
            fp32_weights = next(self.pipeline.transformer.parameters()).dtype == torch.float32
            precision = "bf16" if self.device.type == "cpu" and fp32_weights and cpu_has_native_bf16() else "fp32"
        self.precision = precision
        if self.device.type == "cpu" and hasattr(self.pipeline.transformer.config, "fold"):
            for net in (self.pipeline.transformer, getattr(self.pipeline, "motion", None)):
                if net is not None:
                    net.to(memory_format=torch.channels_last)  # convolutions without layout reorders

    def generate(self, static: np.ndarray, prompt: np.ndarray, context: np.ndarray | None = None,
                 text: str | list[str] | None = None,
                 generator: torch.Generator | list[torch.Generator] | None = None, num_steps: int | None = None,
                 hands: list[Any] | None = None) -> Generation:  # fmt: skip
        if num_steps is not None and (not isinstance(num_steps, (int, np.integer)) or isinstance(num_steps, bool)
                                      or num_steps < 1):  # fmt: skip
            raise ValueError(f"`num_steps` must be a positive int or None (the model's {self.num_steps}), got "
                             f"{num_steps!r}")  # fmt: skip
        static, prompt = np.asarray(static), np.asarray(prompt)
        if prompt.ndim == 4:
            prompt = prompt[None]
        if static.ndim == 4:
            static = static[None]
        if prompt.shape[2:4] != (self.height, self.width):
            raise ValueError(f"this world model works at {self.width}x{self.height}, got {prompt.shape[3]}x"
                             f"{prompt.shape[2]} frames (resize first)")  # fmt: skip
        if context is not None:
            context = np.asarray(context)
            context = context[None] if context.ndim == 4 else context  # one episode's (C, H, W, 3), as static/prompt
        carries = bool(getattr(self.pipeline, "takes_context_flow", False))
        context_flow = self._recall_flows(context[:, -1]) if carries and context is not None else None
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.pipeline(static, prompt, context=context, text=text, generator=generator,
                                num_inference_steps=num_steps or self.num_steps, guidance_scale=self.guidance_scale,
                                output_type="uint8", context_flow=context_flow)  # fmt: skip
        if carries and out.flow is not None:
            self._remember_flows(out.frames[:, -1], out.flow[:, -1])
        return Generation(out.frames)

    def _recall_flows(self, frames: np.ndarray) -> np.ndarray | None:
        """(B, H, W, 3) uint8 context frames -> (B, H, W, 2) float32 flows remembered for them (zeros for a frame
        this model did not generate); None when none is remembered."""
        found = [self._flows.get(_frame_key(f)) for f in frames]
        if all(f is None for f in found):
            return None
        zero = np.zeros((*frames.shape[1:3], 2), np.float32)
        return np.stack([zero if f is None else f.astype(np.float32) for f in found])

    def _remember_flows(self, frames: np.ndarray, flows: np.ndarray) -> None:
        """Remember each (H, W, 3) uint8 frame's (H, W, 2) flow (float16), forgetting the oldest beyond
        :data:`FLOW_MEMORY`."""
        for frame, flow in zip(frames, flows, strict=True):
            key = _frame_key(frame)
            self._flows[key] = flow.astype(np.float16)
            self._flows.move_to_end(key)
        while len(self._flows) > FLOW_MEMORY:
            self._flows.popitem(last=False)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu",
                        precision: str = "auto") -> DiffusionWorldModel:  # fmt: skip
        """Load a saved pipeline folder (``save_pretrained`` layout + ``dexsim_world_model.json``)."""
        from .pipeline import DexWorldPipeline

        path = Path(path)
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(f"{path} is not a saved DexWorldPipeline (no model_index.json)")
        verify_checksums(path)
        pipe = DexWorldPipeline.from_pretrained(path, dtype=torch.float32 if str(device) == "cpu" else None)
        meta_path = path / "dexsim_world_model.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        keys = ("width", "height", "window", "context_frames", "fps", "num_steps")
        return cls(pipe, device=device, name=str(path), precision=precision, **{k: meta[k] for k in keys if k in meta})

    def save_pretrained(self, path: str | os.PathLike[str], weights_dtype: torch.dtype | None = None) -> Path:
        """Save the pipeline folder; ``weights_dtype`` (e.g. ``torch.float16``) stores the weights smaller
        (they load back as float32 on the CPU)."""
        import copy

        from .._io import write_json

        path = Path(path)
        pipe = self.pipeline
        if weights_dtype is not None:
            pipe = copy.deepcopy(pipe).to(dtype=weights_dtype)
        pipe.save_pretrained(path, safe_serialization=True)
        _drop_source_paths(path)
        write_json(path / "dexsim_world_model.json", {"width": self.width, "height": self.height,
                   "window": self.window, "context_frames": self.context_frames, "fps": self.fps,
                   "num_steps": self.num_steps})  # fmt: skip
        write_checksums(path)
        return path


class OracleWorldModel:
    """The physics oracle behind the protocol (built-in scenes only): ``hands`` is required.

    Each call re-simulates the episode's whole trajectory (MuJoCo is cheap) and renders the last
    T frames, so a chunked rollout equals a single simulation of the whole episode. The returned
    :class:`Generation` carries each episode's physics record. ``world``: a built
    :class:`~dexsim.world.World` with a physics spec to share (the env passes its own).
    """

    def __init__(self, scene: str = "tabletop", width: int = 128, height: int = 128, window: int = 9,
                 context_frames: int = 1, fps: float = 8.0, fov_y: float = 60.0, density_scale: float | None = None,
                 spec: Any = None, world: Any = None) -> None:  # fmt: skip
        from ..physics.build import scene_world, world_for_spec
        from ..physics.oracle import Oracle

        if world is None:
            world = world_for_spec(spec, density_scale=density_scale, width=width, height=height, fov_y=fov_y) \
                if spec is not None else scene_world(scene, width, height, fov_y, density_scale)  # fmt: skip
        if world.spec is None:
            raise ValueError(f"the oracle world model needs a built-in scene (a physics spec); {world.name!r} has none")
        world = world.at(width, height, fov_y)
        self.spec = world.spec
        self.oracle = Oracle(self.spec, width, height, fov_y=fov_y, fps=fps, world=world)
        self.width, self.height, self.window, self.context_frames, self.fps = width, height, window, context_frames, fps
        self.name = "oracle"

    def generate(self, static: np.ndarray, prompt: np.ndarray, context: np.ndarray | None = None,
                 text: str | list[str] | None = None,
                 generator: torch.Generator | list[torch.Generator] | None = None, num_steps: int | None = None,
                 hands: list[Any] | None = None) -> Generation:  # fmt: skip
        prompt = np.asarray(prompt)
        prompt = prompt[None] if prompt.ndim == 4 else prompt
        b, t = prompt.shape[:2]
        if hands is None or len(hands) != b:
            got = None if hands is None else len(hands)
            raise ValueError(f"the oracle world model needs `hands`: one HandTrajectory per batch item ({b}), "
                             f"covering the episode up to the window's last frame; got {got}")  # fmt: skip
        out = np.empty((b, t, self.height, self.width, 3), np.uint8)
        poses, drawers = [], []
        for i, traj in enumerate(hands):
            if traj.num_frames < t:
                raise ValueError(f"hands[{i}] has {traj.num_frames} frames, fewer than the window's {t}")
            clip = self.oracle.run(traj, start=traj.num_frames - t, masks=False)
            out[i] = clip.interaction
            poses.append(clip.episode.object_poses)
            drawers.append(clip.episode.drawer)
        if context is not None:
            context = np.asarray(context)
            out[:, : context.shape[1]] = context
        return Generation(out, poses, drawers)


def default_model_dir() -> Path:
    """The shipped default model's folder inside the package."""
    return Path(__file__).parent / "weights" / "default"


CHECKSUMS = "SHA256SUMS"


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _drop_source_paths(folder: Path) -> None:
    """Remove diffusers' ``_name_or_path`` (where the weights were loaded from: a path on the machine that
    saved them) from a saved folder's configs."""
    from .._io import write_json

    for p in [folder / "model_index.json", *folder.glob("*/config.json")]:
        if p.is_file():
            cfg = json.loads(p.read_text())
            if cfg.pop("_name_or_path", None) is not None:
                write_json(p, cfg)


def write_checksums(folder: str | os.PathLike[str]) -> Path:
    """Write ``SHA256SUMS`` (``sha256sum`` format) over the weights and configs of a saved model folder
    (every file but the model card)."""
    from .._io import atomic_write

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS and p.suffix != ".md"
                   and not p.name.startswith("."))  # fmt: skip
    text = "".join(f"{_sha256(p)}  {p.relative_to(folder).as_posix()}\n" for p in files)
    return atomic_write(folder / CHECKSUMS, lambda t: t.write_text(text))


def verify_checksums(folder: str | os.PathLike[str]) -> bool:
    """Check a model folder against its ``SHA256SUMS`` (False when it has none); a missing or changed
    file raises ``ValueError`` naming it."""
    folder = Path(folder)
    sums = folder / CHECKSUMS
    if not sums.is_file():
        return False
    for line in sums.read_text().splitlines():
        digest, _, rel = line.partition("  ")
        path = folder / rel
        if not path.is_file():
            raise ValueError(f"world model {str(folder)!r}: {rel} is missing (listed in {CHECKSUMS})")
        if _sha256(path) != digest:
            raise ValueError(f"world model {str(folder)!r}: {rel} does not match its checksum in {CHECKSUMS} "
                             "(damaged or changed; reinstall dexsim or re-export the model)")  # fmt: skip
    return True


def model_folder(name: str | os.PathLike[str]) -> Path:
    """The folder of a saved world model: ``"default"`` (shipped) or a path; a missing one is named."""
    if str(name) == "default":
        d = default_model_dir()
        if not (d / "model_index.json").is_file():
            raise FileNotFoundError(f"the default world model is missing from this install ({d}); "
                                    "reinstall dexsim or pass a path to a trained model")  # fmt: skip
        return d
    path = Path(name)
    if not path.exists():
        from .dwm import DWM_MODELS

        raise FileNotFoundError(f"world model {str(name)!r}: not 'default', 'oracle', a DWM name "
                                f"({', '.join(sorted(DWM_MODELS))}), nor an existing folder")  # fmt: skip
    return path


def frame_size(name: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) a saved world model works at, read from its ``dexsim_world_model.json`` without
    loading its weights."""
    from .dwm import DWM_MODELS

    if str(name) in DWM_MODELS:
        m = DWM_MODELS[str(name)]
        return m.width, m.height
    meta_path = model_folder(name) / "dexsim_world_model.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return int(meta.get("width", 128)), int(meta.get("height", 128))


def load(name: str | os.PathLike[str] = "default", device: str | torch.device = "cpu", **kwargs: Any) -> Any:
    """A world model by name: ``"default"`` (shipped, trained by dexsim), ``"oracle"`` (physics, built-in
    scenes; ``scene=`` picks one), a DWM release (``"dwm-cogvideox-5b"``, ``"dwm-wan2.1-14b"``...; ``base=`` and
    ``lora=`` folders, see :mod:`dexsim.worldmodel.dwm`) or a path to a saved pipeline folder (a ``dexsim train``
    output). ``precision`` (diffusion models): see :class:`DiffusionWorldModel`."""
    precision = kwargs.pop("precision", "auto")
    if str(name) == "oracle":
        return OracleWorldModel(**kwargs)
    from .dwm import DWM_MODELS, dwm_pipeline

    if str(name) in DWM_MODELS:
        pipe, settings = dwm_pipeline(str(name), device=device, **kwargs)
        return DiffusionWorldModel(pipe, **settings, precision=precision)
    if kwargs:
        raise TypeError(f"world model {str(name)!r} takes no options {sorted(kwargs)} (only `device`, `precision`)")
    wm = DiffusionWorldModel.from_pretrained(model_folder(name), device=device, precision=precision)
    if str(name) == "default":
        wm.name = "default"
    return wm
