"""Dataset generation with the physics oracle: deterministic, resumable, parallel, shardable.

Clip ``i`` of a split gets its own seed from ``(seed, split, i)``; that seed randomizes the scene
variant (object sizes, colours, masses, positions), the action and the camera motion, so the
same command always makes the same clips and the train and held-out splits never share a seed.
Work is split across machines by rank and world size read from the usual launcher variables
(``RANK``/``WORLD_SIZE`` of torchrun, or ``SLURM_PROCID``/``SLURM_NTASKS``), then across
``workers`` local processes. Finished clips are skipped, so a killed run is simply re-run.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..world import DENSITY_SCALE
from .dataset import ClipRecord, is_complete, write_clip

__all__ = ["DatagenConfig", "clip_seed", "generate", "generate_clip", "make_clip", "rank_and_world"]

#: actions drawn for each clip (pushes twice as often); drawer actions where the scene has one
DATAGEN_KINDS = ("push", "push", "touch", "poke", "wave", "pick_place")
_SPLITS = {"train": 0, "heldout": 1}


@dataclass
class DatagenConfig:
    """Arguments of ``dexsim datagen`` (defaults: the default world model's 128x128, 16 frames, 8 fps)."""

    out: str
    scene: str = "tabletop"
    clips: int = 10
    seed: int = 0
    split: Literal["train", "heldout"] = "train"
    width: int = 128
    height: int = 128
    frames: int = 16
    fps: float = 8.0
    workers: int = 1
    density_scale: float = DENSITY_SCALE

    def __post_init__(self) -> None:
        from ..physics.spec import BUILTIN_SCENES

        if self.scene not in BUILTIN_SCENES:
            raise ValueError(f"`scene` must be a built-in scene {BUILTIN_SCENES}, got {self.scene!r}")
        if self.split not in _SPLITS:
            raise ValueError(f"`split` must be 'train' or 'heldout', got {self.split!r}")
        for name in ("clips", "width", "height", "frames", "workers"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")


def clip_seed(seed: int, split: str, index: int) -> int:
    """The seed of clip ``index`` of ``split`` (independent streams per split and clip)."""
    return int(np.random.SeedSequence([seed, _SPLITS[split], index]).generate_state(1)[0])


def clip_id(split: str, index: int) -> str:
    return f"{split}_{index:06d}"


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) from torchrun (RANK, WORLD_SIZE) or Slurm (SLURM_PROCID, SLURM_NTASKS)."""
    for r, w in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if r in os.environ and w in os.environ:
            rank, world = int(os.environ[r]), int(os.environ[w])
            if not 0 <= rank < world:
                raise ValueError(f"{r}={rank} must lie in [0, {w}={world})")
            return rank, world
    return 0, 1


def make_clip(cfg: DatagenConfig, index: int) -> ClipRecord:
    """Clip ``index`` of ``cfg``'s split, in memory: the scene variant, action and camera motion drawn
    from its seed, simulated and rendered by the physics oracle (whose static and prompt videos are
    :meth:`World.render_conditions`'s, exactly what the env feeds a world model)."""
    from ..physics.actions import make_action
    from ..physics.oracle import Oracle
    from ..physics.spec import randomized_scene

    s = clip_seed(cfg.seed, cfg.split, index)
    rng = np.random.default_rng(s)
    scene_seed = int(rng.integers(2**31))
    spec = randomized_scene(cfg.scene, scene_seed)
    kinds = list(DATAGEN_KINDS)
    if spec.drawer is not None:
        kinds += ["close_drawer" if spec.drawer.initial_open > 0.03 else "open_drawer"] * 2
    kind = str(rng.choice(kinds))
    action = make_action(spec, kind, rng, cfg.frames, cfg.fps)
    oracle = Oracle(spec, cfg.width, cfg.height, fps=cfg.fps, density_scale=cfg.density_scale, seed=scene_seed)
    clip = oracle.run(action.trajectory)
    buf = io.BytesIO()
    traj = action.trajectory
    np.savez(buf, **{k: np.asarray(v) for k, v in {
        "t": traj.t, "joints": traj.joints, "visible": traj.visible, "params": traj.params, "camera": traj.camera,
        "K": oracle.K.float().numpy(), "width": cfg.width, "height": cfg.height}.items()})  # fmt: skip
    physics = {"object_poses": clip.sim.object_poses.astype(np.float32), "contacts": clip.sim.contacts,
               "drawer": clip.sim.drawer.astype(np.float32), "max_penetration": clip.sim.max_penetration}  # fmt: skip
    meta = {"scene": spec.name, "scene_seed": scene_seed, "clip_seed": s, "split": cfg.split, "action": kind,
            "target": action.target, "objects": spec.object_names, "width": cfg.width, "height": cfg.height,
            "frames": cfg.frames, "prompt_kind": "mesh", "fov_y": 60.0, "density_scale": cfg.density_scale}  # fmt: skip
    return ClipRecord(clip_id(cfg.split, index), clip.interaction, clip.static, clip.prompt, action.text,
                      buf.getvalue(), clip.object_masks, physics, meta)  # fmt: skip


def generate_clip(cfg: DatagenConfig, index: int) -> bool:
    """Make clip ``index`` unless it is complete. Returns True when it was generated now."""
    if is_complete(cfg.out, clip_id(cfg.split, index)):
        return False
    write_clip(cfg.out, make_clip(cfg, index), fps=cfg.fps)
    return True


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    try:
        import numba

        numba.set_num_threads(1)
    except ImportError:
        pass


def _work(args: tuple[DatagenConfig, int]) -> bool:
    return generate_clip(*args)


def generate(cfg: DatagenConfig, progress: bool = True) -> dict[str, Any]:
    """Generate this rank's share of ``cfg.clips``; returns figures for the JSON summary."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    rank, world = rank_and_world()
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(rank, cfg.clips, world) if not is_complete(cfg.out, clip_id(cfg.split, i))]
    made = 0
    bar = tqdm(total=len(todo), desc=f"datagen rank {rank}/{world}", unit="clip", disable=not progress)
    if cfg.workers == 1 or len(todo) <= 1:
        for i in todo:
            made += generate_clip(cfg, i)
            bar.update(1)
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(cfg.workers, initializer=_worker_init) as pool:
            for done in pool.imap_unordered(_work, [(cfg, i) for i in todo]):
                made += done
                bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    mine = [i for i in range(rank, cfg.clips, world)]
    complete = sum(is_complete(cfg.out, clip_id(cfg.split, i)) for i in mine)
    return {"clips": complete, "generated": made, "rank": rank, "world_size": world, "seconds": seconds,
            "clips_per_min": 60.0 * made / seconds if seconds > 0 else 0.0, "config": asdict(cfg)}  # fmt: skip
