"""Dataset generation with the physics oracle: deterministic, resumable, parallel, shardable.

Clip ``i`` of a split gets its own seed from ``(seed, split, i)``; that seed randomizes the scene
variant (object sizes, colours, masses, positions), the action and the camera motion, so the
same command always makes the same clips and the train and held-out splits never share a seed.
Work is split across machines by rank and world size read from the usual launcher variables
(``RANK``/``WORLD_SIZE`` of torchrun, or ``SLURM_PROCID``/``SLURM_NTASKS``), then across
``workers`` local processes, which die with the process that started them.

A dataset knows its recipe: ``manifest.json`` records scene, seed, split, size, frames, fps and density
scale (:class:`~dexsim.data.dataset.Manifest`). A run with the same recipe adds to the folder (ranks at
once, or later with more ``clips``: the count only grows); a run with another recipe is refused before
anything is made, with a ValueError naming each differing field. A folder with clips but no manifest
(an older dexsim's) is adopted when every finished clip's ``meta/ID.json`` proves this recipe made it
(clip seed, size, frames, fps, density scale, split, scene), and refused otherwise.

A rerun is a repair: each rank deletes the temporaries a killed run left beside its clips, checks every
clip of its share (:func:`~dexsim.data.dataset.check_clip`: files present, the sizes and SHA-256s
recorded at writing hold, meta agrees with the recipe) and remakes the unfinished and damaged ones.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..world import DENSITY_SCALE
from .dataset import (
    SPLITS,
    ClipRecord,
    Manifest,
    check_clip,
    clean_temporaries,
    clip_id,
    clip_recipe_differences,
    clip_seed,
    locked,
    parse_clip_id,
    read_manifest,
    recipe_differences,
    recipe_hash,
    stored_ids,
    write_clip,
    write_manifest,
)

__all__ = ["DatagenConfig", "claim_dataset", "clip_seed", "generate", "generate_clip", "make_clip", "rank_and_world"]

#: actions drawn for each clip (pushes twice as often); drawer actions where the scene has one
DATAGEN_KINDS = ("push", "push", "touch", "poke", "wave", "pick_place")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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
    #: action kinds drawn uniformly per clip (``drawer`` = open or close, whichever the variant allows);
    #: None = the default mix :data:`DATAGEN_KINDS` (+ the drawer action twice where there is a drawer)
    kinds: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        from ..physics.actions import ACTION_KINDS
        from ..physics.spec import BUILTIN_SCENES

        if self.scene not in BUILTIN_SCENES:
            raise ValueError(f"`scene` must be a built-in scene {BUILTIN_SCENES}, got {self.scene!r}")
        if self.split not in SPLITS:
            raise ValueError(f"`split` must be 'train' or 'heldout', got {self.split!r}")
        for name in ("clips", "width", "height", "frames", "workers"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"`seed` must be an int, got {self.seed!r}")
        for name in ("fps", "density_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"`{name}` must be a positive finite number, got {v!r}")
        if self.kinds is not None:
            self.kinds = tuple(self.kinds)
            allowed = (*ACTION_KINDS, "drawer")
            bad = [k for k in self.kinds if k not in allowed]
            if bad or not self.kinds:
                raise ValueError(f"`kinds` must be a non-empty list of {allowed}, got {list(self.kinds)!r}")
            if self.scene != "drawer" and any(k in ("drawer", "open_drawer", "close_drawer") for k in self.kinds):
                raise ValueError(f"scene {self.scene!r} has no drawer for kinds {list(self.kinds)!r}")

    def recipe(self) -> dict[str, Any]:
        """What decides the clips (``out``, ``clips`` and ``workers`` do not)."""
        recipe = {"scene": self.scene, "seed": self.seed, "split": self.split, "width": self.width,
                  "height": self.height, "frames": self.frames, "fps": float(self.fps),
                  "density_scale": float(self.density_scale)}  # fmt: skip
        return recipe | ({"kinds": list(self.kinds)} if self.kinds else {})  # the default mix: no key (older hashes)


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
    drawer_kind = None if spec.drawer is None else (
        "close_drawer" if spec.drawer.initial_open > 0.03 else "open_drawer")  # fmt: skip
    if cfg.kinds is None:
        kinds = list(DATAGEN_KINDS) + ([drawer_kind] * 2 if drawer_kind else [])
    else:  # a drawer kind the variant cannot play (opening an open drawer) becomes the one it can
        kinds = [drawer_kind if k in ("drawer", "open_drawer", "close_drawer") else k for k in cfg.kinds]
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
            "frames": cfg.frames, "prompt_kind": "mesh", "fov_y": 60.0, "density_scale": cfg.density_scale,
            "seed": cfg.seed, "recipe_hash": recipe_hash(cfg.recipe())}  # fmt: skip
    return ClipRecord(clip_id(cfg.split, index), clip.interaction, clip.static, clip.prompt, action.text,
                      buf.getvalue(), clip.object_masks, physics, meta)  # fmt: skip


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dexsim")
    except PackageNotFoundError:  # a source tree without installation
        return "unknown"


def _adoptable(root: Path, recipe: dict[str, Any]) -> int:
    """How many clips a folder without a manifest holds (highest index + 1) when every finished one was
    made by ``recipe``; a ValueError naming the first that was not (unfinished clips are remade)."""
    ids = stored_ids(root)
    foreign = sorted(i for i in ids if (parse_clip_id(i) or ("",))[0] != recipe["split"])
    if foreign:
        raise ValueError(f"{root} has no manifest.json and holds files that are not {recipe['split']} clips of "
                         f"`dexsim datagen` ({foreign[:3]}); give another --out")  # fmt: skip
    top = 0
    for i in sorted(ids):
        index = parse_clip_id(i)[1]  # type: ignore[index]
        top = max(top, index + 1)
        try:
            meta = json.loads((root / "meta" / f"{i}.json").read_text())
        except (OSError, ValueError):  # unfinished or damaged: remade by this recipe
            continue
        if isinstance(meta, dict) and (diffs := clip_recipe_differences(meta, recipe, index)):
            raise ValueError(f"{root} has no manifest.json and its clip {i} was made with another recipe "
                             f"(clip vs this run: {', '.join(diffs)}); give another --out")  # fmt: skip
    return top


def claim_dataset(cfg: DatagenConfig) -> Manifest:
    """Record ``cfg``'s recipe in ``cfg.out/manifest.json`` (the clip count grows to ``cfg.clips``), or
    raise a ValueError naming each differing field when the folder holds another recipe's dataset."""
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    recipe = cfg.recipe()
    with locked(root):
        old = read_manifest(root)
        if old is not None and (diffs := recipe_differences(old.recipe, recipe)):
            raise ValueError(f"{root} holds a dataset made with another recipe (manifest.json vs this run: "
                             f"{', '.join(diffs)}); give another --out, or its manifest.json's recipe")  # fmt: skip
        clips = max(cfg.clips, old.clips if old else _adoptable(root, recipe))
        new = Manifest(recipe, clips, old.dexsim_version if old else _version())
        if new != old:
            write_manifest(root, new)
        for tmp in root.glob(".manifest.*.json"):  # a killed manifest write (no writer runs: we hold the lock)
            tmp.unlink(missing_ok=True)
    return new


