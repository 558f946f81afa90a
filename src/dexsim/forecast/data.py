"""Training and evaluation windows of hand forecasting, cut from ``dexsim datagen`` clips.

A clip gives its ``actions/`` (both hands' MANO-style parameters, visibility, the camera path and
intrinsics), its text, its videos and, from ``meta/``, the physics record. A forecasting window splits a
clip at an observation frame ``s``: the trajectory up to ``s`` is the history, the frames after it
the future; ``s = -1`` is the planning case (nothing observed yet: the first frame of the static video,
hands hidden, the future the whole clip). Goal images show the clip's final scene without hands from the
observing camera, as a planner's goal does; they are rendered once per clip (the scene variant is
rebuilt from the clip's seed) and cached in ``cache_dir`` (they depend only on the dataset's recipe and
the clip id).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._io import atomic_path
from ..data.dataset import clip_ids, read_manifest

__all__ = [
    "OBSERVED_MAX",
    "ClipRecord",
    "ForecastBatch",
    "ForecastClips",
    "build_caches",
    "default_cache_dir",
    "resize_images",
]

#: observation frames a window may split at: -1 (planning) .. OBSERVED_MAX
OBSERVED_MAX = 7
#: frames whose scene is also a planning goal: the clip's motion slowed to stop there (as planners' partial goals)
PARTIAL_FRAMES = (5, 7, 9, 11, 13)


def default_cache_dir() -> Path:
    """``$DEXSIM_CACHE/forecast`` or ``~/.cache/dexsim/forecast``."""
    base = os.environ.get("DEXSIM_CACHE") or Path.home() / ".cache" / "dexsim"
    return Path(base) / "forecast"


def resize_images(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, size, size) float in [0, 1] (area average: exact 2x2 means from 128)."""
    x = torch.as_tensor(np.asarray(images)).float() / 255.0
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")
    return x.reshape(*lead, 3, size, size)


@dataclass
class ClipRecord:
    """What forecasting reads of one clip: ``params`` (T, 2, 51), ``visible`` (T, 2), ``joints`` (T, 2, 21, 3),
    ``camera`` (T, 7),
    ``K`` (3, 3) scaled to ``size``, ``text``, ``static0`` (3, S, S) the static first frame, ``frames``
    (O, 3, S, S) the interaction video's first O frames, ``goals`` (O, 3, S, S) the final scene seen from
    camera 0..O-1, ``partial_goals`` (P, 3, S, S) the scene at :data:`PARTIAL_FRAMES` from camera 0,
    ``table_height`` (m) and ``table_xy`` ((2,), (2,)) the table top's corners, ``clip_id``."""

    clip_id: str
    params: np.ndarray
    visible: np.ndarray
    joints: np.ndarray
    camera: np.ndarray
    K: np.ndarray
    text: str
    static0: np.ndarray
    frames: np.ndarray
    goals: np.ndarray
    partial_goals: np.ndarray
    table_height: float
    table_xy: tuple[np.ndarray, np.ndarray]


@dataclass
class ForecastBatch:
    """A batch of windows (B = batch): ``image`` (B, 3, S, S) the last observed frame, ``goal`` (B, 3, S, S)
    with ``has_goal`` (B,), ``camera`` (B, 7) the observing camera, ``K`` (B, 3, 3) at S x S, ``history``
    (B, Hh, 2, 51) / ``history_visible`` (B, Hh, 2) / ``history_camera`` (B, Hh, 7) right-aligned with
    ``history_mask`` (B, Hh) true where a frame exists, ``future`` (B, F, 2, 51) / ``future_visible`` /
    ``future_camera`` with ``future_mask`` (B, F), ``texts`` (B,) (``None`` = no text), ``target``
    (B, 2, 51) / ``target_visible`` (B, 2) with ``has_target`` (B,); ``start`` (B, F, STATE_DIM) raw states of
    a retrieved future from another clip where ``has_start`` (B,) (a bridge forecaster's training starts), or
    None."""

    image: torch.Tensor
    goal: torch.Tensor
    has_goal: torch.Tensor
    camera: torch.Tensor
    K: torch.Tensor
    history: torch.Tensor
    history_visible: torch.Tensor
    history_camera: torch.Tensor
    history_mask: torch.Tensor
    future: torch.Tensor
    future_visible: torch.Tensor
    future_camera: torch.Tensor
    future_mask: torch.Tensor
    texts: list[str | None]
    target: torch.Tensor
    target_visible: torch.Tensor
    has_target: torch.Tensor
    start: torch.Tensor | None = None
    has_start: torch.Tensor | None = None


