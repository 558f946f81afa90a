"""Policy evaluation: a policy's success rate in ``DexWorld-v0`` with a world model, checked against
physics episode by episode.

:func:`evaluate` runs a policy for N episodes of a built-in task (episode ``e`` reset with seed
``seed * 100003 + e``, so evaluations with different seeds share no episode; the episodes of one
world model batched through :class:`DexWorldVectorEnv`, one world-model call per step for the
batch). An episode lasts the task's horizon (16 frames: 2
steps at chunk 8) unless it ends earlier (success). The world model's verdict is the env's
success test: physics for the oracle, the frame-reading :class:`~dexsim.envs.detect.SuccessDetector`
for a learned model. With ``oracle=True`` the physics oracle then replays each episode's recorded
hands and camera (the same seeds, the same actions) in one simulation, which gives the true
outcome, and the detector reads the oracle's own frames too (its agreement with physics is the
detector's validation).

A policy is a built-in ladder name (:data:`dexsim.envs.policies.LADDER`), or any callable
``obs -> action`` named ``module:attribute`` (importable from ``PYTHONPATH``), or the object itself.
A class is instantiated per episode with one :class:`~dexsim.envs.DexWorldEnv` (one env's
``action_space``, ``task``, ``chunk``); a function or instance is called as it is. A policy sees one
env's observation and returns one env's action; when it has ``reset(seed=...)`` that is called at
each episode's start with the episode seed; an ``action_mode`` attribute says which action mode it
plays (else ``delta``). Its actions are checked (shape, finite values) before they are played.

Figures: success rate with a 95% Wilson interval; with the oracle, its rate, the paired agreement
(fraction of episodes where both verdicts match), Cohen's kappa, the detector's agreement with
physics on the oracle's frames, and end-position errors (px at 128 x 128) of the target against
its simulated position in the frame read.

Large evaluations shard like ``dexsim datagen``: rank r of W (RANK/WORLD_SIZE from ``torchrun``
or ``accelerate launch``, or SLURM_PROCID/SLURM_NTASKS) runs episodes r, r + W, ...; each shard's
report is merged by :func:`merge_reports` into the report one process would have written.
"""

from __future__ import annotations

import importlib
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Evaluation",
    "PolicySource",
    "cohen_kappa",
    "episode_seed",
    "evaluate",
    "merge_reports",
    "mmrv",
    "pearson",
    "resolve_policy",
    "shard_path",
    "spearman",
    "summarize",
    "wilson_interval",
]

#: z of a two-sided 95% interval
Z95 = 1.959963984540054
#: episode e of an evaluation seeded s is reset with seed s * EPISODE_STRIDE + e
EPISODE_STRIDE = 100_003
#: frames of the oracle's replay rendered for the detector first (all of them when none is readable)
REPLAY_TAIL = 4
#: the report keys that every shard of one evaluation shares
SHARED_KEYS = ("task", "policy", "world_model", "action_mode", "seed", "episodes_requested", "width", "height",
               "chunk", "horizon", "oracle")  # fmt: skip


# ------------------------------------------------------------------------------------ statistics
def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate ``successes / n`` (95% by default)."""
    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"`successes` must lie in [0, {n}], got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float | None:
    """Cohen's kappa of two binary verdicts over the same items: (p_o - p_e) / (1 - p_e); None when
    undefined (both raters give one same verdict to every item, p_e = 1)."""
    x, y = np.asarray(a, bool), np.asarray(b, bool)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"`a` and `b` must be non-empty and of one length, got {x.shape} and {y.shape}")
    po = float((x == y).mean())
    pe = float(x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean()))
    return None if pe >= 1.0 - 1e-12 else (po - pe) / (1 - pe)


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r; None when either side is constant (or has fewer than 2 values)."""
    a, b = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"`x` and `y` must be 1-D of one length, got {a.shape} and {b.shape}")
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tied = x == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson's r of the (average, for ties) ranks; None when either side is constant."""
    a, b = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"`x` and `y` must be 1-D of one length, got {a.shape} and {b.shape}")
    return pearson(_ranks(a), _ranks(b)) if len(a) >= 2 else None