def _sound(cfg: DatagenConfig, index: int) -> bool:
    """Clip ``index`` is there, whole and ``cfg``'s (recorded sizes and hashes, meta vs recipe)."""
    expect = Manifest(cfg.recipe(), max(cfg.clips, index + 1))
    return check_clip(cfg.out, clip_id(cfg.split, index), expect, decode=False).ok


def generate_clip(cfg: DatagenConfig, index: int) -> bool:
    """Make clip ``index`` unless it is there and sound. Returns True when it was (re)made now."""
    if _sound(cfg, index):
        return False
    root, cid = Path(cfg.out), clip_id(cfg.split, index)
    (root / "meta" / f"{cid}.json").unlink(missing_ok=True)  # unfinished until it is whole again
    clean_temporaries(root, {cid})
    write_clip(root, make_clip(cfg, index), fps=cfg.fps)
    return True


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


def _die_with_parent(parent: int) -> None:
    """End this process when ``parent`` dies: Linux's parent-death signal, and a thread polling getppid."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="dexsim-watch-parent").start()


def _worker_init(parent: int) -> None:
    _die_with_parent(parent)
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
    """Generate (or repair) this rank's share of ``cfg.clips``; returns figures for the JSON summary.
    Raises a ValueError before making anything when ``cfg.out`` holds another recipe's dataset."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    rank, world = rank_and_world()
    manifest = claim_dataset(cfg)
    mine = list(range(rank, cfg.clips, world))
    removed = clean_temporaries(cfg.out, {clip_id(cfg.split, i) for i in mine})
    todo = [i for i in mine if not _sound(cfg, i)]
    made = 0
    bar = tqdm(total=len(todo), desc=f"datagen rank {rank}/{world}", unit="clip", disable=not progress)
    if cfg.workers == 1 or len(todo) <= 1:
        for i in todo:
            made += generate_clip(cfg, i)
            bar.update(1)
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(cfg.workers, initializer=_worker_init, initargs=(os.getpid(),))
        with pool:
            for done in pool.imap_unordered(_work, [(cfg, i) for i in todo]):
                made += done
                bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    return {"clips": len(mine) - len(todo) + made, "generated": made, "rank": rank, "world_size": world,
            "seconds": seconds, "clips_per_min": 60.0 * made / seconds if seconds > 0 else 0.0,
            "temporaries_removed": removed, "manifest": manifest.to_json(), "config": asdict(cfg)}  # fmt: skip