def _render_goals(root: Path, cid: str, cameras: np.ndarray, width: int, height: int,
                  frames: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The clip's final scene (objects where physics left them, no hands) seen from ``cameras`` (O, 7):
    (O, H, W, 3) uint8; and the scene at each of ``frames`` seen from camera 0 (P, H, W, 3). The scene
    variant is rebuilt from the clip's recorded scene and seed."""
    from ..physics.build import world_for_spec
    from ..physics.flow import object_motions
    from ..physics.spec import randomized_scene

    meta = json.loads((root / "meta" / f"{cid}.json").read_text())
    phys = np.load(root / "meta" / f"{cid}.npz")
    spec = randomized_scene(str(meta["scene"]).rsplit("-", 1)[0], int(meta["scene_seed"]))
    world = world_for_spec(spec, width=width, height=height, fov_y=float(meta.get("fov_y", 60.0)),
                           density_scale=meta.get("density_scale"))  # fmt: skip
    motions = object_motions(phys["object_poses"], phys["drawer"], len(spec.objects), spec.drawer is not None)
    n = len(motions)
    at = [n - 1] * len(cameras) + [min(f, n - 1) for f in frames]
    cams = np.concatenate([cameras, np.repeat(cameras[:1], len(frames), 0)]).astype(np.float64)
    out = world.render_scene(cams, motions[at].float()).rgb_uint8().numpy()
    return out[: len(cameras)], out[len(cameras) :]


def _cache_key(root: Path) -> str:
    manifest = read_manifest(root)
    if manifest is None:
        raise ValueError(f"{root} has no manifest.json: forecasting reads `dexsim datagen` folders")
    return manifest.recipe_hash


def _text(root: Path, cid: str) -> str:
    from ..data.dataset import TEXT_DIRS

    for d in TEXT_DIRS:
        if (root / d / f"{cid}.txt").is_file():
            return (root / d / f"{cid}.txt").read_text().strip()
    raise FileNotFoundError(f"clip {cid!r}: no prompts/{cid}.txt in {root}")


def _images(root: Path, cid: str, cameras: np.ndarray, observed: int, size: int) -> dict[str, np.ndarray]:
    """The images a clip contributes at ``size``: the static first frame, the first ``observed`` interaction
    frames, the final scene from their cameras (``goals``) and the scene at :data:`PARTIAL_FRAMES` from
    camera 0 (``partial_goals``); uint8, channels first."""
    from ..video import read_mp4

    to_u8 = lambda x: (resize_images(x, size) * 255).round().to(torch.uint8).numpy()  # noqa: E731
    static = read_mp4(root / "videos_static" / f"{cid}.mp4")
    frames = read_mp4(root / "videos" / f"{cid}.mp4")[:observed]
    h, w = static.shape[1:3]
    goals, partial = _render_goals(root, cid, cameras[:observed], w, h, PARTIAL_FRAMES)
    return {"static0": to_u8(static[0]), "frames": to_u8(frames), "goals": to_u8(goals),
            "partial_goals": to_u8(partial), "source_size": np.array([w, h])}  # fmt: skip


def _cache_path(root: Path, cid: str, size: int, cache_dir: Path | None) -> Path:
    return (cache_dir or default_cache_dir()) / _cache_key(root) / f"{cid}-{size}.npz"


def _build_cache(job: tuple[Path, str, int, Path | None]) -> str:
    """Make one clip's cached images (a worker of :func:`build_caches`)."""
    torch.set_num_threads(1)
    load_clip(*job)
    return job[1]


def build_caches(listed: list[tuple[Path, str]], size: int, cache_dir: Path | None = None, workers: int = 1,
                 progress: bool = True) -> int:  # fmt: skip
    """Make the cached images of every clip in ``listed`` that has none yet, ``workers`` processes at a
    time (spawned: torch's thread pools do not survive a fork). Returns how many were made."""
    import multiprocessing

    from tqdm.auto import tqdm

    todo = [(r, c, size, cache_dir) for r, c in listed if not _cache_path(r, c, size, cache_dir).is_file()]
    if workers <= 1 or len(todo) < 2:
        for job in tqdm(todo, desc="forecast goal renders", unit="clip", disable=not progress):
            load_clip(*job)
        return len(todo)
    with multiprocessing.get_context("spawn").Pool(min(workers, len(todo))) as pool:
        for _ in tqdm(pool.imap_unordered(_build_cache, todo), total=len(todo), desc="forecast goal renders",
                      unit="clip", disable=not progress):  # fmt: skip
            pass
    return len(todo)


def load_clip(root: str | os.PathLike[str], cid: str, size: int = 64, cache_dir: Path | None = None) -> ClipRecord:
    """One clip as a :class:`ClipRecord` at ``size`` x ``size``. Its images (resized frames and the goal
    renders) come from the cache, or are made once and cached (written atomically)."""
    from ..hands.trajectory import HandTrajectory
    from ..physics.spec import randomized_scene

    root = Path(root)
    cache = _cache_path(root, cid, size, cache_dir)
    tr = HandTrajectory.load(root / "actions" / f"{cid}.npz")
    if tr.params is None or tr.camera is None or tr.K is None:
        raise ValueError(f"clip {cid!r} in {root} lacks actions/ with params, camera and K")
    observed = min(OBSERVED_MAX + 1, tr.num_frames)
    images: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache) as z:
            images = {k: z[k] for k in z.files}
    if not {"static0", "frames", "goals", "partial_goals", "source_size"} <= images.keys():
        images = _images(root, cid, tr.camera, observed, size)
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **images)
    w, h = (int(v) for v in images["source_size"])
    K = tr.K.astype(np.float64).copy()
    K[0] *= size / w
    K[1] *= size / h
    meta = json.loads((root / "meta" / f"{cid}.json").read_text())
    spec = randomized_scene(str(meta["scene"]).rsplit("-", 1)[0], int(meta["scene_seed"]))
    centre, half = np.array(spec.table_center), np.array(spec.table_size) / 2
    return ClipRecord(cid, tr.params.astype(np.float32), tr.visible.astype(bool), tr.joints.astype(np.float32),
                      tr.camera.astype(np.float32), K.astype(np.float32), _text(root, cid), images["static0"],
                      images["frames"], images["goals"], images["partial_goals"], float(spec.table_height),
                      (centre - half, centre + half))  # fmt: skip