def mmrv(sim: Sequence[float], real: Sequence[float]) -> float:
    """Mean maximum rank violation, as SIMPLER defines it (``simpler_env/utils/metrics.py``): for each
    policy i, the largest ``|real_i - real_j|`` over the policies j that the two orderings rank
    differently (``(sim_i > sim_j) != (real_i > real_j)``; a tie on one side only counts), averaged
    over i. 0 when every pair is ordered alike; here ``sim`` = world-model rates, ``real`` = physics."""
    s, r = np.asarray(sim, np.float64), np.asarray(real, np.float64)
    if s.shape != r.shape or s.ndim != 1 or len(s) == 0:
        raise ValueError(f"`sim` and `real` must be non-empty and of one length, got {s.shape} and {r.shape}")
    violated = (s[:, None] > s[None]) != (r[:, None] > r[None])
    return float(np.where(violated, np.abs(r[:, None] - r[None]), 0.0).max(1).mean())


def _median(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(statistics.median(kept)) if kept else None


def summarize(episodes: list[dict[str, Any]], oracle: bool) -> dict[str, Any]:
    """The figures of a list of episode entries (see :func:`evaluate`)."""
    n = len(episodes)
    wins = sum(bool(e["success"]) for e in episodes)
    out: dict[str, Any] = {"num_episodes": n, "successes": wins, "success_rate": wins / n if n else None,
                           "ci95": list(wilson_interval(wins, n)) if n else None}  # fmt: skip
    if oracle:
        truth = [bool(e["oracle_success"]) for e in episodes]
        wm = [bool(e["success"]) for e in episodes]
        det = [bool(e["detector_on_oracle_success"]) for e in episodes]
        k = sum(truth)
        out.update({
            "oracle_successes": k, "oracle_success_rate": k / n if n else None,
            "oracle_ci95": list(wilson_interval(k, n)) if n else None,
            "paired_agreement": float(np.mean(np.equal(wm, truth))) if n else None,
            "kappa": cohen_kappa(wm, truth) if n else None,
            "detector_agreement_on_oracle": float(np.mean(np.equal(det, truth))) if n else None,
            "end_position_error_px": _median([e["end_position_error_px"] for e in episodes]),
            "detector_end_position_error_px": _median([e["detector_end_position_error_px"] for e in episodes]),
        })  # fmt: skip
    out["seconds_per_episode"] = _median([e["seconds"] for e in episodes])
    return out


# -------------------------------------------------------------------------------------- policies
@dataclass(frozen=True)
class PolicySource:
    """A resolved policy: its ``name``, ``make(env)`` giving the episode's policy, the ``action_mode`` it declares."""

    name: str
    make: Callable[[Any], Callable[[Any], Any]]
    action_mode: str | None


def resolve_policy(policy: Any) -> PolicySource:
    """A ladder name, ``module:attribute``, or a policy object/class (see the module docstring)."""
    from .policies import ladder_policy

    if isinstance(policy, str):
        name = policy
        if ":" in policy:
            module, _, attr = policy.partition(":")
            try:
                obj = getattr(importlib.import_module(module), attr)
            except ImportError as e:
                raise ValueError(f"policy {policy!r}: cannot import module {module!r} ({e})") from e
            except AttributeError:
                raise ValueError(f"policy {policy!r}: module {module!r} has no attribute {attr!r}") from None
        else:
            obj = ladder_policy(policy)  # names the built-in policies when unknown
    else:
        obj = policy
        name = getattr(policy, "__name__", type(policy).__name__)
    if not callable(obj):
        raise ValueError(f"policy {name!r} is not callable (a policy maps an observation to an action)")
    mode = getattr(obj, "action_mode", None)
    if isinstance(obj, type) or hasattr(obj, "func"):  # a class (or a partial of one): one per episode
        return PolicySource(name, obj, mode)
    return PolicySource(name, lambda env: obj, mode)


def _action_mode(src: PolicySource, requested: str | None) -> str:
    from ..hands.controllers import ACTION_MODES

    if requested is not None and requested not in ACTION_MODES:
        raise ValueError(f"`action_mode` must be one of {ACTION_MODES}, got {requested!r}")
    if src.action_mode is not None and src.action_mode not in ACTION_MODES:
        raise ValueError(f"policy {src.name!r} declares action_mode {src.action_mode!r}, not one of {ACTION_MODES}")
    if requested is not None and src.action_mode is not None and requested != src.action_mode:
        raise ValueError(f"policy {src.name!r} plays {src.action_mode!r} actions, not {requested!r}")
    return src.action_mode or requested or "delta"


def _check_array(value: Any, shape: tuple[int, ...], where: str, allow_nan: bool = False) -> None:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where} returned a non-numeric action: {str(value)[:80]}") from None
    if a.shape != tuple(shape):
        raise ValueError(f"{where} returned an action of shape {a.shape}; the action space needs {tuple(shape)}")
    bad = np.isinf(a) if allow_nan else ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{where} returned a non-finite action: {a[idx]} at index {idx}")


