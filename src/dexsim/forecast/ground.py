"""Goal-grounded proposals: where the goal image says a thing must go, and training actions that took a thing there.

Planning asks the forecaster for whole clips from nothing observed, and a sampler that does not know
*which* object the goal concerns reaches for the wrong one. This module grounds it (PAM's first stage
generates a hand trajectory between an initial and a target pose; here the target comes from the goal):

- :func:`goal_shift` reads the goal image against the start frame: the pixels where the object (its colour
  sampled in the start frame at its known place) appeared, cast onto the horizontal plane through its
  centre, give where it should end; the drawer's front gives how far it should be open.
- :class:`ActionBank` holds training actions that move something (pushes, pick-and-places, drawer pulls)
  with what they moved and how far, frame by frame (from the clips' recorded physics).
- :func:`grounded_trajectories` takes the bank actions whose motion best matches the goal, turns each
  about the vertical so its motion points where the goal's does, moves it onto the object, and plays it
  just far enough (time-warped by its own recorded motion). The forecaster then refines them
  (:meth:`HandForecaster.sample` from a partly noised start, conditioned on the start frame, the goal,
  the text and the retrieved final pose as PAM's target).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["ACTION_KINDS", "ActionBank", "goal_shift", "grounded_trajectories", "task_kind_from_text", "warp_time"]

#: the action kinds a bank keeps (what planning tasks ask for)
ACTION_KINDS = ("push", "pick_place", "open_drawer")


@dataclass
class ActionBank:
    """Training actions: ``kinds`` (N,), ``anchor`` (N, 3) where the moved thing started (an object's centre;
    the drawer's front at its handle), ``moved`` (N, T, 2) its (x, y) displacement from the start per frame,
    ``params`` (N, T, 2, 51) and ``visible`` (N, T, 2) the hands. ``replay_error`` (N, len(REPLAY_GRID)) metres, when
    measured (:func:`replay_errors`): how far the action's displacement strays from its record when it is moved
    onto the same thing in another scene and stopped at each checked fraction of its motion (NaN: not played)."""

    kinds: list[str]
    anchor: np.ndarray
    moved: np.ndarray
    params: np.ndarray
    visible: np.ndarray
    replay_error: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.kinds)

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            "anchor": self.anchor.astype(np.float32),
            "moved": self.moved.astype(np.float16),
            "params": self.params.astype(np.float16),
            "visible": self.visible.astype(np.uint8),
        }
        if self.replay_error is not None:
            tensors["replay_error"] = self.replay_error.astype(np.float32)
        save_file(tensors, str(folder / "action_bank.safetensors"))
        (folder / "action_bank.json").write_text(json.dumps({"kinds": self.kinds}))

    @classmethod
    def load(cls, folder: str | Path) -> ActionBank:
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / "action_bank.safetensors").is_file():
            raise FileNotFoundError(f"no action bank (action_bank.safetensors) in {folder}")
        a = load_file(str(folder / "action_bank.safetensors"))
        kinds = json.loads((folder / "action_bank.json").read_text())["kinds"]
        replay = a["replay_error"].astype(np.float64) if "replay_error" in a else None
        return cls(list(kinds), a["anchor"].astype(np.float64), a["moved"].astype(np.float64),
                   a["params"].astype(np.float32), a["visible"].astype(bool), replay)  # fmt: skip

    def subset(self, index: np.ndarray | list[int]) -> ActionBank:
        """The actions at ``index`` (a new bank)."""
        i = np.asarray(index, dtype=int)
        return ActionBank([self.kinds[j] for j in i], self.anchor[i], self.moved[i], self.params[i], self.visible[i],
                          None if self.replay_error is None else self.replay_error[i])  # fmt: skip

    @classmethod
    def build(cls, roots: list[str | Path], kinds: tuple[str, ...] = ACTION_KINDS, min_motion: float = 0.01,
              frames: int = 16, replay_scenes: int = 1, progress: bool = False) -> ActionBank:  # fmt: skip
        """From ``dexsim datagen`` folders: every clip of ``kinds`` whose object (or drawer) moved at least
        ``min_motion`` metres, its first ``frames`` frames; each replayed in ``replay_scenes`` other variants of
        its scene (:func:`replay_errors`; 0: not measured)."""
        from ..physics.spec import randomized_scene

        out: dict[str, list[Any]] = {"kinds": [], "anchor": [], "moved": [], "params": [], "visible": []}
        sources: list[tuple[Any, str | None]] = []
        for root in map(Path, roots):
            for meta_path in sorted((root / "meta").glob("*.json")):
                meta = json.loads(meta_path.read_text())
                if meta.get("action") not in kinds:
                    continue
                cid = meta_path.stem
                phys = np.load(root / "meta" / f"{cid}.npz")
                act = np.load(root / "actions" / f"{cid}.npz")
                if len(act["params"]) < frames:
                    continue
                spec = randomized_scene(str(meta["scene"]).rsplit("-", 1)[0], int(meta["scene_seed"]))
                if meta["action"] == "open_drawer":
                    if spec.drawer is None:
                        continue
                    anchor = drawer_anchor(spec)
                    opening = phys["drawer"][:frames].astype(np.float64)
                    moved = np.stack([np.zeros(frames), -(opening - opening[0])], -1)
                else:
                    k = spec.object_names.index(meta["target"])
                    pos = phys["object_poses"][:frames, k, :3].astype(np.float64)
                    anchor, moved = pos[0], pos[:, :2] - pos[:1, :2]
                if np.linalg.norm(moved[-1]) < min_motion:
                    continue
                sources.append((spec, meta.get("target") if meta["action"] != "open_drawer" else None))
                out["kinds"].append(meta["action"])
                out["anchor"].append(anchor)
                out["moved"].append(moved)
                out["params"].append(act["params"][:frames])
                out["visible"].append(act["visible"][:frames])
        if not out["kinds"]:
            raise ValueError(f"no clip of {kinds} that moves something in {[str(r) for r in roots]}")
        bank = cls(out["kinds"], np.stack(out["anchor"]), np.stack(out["moved"]), np.stack(out["params"]),
                   np.stack(out["visible"]))  # fmt: skip
        if replay_scenes > 0:
            bank.replay_error = replay_errors(bank, sources, replay_scenes, progress=progress)
        return bank


#: how far (m) a replayed action may stray from its recorded displacement and still be proposed
REPLAY_TOLERANCE = 0.03

#: the stopping points (fractions of the recorded motion) the replay check plays: the grid a warped action's
#: stop is snapped to once its bank has been checked (a pull slowed to an unchecked fraction can miss its handle)
REPLAY_GRID = tuple(round(0.2 + 0.05 * k, 2) for k in range(17))

#: every how many grid points each kind is checked (pushes move their object about 1 cm per 0.1 of their motion;
#: a drawer pull 3 cm)
REPLAY_STRIDE = {"push": 2, "open_drawer": 1}

#: scene seeds of the replay check (below every planning benchmark's, which start at 10,000,019)
REPLAY_SEED = 1_000_003


def _checked_fractions(kind: str) -> list[int]:
    """Indices into :data:`REPLAY_GRID` at which the replay check plays an action of ``kind`` (whole only when
    it is not time-warped)."""
    if kind not in WARPED_KINDS:
        return [len(REPLAY_GRID) - 1]
    return list(range(len(REPLAY_GRID) - 1, -1, -REPLAY_STRIDE.get(kind, 1)))


def replay_errors(bank: ActionBank, sources: list[tuple[Any, str | None]], scenes: int = 1,
                  progress: bool = False) -> np.ndarray:  # fmt: skip
    """(N, len(REPLAY_GRID)) metres, NaN where not played: for each action of ``bank``, recorded in scene spec
    ``sources[i][0]`` on object ``sources[i][1]`` (None: the drawer), the largest distance over ``scenes`` other
    variants of that scene (seeds from :data:`REPLAY_SEED`; the drawer kept at the recording's opening) between
    the displacement physics gives and the recorded one, when the action is moved onto the same thing exactly as
    :func:`grounded_trajectories` proposes it and stopped at each fraction of :data:`REPLAY_GRID` (every
    :data:`REPLAY_STRIDE`-th; pick-and-places played whole only)."""
    from dataclasses import replace

    from tqdm.auto import tqdm

    from ..hands.model import params_to_joints
    from ..physics.sim import Simulator
    from ..physics.spec import randomized_scene

    if len(sources) != len(bank):
        raise ValueError(f"`sources` has {len(sources)} entries for a bank of {len(bank)} actions")
    sims: dict[tuple[str, int, float], tuple[Any, Simulator]] = {}
    errors = np.full((len(bank), len(REPLAY_GRID)), np.nan)
    frames = bank.params.shape[1]
    for i in tqdm(range(len(bank)), desc="replay check", unit="action", disable=not progress):
        spec, target = sources[i]
        family = spec.name.rsplit("-", 1)[0]
        opening = 0.0 if spec.drawer is None else float(spec.drawer.initial_open)
        for j in range(scenes):
            key = (family, j, opening)
            if key not in sims:
                other = randomized_scene(family, REPLAY_SEED + j)
                if other.drawer is not None:
                    other = replace(other, drawer=replace(other.drawer, initial_open=opening))
                sims[key] = (other, Simulator(other))
            other, sim = sims[key]
            if (target is None and other.drawer is None) or (target is not None and target not in other.object_names):
                continue
            anchor = drawer_anchor(other) if target is None else object_anchor(other, target)
            one = bank.subset([i])
            one.replay_error = None
            for g in _checked_fractions(bank.kinds[i]):
                f = REPLAY_GRID[g]
                expected = warp_time(bank.moved[i], f)[-1]
                params, visible = grounded_trajectories(one, bank.kinds[i], anchor, expected, 1,
                                                        np.random.default_rng(0), frames, fraction=f)  # fmt: skip
                res = sim.run(params_to_joints(params[0], visible[0]), visible[0])
                if target is None:
                    moved = np.array([0.0, -(float(res.drawer[-1]) - float(res.drawer[0]))])
                else:
                    k = other.object_names.index(target)
                    moved = res.object_poses[-1, k, :2] - res.object_poses[0, k, :2]
                err = float(np.linalg.norm(moved - expected))
                errors[i, g] = err if np.isnan(errors[i, g]) else max(errors[i, g], err)
    return errors


def _snap_fraction(f: float, usable: np.ndarray) -> float | None:
    """The fraction of :data:`REPLAY_GRID` nearest ``f`` among the ``usable`` (G,) ones (``f`` itself below the
    grid), None when none is usable."""
    grid = np.asarray(REPLAY_GRID)
    if f < grid[0] - 1e-9:
        return f
    if not usable.any():
        return None
    return float(grid[usable][np.argmin(np.abs(grid[usable] - f))])


def drawer_anchor(spec: Any) -> np.ndarray:
    """(3,) the closed drawer's front centre at handle height, plus its initial opening towards -y."""
    d = spec.drawer
    x, y = d.position
    return np.array([x, y - d.size[1] / 2 - d.initial_open, spec.table_height + d.size[2] / 2])


def object_anchor(spec: Any, name: str) -> np.ndarray:
    """(3,) the centre of object ``name`` as it rests on the table."""
    o = next((o for o in spec.objects if o.name == name), None)
    if o is None:
        raise ValueError(f"no object {name!r} in the scene; it has {[o.name for o in spec.objects]}")
    return np.array([o.position[0], o.position[1], spec.table_height + o.height / 2])


def task_kind_from_text(text: str | None) -> str | None:
    """``open_drawer``, ``pick_place`` or ``push`` from the words of a task text (None when it names none)."""
    words = set((text or "").lower().replace("-", " ").split())
    if "drawer" in words:
        return None if words & {"close", "closed", "shut"} else "open_drawer"
    if words & {"pick", "place", "put", "lift"}:
        return "pick_place"
    if words & {"push", "slide", "shove", "move"}:
        return "push"
    return None


def _project(point: np.ndarray, camera: np.ndarray, K: np.ndarray) -> np.ndarray | None:
    """World (3,) -> pixel (u, v) for a camera-to-world ``[t, q]`` pose, None behind the camera."""
    from ..geometry.camera import project_points
    from ..geometry.se3 import pose7_to_viewmat

    view = pose7_to_viewmat(torch.as_tensor(camera, dtype=torch.float64))
    uv, depth = project_points(torch.as_tensor(point, dtype=torch.float64)[None], view,
                               torch.as_tensor(K, dtype=torch.float64))  # fmt: skip
    return None if float(depth[0]) <= 1e-6 else uv[0].numpy()


def goal_shift(start: np.ndarray, goal: np.ndarray, camera: np.ndarray, K: np.ndarray, anchor: np.ndarray,
               drawer: bool = False, threshold: float = 40.0, radius: float = 2.0) -> np.ndarray | None:  # fmt: skip
    """Where the thing at ``anchor`` (3,) should go, read from images: its (x, y) displacement in metres (zeros
    when the goal shows no new pixels of its colour), or None when the anchor is not in view.

    ``start`` / ``goal`` (H, W, 3) uint8 (no hands), ``camera`` (7,) camera-to-world, ``K`` (3, 3). The
    thing's colour is the median of the start frame within ``radius`` pixels of its projection; the pixels
    where the goal changed (by more than ``threshold`` in some channel) and is nearer that colour than the
    start frame was are where it appeared; their rays meet the horizontal plane through the anchor. An
    object goes to their mean; a drawer's front (it slides towards -y) to their median."""
    from ..geometry.camera import pixel_rays
    from ..geometry.se3 import pose7_to_viewmat

    if start.shape != goal.shape:
        raise ValueError(f"`start` {start.shape} and `goal` {goal.shape} must have the same size")
    uv = _project(anchor, camera, K)
    h, w = start.shape[:2]
    if uv is None or not (0 <= uv[0] < w and 0 <= uv[1] < h):
        return None
    s, g = start.astype(np.float64), goal.astype(np.float64)
    ys, xs = np.mgrid[0:h, 0:w]
    near = (xs + 0.5 - uv[0]) ** 2 + (ys + 0.5 - uv[1]) ** 2 <= radius**2
    colour = np.median(s[near], axis=0) if near.any() else s[int(uv[1]), int(uv[0])]
    changed = np.abs(g - s).max(-1) > threshold
    appeared = changed & (np.abs(g - colour).sum(-1) < np.abs(s - colour).sum(-1))
    if appeared.sum() < 2:
        return np.zeros(2)
    view = pose7_to_viewmat(torch.as_tensor(camera, dtype=torch.float64))
    origins, dirs = pixel_rays(view, torch.as_tensor(K, dtype=torch.float64), w, h)
    o, d = origins.numpy()[appeared], dirs.numpy()[appeared]
    ok = np.abs(d[:, 2]) > 1e-6
    t = (anchor[2] - o[ok, 2]) / d[ok, 2]
    pts = (o[ok, :2] + t[:, None] * d[ok, :2])[t > 0]
    if len(pts) < 2:
        return np.zeros(2)
    if drawer:
        return np.array([0.0, min(0.0, float(np.median(pts[:, 1])) - anchor[1])])
    return pts.mean(0) - anchor[:2]


def _rotate_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def warp_time(x: np.ndarray, fraction: float) -> np.ndarray:
    """(T, ...) played at ``fraction`` of its speed over the same T frames (linear interpolation)."""
    s = fraction * np.arange(len(x))
    lo = np.floor(s).astype(int)
    hi = np.minimum(lo + 1, len(x) - 1)
    wgt = (s - lo).reshape(-1, *([1] * (x.ndim - 1)))
    return (1 - wgt) * x[lo] + wgt * x[hi]


def _fraction_for(moved: np.ndarray, distance: float) -> float:
    """The playback fraction at which the recorded displacement (T, 2) first reaches ``distance`` (1 if never)."""
    dist = np.linalg.norm(moved, axis=-1)
    if dist[-1] <= distance:
        return 1.0
    i = int(np.argmax(dist >= distance))
    if i == 0:
        return 1.0 / (len(dist) - 1)
    frac_i = i - 1 + (distance - dist[i - 1]) / max(dist[i] - dist[i - 1], 1e-9)
    return float(np.clip(frac_i / (len(dist) - 1), 1.0 / (len(dist) - 1), 1.0))


#: kinds whose action may stop early and still leave the scene at rest (a pick-and-place stopped mid-carry
#: would leave the object in the hand)
WARPED_KINDS = ("push", "open_drawer")


def _turns(moved_end: np.ndarray, shift: np.ndarray | None, max_turn: float) -> np.ndarray:
    """(N,) angles about the vertical (clipped to ``max_turn``) that point each (N, 2) displacement along ``shift``."""
    if shift is None or np.linalg.norm(shift) <= 1e-3:
        return np.zeros(len(moved_end))
    a = np.arctan2(shift[1], shift[0]) - np.arctan2(moved_end[:, 1], moved_end[:, 0])
    a = (a + np.pi) % (2 * np.pi) - np.pi
    return np.where(np.linalg.norm(moved_end, axis=-1) > 1e-3, np.clip(a, -max_turn, max_turn), 0.0)


def grounded_trajectories(bank: ActionBank, kind: str, anchor: np.ndarray, shift: np.ndarray | None, n: int,
                          rng: np.random.Generator, frames: int = 16, pool: int = 3, max_turn: float = np.pi / 4,
                          spread: float = 0.0, max_replay_error: float = REPLAY_TOLERANCE,
                          fraction: float | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``n`` hand trajectories ``params`` (n, frames, 2, 51), ``visible`` (n, frames, 2) from the bank's
    actions of ``kind``. Each bank action is turned about the vertical through its anchor (by at most
    ``max_turn``) so its motion points along ``shift``, moved onto ``anchor`` and (pushes, drawer pulls)
    time-warped to stop where its recorded motion reaches ``|shift|`` (after the first, that distance scaled
    by a factor drawn from ``[1 - spread, 1 + spread]``: the goal's reading is not exact, the planner's
    ranking picks among them); the ``n`` are drawn among the ``pool * n`` whose end displacement, so
    transformed, lands nearest ``shift`` (any when ``shift`` is None).

    A bank whose actions were replayed (``bank.replay_error``) proposes only what replayed within
    ``max_replay_error`` metres of its record: actions with no such stopping point are left out while others
    remain, and a warped action stops at the checked fraction of :data:`REPLAY_GRID` nearest the one its goal
    asks for. ``fraction``: stop every action at this fraction of its motion instead (the replay check)."""
    from ..geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    idx = np.nonzero(np.array(bank.kinds) == kind)[0]
    if len(idx) == 0:
        raise ValueError(f"the action bank holds no {kind!r} action; it has {sorted(set(bank.kinds))}")
    checked = bank.replay_error is not None and fraction is None
    usable = np.ones((len(idx), len(REPLAY_GRID)), bool)
    if checked:
        usable = bank.replay_error[idx] <= max_replay_error  # NaN (not played) compares False
        if kind not in WARPED_KINDS:
            usable[:, :-1] = False
        if usable.any():
            keep = usable.any(1)
            idx, usable = idx[keep], usable[keep]
        else:
            checked, usable = False, np.ones((len(idx), len(REPLAY_GRID)), bool)
    if not 1 <= frames <= bank.params.shape[1]:
        raise ValueError(f"`frames` must lie in [1, {bank.params.shape[1]}] (the bank's actions), got {frames}")
    warp = kind in WARPED_KINDS
    end = bank.moved[idx, min(frames, bank.moved.shape[1]) - 1]
    turns = _turns(end, shift, max_turn)
    if shift is None:
        order = rng.permutation(len(idx))
    else:
        c, s = np.cos(turns), np.sin(turns)
        landed = np.stack([c * end[:, 0] - s * end[:, 1], s * end[:, 0] + c * end[:, 1]], -1)
        if warp:  # played until it went |shift| far (if it ever does; to the nearest checked stop)
            length = np.linalg.norm(landed, axis=-1, keepdims=True)
            landed = landed * np.minimum(1.0, np.linalg.norm(shift) / np.maximum(length, 1e-9))
            if checked:
                for q, i in enumerate(idx):
                    f = _snap_fraction(_fraction_for(bank.moved[i, :frames], float(np.linalg.norm(shift))), usable[q])
                    reach = np.linalg.norm(warp_time(bank.moved[i, :frames], f or 1.0)[-1])
                    landed[q] *= reach / max(float(np.linalg.norm(landed[q])), 1e-9)
        order = np.argsort(np.linalg.norm(landed - shift[None], axis=-1), kind="stable")
    near = order[: max(n, min(len(order), pool * n))]
    picks = rng.choice(near, size=n, replace=len(near) < n)
    params = np.zeros((n, frames, 2, 51), np.float64)
    visible = np.zeros((n, frames, 2), bool)
    for j, q in enumerate(picks):
        i = idx[q]
        p = bank.params[i, :frames].astype(np.float64)
        vis = bank.visible[i, :frames]
        R = _rotate_z(float(turns[q]))
        p[..., 48:51] = (p[..., 48:51] - bank.anchor[i]) @ R.T + anchor
        go = axis_angle_to_matrix(torch.from_numpy(p[..., :3]))
        p[..., :3] = matrix_to_axis_angle(torch.from_numpy(R) @ go).numpy()
        f = 1.0 if fraction is None else fraction
        if shift is not None and warp and fraction is None:
            scale = 1.0 if j == 0 else float(rng.uniform(1.0 - spread, 1.0 + spread))
            f = _fraction_for(bank.moved[i, :frames], scale * float(np.linalg.norm(shift)))
            if checked:
                f = _snap_fraction(f, usable[q]) or 1.0
        if f < 1.0:
            p = warp_time(p, f)
            vis = warp_time(vis.astype(np.float64), f) > 0.5
        p[~vis] = 0.0
        params[j], visible[j] = p, vis
    return params.astype(np.float32), visible


def refine_shift_by_render(world: Any, spec: Any, camera: np.ndarray, goal: np.ndarray, part: int,
                           shift: np.ndarray, drawer: bool = False, steps: int = 15, radius: float = 0.02,
                           grid: int = 5) -> np.ndarray:  # fmt: skip
    """Analysis by synthesis: the displacement (2,) of movable part ``part`` whose render best matches the goal.

    ``world`` renders the scene (``render_scene(cameras (M, 7), motions (M, K, 4, 4))``, K = the spec's
    movable parts, the drawer last) from ``camera`` (7,) at the goal's (H, W). A drawer is tried at ``steps``
    openings over its travel; an object at a ``grid`` x ``grid`` lattice of translations within ``radius``
    metres of ``shift`` (the image-difference reading). The error is the mean squared pixel difference."""
    n = len(spec.object_names)
    if drawer:
        opening = np.linspace(0.0, spec.drawer.travel, steps)
        offsets = np.stack([np.zeros(steps), spec.drawer.initial_open - opening], -1)  # (M, 2) shift along -y
    else:
        axis = np.linspace(-radius, radius, grid)
        gx, gy = np.meshgrid(axis, axis, indexing="ij")
        offsets = shift[None] + np.stack([gx.ravel(), gy.ravel()], -1)
    rest = getattr(world, "rest_motions", None)  # the other parts where the scene keeps them (an open drawer)
    motions = (torch.eye(4, dtype=torch.float64).repeat(len(offsets), n, 1, 1) if rest is None
               else rest.to(torch.float64).reshape(1, n, 4, 4).repeat(len(offsets), 1, 1, 1).clone())  # fmt: skip
    if drawer:
        motions[:, part, 1, 3] = -torch.from_numpy(opening)
    else:
        motions[:, part, :2, 3] = torch.from_numpy(offsets)
    cams = np.repeat(np.asarray(camera, np.float64)[None], len(offsets), 0)
    frames = world.render_scene(cams, motions).rgb_uint8().numpy().astype(np.float64)
    if frames.shape[1:] != np.shape(goal):
        raise ValueError(f"`goal` {np.shape(goal)} must have the renderer's size {frames.shape[1:]}")
    err = ((frames - np.asarray(goal, np.float64)[None]) ** 2).mean((1, 2, 3))
    return offsets[int(np.argmin(err))]