def _listed(roots: list[Path]) -> list[tuple[Path, str]]:
    out = []
    for r in roots:
        if not r.is_dir():
            raise FileNotFoundError(f"forecast data folder {r} does not exist")
        out += [(r, c) for c in clip_ids(r) if (r / "actions" / f"{c}.npz").is_file()]
    if not out:
        raise ValueError(f"no clips with actions/ in {', '.join(map(str, roots))}")
    return out


class ForecastClips:
    """All clips of some ``dexsim datagen`` folders in memory at ``size`` x ``size``, cut into windows.

    ``plan_prob`` of the training windows are planning windows (s = -1); the rest split uniformly in
    [0, OBSERVED_MAX]. Goals, texts and target poses are each dropped with their ``drop`` probability so
    one model serves every combination of conditions. Clips without cached images get them first,
    ``workers`` processes at a time (default: every core)."""

    def __init__(self, roots: list[str | os.PathLike[str]], size: int = 64, history: int = 8, horizon: int = 16,
                 cache_dir: Path | None = None, progress: bool = True, workers: int | None = None) -> None:  # fmt: skip
        from tqdm.auto import tqdm

        self.roots = [Path(r) for r in roots]
        self.size, self.history, self.horizon = size, history, horizon
        listed = _listed(self.roots)
        build_caches(listed, size, cache_dir, workers if workers is not None else (os.cpu_count() or 1), progress)
        self.clips = [load_clip(r, c, size, cache_dir) for r, c in tqdm(listed, desc="forecast clips", unit="clip",
                                                                        disable=not progress)]  # fmt: skip

    def __len__(self) -> int:
        return len(self.clips)

    def window(self, i: int, s: int, goal: bool = True, text: bool = True, target: bool = False) -> ForecastBatch:
        """Window of clip ``i`` observed up to frame ``s`` (-1: nothing observed), as a batch of one."""
        return collate([self._window(self.clips[i], s, goal, text, target)], self.history, self.horizon, self.size)

    def _partial_window(self, c: ClipRecord, j: int, goal: bool, text: bool, target: bool) -> dict:
        """A planning window whose goal is the scene at ``PARTIAL_FRAMES[j]`` and whose future is the clip's
        motion slowed to stop there (the same frames, hand parameters interpolated in time)."""
        T = len(c.params)
        stop = min(PARTIAL_FRAMES[j], T - 1)
        s = np.arange(T) * stop / (T - 1)
        lo = np.floor(s).astype(int)
        hi = np.minimum(lo + 1, T - 1)
        w = (s - lo)[:, None, None]
        params = ((1 - w) * c.params[lo] + w * c.params[hi]).astype(np.float32)
        visible = c.visible[lo] | c.visible[hi]
        params[~visible] = 0.0
        n = min(T, self.horizon)
        return {"image": c.static0, "goal": c.partial_goals[j] if goal else None, "camera": c.camera[0], "K": c.K,
                "history": (np.zeros((1, 2, 51), np.float32), np.zeros((1, 2), bool), c.camera[:1]),
                "future": (params[:n], visible[:n], np.repeat(c.camera[:1], n, 0)),
                "text": c.text if text else None,
                "target": (params[T - 1], visible[T - 1]) if target else None}  # fmt: skip

    def _window(self, c: ClipRecord, s: int, goal: bool, text: bool, target: bool) -> dict:
        T = len(c.params)
        if not -1 <= s < min(T - 1, OBSERVED_MAX + 1):
            raise ValueError(f"observation frame must lie in [-1, {min(T - 2, OBSERVED_MAX)}], got {s}")
        cam_i = max(s, 0)
        if s < 0:
            hist_p = np.zeros((1, 2, 51), np.float32)
            hist_v = np.zeros((1, 2), bool)
            hist_c = c.camera[:1]
            image = c.static0
        else:
            lo = max(0, s + 1 - self.history)
            hist_p, hist_v, hist_c = c.params[lo : s + 1], c.visible[lo : s + 1], c.camera[lo : s + 1]
            image = c.frames[s]
        fut = slice(s + 1, min(T, s + 1 + self.horizon))
        return {"image": image, "goal": c.goals[cam_i] if goal else None, "camera": c.camera[cam_i], "K": c.K,
                "history": (hist_p, hist_v, hist_c), "future": (c.params[fut], c.visible[fut], c.camera[fut]),
                "text": c.text if text else None,
                "target": (c.params[T - 1], c.visible[T - 1]) if target else None}  # fmt: skip

    def retrieved_start(self, i: int, s: int, text: str | None, bank: Any,
                        rng: np.random.Generator, k: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """The future of one of the ``k`` bank windows nearest to clip ``i`` observed up to frame ``s`` >= 0 (the
        bank's clips in this object's order; clip ``i`` itself left out), as ``(params, visible, camera)``
        with the last observed camera held: what a bridge forecaster starts from."""
        c = self.clips[i]
        from .state import forecast_keypoints

        seen = forecast_keypoints(c.joints[: s + 1]).numpy()
        n = min(self.horizon, bank.keypoints.shape[1] - (s + 1))
        params, visible = bank.retrieve_params(seen, c.visible[: s + 1], n, k, text, exclude=i)
        j = int(rng.integers(len(params)))
        return params[j], visible[j], np.repeat(c.camera[s][None], n, 0)

    def sample(self, batch_size: int, rng: np.random.Generator, plan_prob: float = 0.5, drop_goal: float = 0.3,
               drop_text: float = 0.3, target_prob: float = 0.3, partial_prob: float = 0.3,
               bank: Any = None, bridge_prob: float = 0.0) -> ForecastBatch:  # fmt: skip
        """A random training batch: ``plan_prob`` planning windows (``partial_prob`` of them with a partial
        goal), the rest split in [0, OBSERVED_MAX]; ``bridge_prob`` of those observed windows carry a start
        retrieved from ``bank`` (:meth:`retrieved_start`)."""
        items = []
        for _ in range(batch_size):
            i = int(rng.integers(len(self.clips)))
            c = self.clips[i]
            top = min(len(c.params) - 2, OBSERVED_MAX)
            plan = rng.random() < plan_prob
            goal, text, target = rng.random() >= drop_goal, rng.random() >= drop_text, rng.random() < target_prob
            if plan and rng.random() < partial_prob:
                items.append(self._partial_window(c, int(rng.integers(len(PARTIAL_FRAMES))), goal, text, target))
                continue
            s = -1 if plan else int(rng.integers(0, top + 1))
            item = self._window(c, s, goal, text, target)
            if s >= 0 and bank is not None and rng.random() < bridge_prob:
                item["start"] = self.retrieved_start(i, s, item["text"], bank, rng)
            items.append(item)
        return collate(items, self.history, self.horizon, self.size)


def collate(items: list[dict], history: int = 8, horizon: int = 16, size: int = 64) -> ForecastBatch:
    """Windows (dicts of :meth:`ForecastClips._window`) -> a padded :class:`ForecastBatch`."""
    B = len(items)
    hp = torch.zeros(B, history, 2, 51)
    hv = torch.zeros(B, history, 2, dtype=torch.bool)
    hc = torch.zeros(B, history, 7)
    hc[..., 3] = 1.0
    hm = torch.zeros(B, history, dtype=torch.bool)
    fp = torch.zeros(B, horizon, 2, 51)
    fv = torch.zeros(B, horizon, 2, dtype=torch.bool)
    fc = torch.zeros(B, horizon, 7)
    fc[..., 3] = 1.0
    fm = torch.zeros(B, horizon, dtype=torch.bool)
    goal = torch.zeros(B, 3, size, size)
    has_goal = torch.zeros(B, dtype=torch.bool)
    tgt = torch.zeros(B, 2, 51)
    tgt_v = torch.zeros(B, 2, dtype=torch.bool)
    has_tgt = torch.zeros(B, dtype=torch.bool)
    for b, it in enumerate(items):
        p, v, c = (torch.as_tensor(np.asarray(a)) for a in it["history"])
        n = min(len(p), history)
        hp[b, history - n :], hv[b, history - n :], hc[b, history - n :] = p[-n:], v[-n:], c[-n:]
        hm[b, history - n :] = True
        p, v, c = (torch.as_tensor(np.asarray(a)) for a in it["future"])
        n = min(len(p), horizon)
        fp[b, :n], fv[b, :n], fc[b, :n], fm[b, :n] = p[:n], v[:n], c[:n], True
        if it["goal"] is not None:
            goal[b] = torch.as_tensor(it["goal"]).float() / 255.0
            has_goal[b] = True
        if it["target"] is not None:
            tgt[b], tgt_v[b] = torch.as_tensor(it["target"][0]), torch.as_tensor(it["target"][1])
            has_tgt[b] = True
    start = has_start = None
    if any(it.get("start") is not None for it in items):
        from .state import encode_states

        fp_, fv_, fc_ = fp.clone(), fv.clone(), fc.clone()  # items without a start: their own future (unused)
        has_start = torch.zeros(B, dtype=torch.bool)
        for b, it in enumerate(items):
            if it.get("start") is None:
                continue
            p, v, c = (torch.as_tensor(np.asarray(a)) for a in it["start"])
            hold = torch.clamp(torch.arange(horizon), max=len(p) - 1)  # the last retrieved frame held
            fp_[b], fv_[b], fc_[b], has_start[b] = p[hold], v[hold], c[hold], True
        start = encode_states(fp_, fv_, fc_)
    image = torch.stack([torch.as_tensor(it["image"]).float() / 255.0 for it in items])
    camera = torch.stack([torch.as_tensor(np.asarray(it["camera"])).float() for it in items])
    K = torch.stack([torch.as_tensor(np.asarray(it["K"])).float() for it in items])
    return ForecastBatch(image, goal, has_goal, camera, K, hp, hv, hc, hm, fp, fv, fc, fm,
                         [it["text"] for it in items], tgt, tgt_v, has_tgt, start, has_start)  # fmt: skip