def check_action(action: Any, space: Any, where: str) -> None:
    """Refuse an action that does not fit ``space`` (a Box or a Dict of them): wrong layout or shape,
    non-numeric, NaN or infinite values (``keypoints`` joints may be NaN when ``joint_valid`` is given)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        if not isinstance(action, dict):
            raise ValueError(f"{where} returned a {type(action).__name__}; this action mode takes a dict with keys "
                             f"{sorted(space.spaces)}")  # fmt: skip
        for key, sub in space.spaces.items():
            if key not in action:
                raise ValueError(f"{where} returned an action without {key!r} (keys: {sorted(space.spaces)})")
            nan_ok = key == "joints" and action.get("joint_valid") is not None
            _check_array(action[key], sub.shape, f"{where} (key {key!r})", allow_nan=nan_ok)
    else:
        _check_array(action, space.shape, where)


# ------------------------------------------------------------------------------------ evaluation
@dataclass
class Evaluation:
    """What :func:`evaluate` returns: the ``report`` (what ``--json`` writes) and ``videos``: labelled
    (T, H, W, 3) clips of the first episodes, world model then physics (for a contact sheet)."""

    report: dict[str, Any]
    videos: list[tuple[str, np.ndarray]] = field(default_factory=list)
    #: the same kept episodes as data (a Rerun log's): ``episode``, ``hands`` (HandTrajectory), ``generated``,
    #: ``prompt``, ``physics`` ((T, H, W, 3) uint8; physics None without the oracle), ``success``, ``measure``
    media: list[dict[str, Any]] = field(default_factory=list)
    world: Any = None


@dataclass
class _Episode:
    index: int
    seed: int
    frames: list[np.ndarray] = field(default_factory=list)
    prompts: list[np.ndarray] = field(default_factory=list)
    steps: int = 0
    success: bool = False
    measure: float | None = None
    hands: Any = None
    detection: Any = None
    env_seconds: float = 0.0


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of an evaluation seeded ``seed``: ``seed * 100003 + episode``
    (evaluations with different seeds share no episode below 100003 episodes)."""
    return int(seed) * EPISODE_STRIDE + int(episode)


def shard_path(path: str | os.PathLike[str], rank: int, world_size: int) -> Path:
    """Where shard ``rank`` of ``world_size`` writes ``path`` (``path`` itself for one process)."""
    p = Path(path)
    return p if world_size == 1 else p.with_name(f"{p.stem}.shard{rank}-of-{world_size}{p.suffix}")


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class _Setup:
    """Everything one evaluation builds once: world model, world, detector, oracle, the proxy env."""

    def __init__(self, task: str, world_model: Any, action_mode: str, size: int | None, chunk: int,
                 num_steps: int | None, device: str, oracle: bool) -> None:  # fmt: skip
        from ..physics.build import scene_world
        from ..physics.oracle import Oracle
        from ..worldmodel import load
        from .core import DexWorldEnv
        from .detect import SuccessDetector
        from .tasks import TASKS

        self.task = TASKS[task]
        is_oracle = isinstance(world_model, str) and world_model == "oracle"
        if is_oracle:
            width = height = size or 128
        else:
            if isinstance(world_model, (str, os.PathLike)):
                name = str(world_model)
                world_model = load(world_model, device=device)
                world_model.name = getattr(world_model, "name", None) or name
            width, height = int(world_model.width), int(world_model.height)
            if size is not None and size != width:
                raise ValueError(f"world model {getattr(world_model, 'name', '?')!r} works at {width}x{height}, "
                                 f"not `size`={size}")  # fmt: skip
        self.width, self.height, self.chunk = width, height, chunk
        self.world = scene_world(self.task.scene, width, height)
        if is_oracle:
            world_model = load("oracle", width=width, height=height, window=chunk + 1, world=self.world)
        self.world_model, self.is_oracle = world_model, is_oracle
        self.name = "oracle" if is_oracle else str(getattr(world_model, "name", type(world_model).__name__))
        self.env_kwargs = {"scene": self.world, "task": task, "world_model": world_model, "action_mode": action_mode,
                           "width": width, "height": height, "chunk": chunk, "num_steps": num_steps,
                           "clamp": "silent", "device": device}  # fmt: skip
        self.proxy = DexWorldEnv(**self.env_kwargs)  # what a policy is made with (its spaces, task, chunk)
        self.detector = SuccessDetector(self.task, self.world)
        self.oracle = Oracle(self.world.spec, width, height, world=self.world) if oracle else None
        self.steps = math.ceil(self.task.horizon / chunk)
        self._venvs: dict[int, Any] = {}

    def venv(self, n: int) -> Any:
        from .vector import DexWorldVectorEnv

        if n not in self._venvs:
            self._venvs[n] = DexWorldVectorEnv(num_envs=n, **self.env_kwargs)
        return self._venvs[n]


def _play(setup: _Setup, src: PolicySource, episodes: list[_Episode]) -> None:
    """Play a batch of episodes in one vector env (the episodes are filled in place)."""
    from ..hands.controllers import ActionError

    t0 = time.perf_counter()
    venv = setup.venv(len(episodes))
    obs, _ = venv.reset(seed=[e.seed for e in episodes])
    policies = []
    for e in episodes:
        p = src.make(setup.proxy)
        if hasattr(p, "reset"):
            p.reset(seed=e.seed)
        policies.append(p)
    active = [True] * len(episodes)
    actions: list[Any] = [None] * len(episodes)
    for step in range(setup.steps):
        for i, (e, p) in enumerate(zip(episodes, policies, strict=True)):
            if active[i]:  # finished envs are autoreset at this step: their action is not played
                a = p({k: v[i] for k, v in obs.items()})
                check_action(a, venv.single_action_space, f"policy {src.name!r} (episode {e.index}, step {step})")
                actions[i] = a
        try:
            obs, _, term, trunc, info = venv.step(actions)
        except ActionError as err:
            raise ValueError(f"policy {src.name!r} returned an action the {setup.env_kwargs['action_mode']!r} "
                             f"controller refuses (episodes {[e.index for e in episodes]}, step {step}): "
                             f"{err}") from err  # fmt: skip
        for i, e in enumerate(episodes):
            if not active[i]:
                continue
            e.frames.append(obs["frames"][i])
            e.prompts.append(obs["hand_prompt"][i])
            e.steps += 1
            e.success = bool(info["success"][i])
            has = info.get("_measure")
            e.measure = float(info["measure"][i]) if has is not None and has[i] else None
            if term[i] or trunc[i] or step == setup.steps - 1:
                active[i] = False
                e.hands = venv.core.episode_hands(i)
                e.detection = venv.core.detection(i)
    per = (time.perf_counter() - t0) / len(episodes)
    for e in episodes:
        e.env_seconds = per


def _error_px(setup: _Setup, det: Any, record: Any, cameras: np.ndarray) -> float | None:
    """|where the detector put the target - where physics put it| in the frame read, px at 128 x 128."""
    if det is None or not np.isfinite(det.position_px).all():
        return None
    truth = setup.detector.project(setup.detector.physics_point(record.object_poses, record.drawer, det.frame),
                                   cameras[det.frame])  # fmt: skip
    return float(np.linalg.norm(det.position_px - truth)) * 128.0 / setup.width


def _judge(setup: _Setup, e: _Episode, keep_video: bool) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]],
                                                                   dict[str, Any] | None]:  # fmt: skip
    """The episode's entry: the world model's verdict, and with the oracle physics' and the detector's; the
    kept episode's videos, labelled and as media (None when not kept)."""
    from .detect import hand_masks

    t0 = time.perf_counter()
    hands, task, spec = e.hands, setup.task, setup.world.spec
    frames, prompts = np.concatenate(e.frames), np.concatenate(e.prompts)
    entry: dict[str, Any] = {"episode": e.index, "seed": e.seed, "steps": e.steps, "frames": int(len(frames)),
                             "success": e.success, "measure": _finite(e.measure)}  # fmt: skip
    videos: list[tuple[str, np.ndarray]] = []
    media = None if not keep_video else {"episode": e.index, "hands": hands, "generated": frames, "prompt": prompts,
                                         "physics": None, "success": e.success, "measure": e.measure}  # fmt: skip

    def label(who: str, ok: bool, m: float | None) -> str:
        moved = f" ({100 * m:.1f} cm)" if m is not None and math.isfinite(m) else ""
        return f"ep {e.index} {who}: {'success' if ok else 'failure'}{moved}"

    if keep_video:
        videos.append((label(setup.name, e.success, e.measure), frames))
    if setup.oracle is not None:
        n = hands.num_frames
        if setup.is_oracle:  # the env's frames are the oracle's: replay the physics record only
            record = setup.oracle.run(hands, start=n - 1, masks=False).episode
            det = setup.detector.detect(frames, hands.camera, hand_masks(prompts), joints=hands.joints,
                                        visible=hands.visible)  # fmt: skip
            physics_frames = frames
        else:
            start = 0 if keep_video else max(0, n - REPLAY_TAIL)
            clip = setup.oracle.run(hands, start=start, masks=False)
            det = setup.detector.detect(clip.interaction, hands.camera[start:], hand_masks(clip.prompt), start,
                                        hands.joints[start:], hands.visible[start:])  # fmt: skip
            if det is None and start > 0:
                clip, start = setup.oracle.run(hands, masks=False), 0
                det = setup.detector.detect(clip.interaction, hands.camera, hand_masks(clip.prompt),
                                            joints=hands.joints, visible=hands.visible)  # fmt: skip
            record, physics_frames = clip.episode, clip.interaction
        truth = task.measure(record.object_poses, record.drawer, spec)
        wm_det = det if setup.is_oracle else e.detection
        entry.update({
            "oracle_success": bool(truth >= task.min_move), "oracle_measure": _finite(truth),
            "detector_on_oracle_success": bool(det is not None and det.success),
            "detector_on_oracle_measure": None if det is None else _finite(det.measure),
            "end_position_error_px": _error_px(setup, wm_det, record, hands.camera),
            "detector_end_position_error_px": _error_px(setup, det, record, hands.camera),
        })  # fmt: skip
        if keep_video and not setup.is_oracle:  # (the oracle's own frames are the physics frames)
            videos.append((label("physics", truth >= task.min_move, truth), physics_frames))
        if media is not None:
            media["physics"] = physics_frames
    entry["seconds"] = e.env_seconds + time.perf_counter() - t0
    return entry, videos, media


def evaluate(task: str, policy: Any, episodes: int, seed: int = 0, world_model: Any = "default",
             action_mode: str | None = None, oracle: bool = True, *, batch_size: int = 8, size: int | None = None,
             chunk: int = 8, num_steps: int | None = None, device: str = "cpu",
             shard: tuple[int, int] | None = None, videos: int = 2, progress: bool = True) -> Evaluation:  # fmt: skip
    """Evaluate ``policy`` on ``task`` for ``episodes`` episodes (see the module docstring).

    Args:
        task: a built-in task name (:data:`dexsim.envs.TASKS`).
        policy: a ladder name, ``module:attribute``, or a policy class/callable.
        episodes: how many episodes in all shards together (episode e is reset with seed
            :func:`episode_seed` ``(seed, e)``).
        world_model: ``"default"``, ``"oracle"``, a saved model's path, or a world model object.
        action_mode: the action mode of a policy that declares none (``delta`` when None).
        oracle: replay every episode in the physics oracle (built-in scenes).
        batch_size: episodes run together in one vector env.
        size: frame size (pixels, square) for the oracle world model; a learned model has its own.
        chunk, num_steps, device: the env's (frames per step, denoising steps, torch device).
        shard: (rank, world size); None reads RANK/WORLD_SIZE or SLURM_PROCID/SLURM_NTASKS.
        videos: how many of this shard's first episodes keep their videos (contact sheet).
    Returns:
        An :class:`Evaluation`; its ``report`` holds ``success_rate``, ``ci95``, ``episodes`` (one entry
        per episode: ``success``/``measure`` the world model's verdict, with the oracle
        ``oracle_success``/``oracle_measure``, ``detector_on_oracle_*`` and end-position errors), and
        with the oracle ``oracle_success_rate``, ``paired_agreement``, ``kappa``,
        ``detector_agreement_on_oracle`` (see :func:`summarize`).
    """
    from tqdm.auto import tqdm

    from .._validate import positive_int
    from .tasks import TASKS

    positive_int("episodes", episodes)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    positive_int("batch_size", batch_size), positive_int("chunk", chunk)
    src = resolve_policy(policy)
    mode = _action_mode(src, action_mode)
    if shard is None:
        from ..data.generate import rank_and_world

        shard = rank_and_world()
    rank, world_size = shard
    if not 0 <= rank < world_size:
        raise ValueError(f"`shard` rank {rank} must lie in [0, {world_size})")
    setup = _Setup(task, world_model, mode, size, chunk, num_steps, device, oracle)
    mine = [_Episode(e, episode_seed(seed, e)) for e in range(rank, int(episodes), world_size)]
    entries, clips, media = [], [], []
    bar = tqdm(total=len(mine), desc=f"evaluate {task} {src.name}", unit="episode", disable=not progress)
    for b in range(0, len(mine), batch_size):
        batch = mine[b : b + batch_size]
        _play(setup, src, batch)
        for e in batch:
            entry, vids, kept = _judge(setup, e, keep_video=len(entries) < videos)
            entries.append(entry)
            clips += vids
            media += [kept] if kept is not None else []
            e.frames, e.prompts = [], []
            bar.update(1)
    bar.close()
    report = {"task": task, "policy": src.name, "world_model": setup.name, "action_mode": mode, "seed": int(seed),
              "episodes_requested": int(episodes), "width": setup.width, "height": setup.height, "chunk": chunk,
              "horizon": setup.task.horizon, "oracle": setup.oracle is not None,
              "shard": {"rank": rank, "world_size": world_size}, **summarize(entries, setup.oracle is not None),
              "episodes": entries}  # fmt: skip
    return Evaluation(report, clips, media, setup.world)


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from the shard reports of one evaluation (checked: same task, policy, world model,
    seed, sizes; every episode exactly once)."""
    if not reports:
        raise ValueError("no shard reports to merge")
    first = reports[0]
    for i, r in enumerate(reports):
        missing = [k for k in (*SHARED_KEYS, "episodes") if k not in r]
        if missing:
            raise ValueError(f"shard report {i} is not a `dexsim evaluate` report: it lacks {missing}")
        for k in SHARED_KEYS:
            if r[k] != first[k]:
                raise ValueError(f"shard reports differ in {k!r}: {first[k]!r} and {r[k]!r}")
    seen: dict[int, int] = {}
    episodes = []
    for i, r in enumerate(reports):
        for e in r["episodes"]:
            if e["episode"] in seen:
                raise ValueError(f"episode {e['episode']} appears in shard reports {seen[e['episode']]} and {i}")
            seen[e["episode"]] = i
            episodes.append(e)
    absent = sorted(set(range(first["episodes_requested"])) - set(seen))
    if absent:
        raise ValueError(f"{len(absent)} of {first['episodes_requested']} episodes are missing (first: {absent[:8]}); "
                         "merge the reports of every shard")  # fmt: skip
    episodes.sort(key=lambda e: e["episode"])
    return {**{k: first[k] for k in SHARED_KEYS}, "shard": None, "merged_shards": len(reports),
            **summarize(episodes, first["oracle"]), "episodes": episodes}  # fmt: skip
