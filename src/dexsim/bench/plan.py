"""``dexsim plan`` / ``dexsim bench plan``: rank candidates with a world model, check with the physics oracle."""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

import numpy as np
from tqdm.auto import tqdm

__all__ = ["bench_plan", "kendall_tau", "plan_instance", "plan_tasks"]

#: a candidate whose final target position is within this of the goal's (m) succeeds; oracle ties
SUCCESS_RADIUS = 0.04
TIE_TOLERANCE = 0.01
#: the scorer plans are ranked with unless one is given
DEFAULT_SCORER = "shift"


def kendall_tau(a: np.ndarray, b: np.ndarray, tie_b: float = 0.0) -> float:
    """Kendall's tau-b between two score vectors (higher = better in both); values of ``b`` within
    ``tie_b`` of each other count as tied (a measure's tolerance)."""
    n, conc, disc, ta, tb = len(a), 0, 0, 0, 0
    for i in range(n):
        for j in range(i + 1, n):
            da = np.sign(a[i] - a[j])
            db = 0.0 if abs(b[i] - b[j]) <= tie_b else np.sign(b[i] - b[j])
            if da == 0 and db == 0:
                continue
            if da == 0:
                ta += 1
            elif db == 0:
                tb += 1
            elif da == db:
                conc += 1
            else:
                disc += 1
    denom = np.sqrt((conc + disc + ta) * (conc + disc + tb))
    return float((conc - disc) / denom) if denom > 0 else 0.0


#: what :func:`plan_instance` returns beside the JSON-ready figures (pictures, videos, the world)
MEDIA_KEYS = ("rollout", "goal", "videos", "K", "world", "physics")


def _final_xy(sim: Any, k: int) -> np.ndarray:
    return np.asarray(sim.object_poses[-1, k, :2], np.float64)


def _outcome(sim: Any, spec: Any, target: str | None) -> np.ndarray:
    """What a plan is judged by: the target's final (x, y) on the table, or the drawer's final opening (m)."""
    if target is None:
        return np.array([float(sim.drawer[-1])])
    return _final_xy(sim, spec.object_names.index(target))


def _goal_action(spec: Any, task: Any, cands: list[Any], rng: np.random.Generator, frames: int) -> Any:
    """The instance's goal: another draw of the task's action, like one of the first three candidates (a push
    in the same direction, a pick-and-place to its own random place, a pull played as far)."""
    from ..physics.actions import make_action
    from ..planners.candidates import DRAWER_FRACTIONS, slowed

    if task.kind == "push":
        for _ in range(60):
            a = make_action(spec, task.kind, rng, frames, target=task.target, camera="static")
            if a.text.endswith(cands[int(rng.integers(min(3, len(cands))))].text.split()[-1]):
                return a
        raise RuntimeError("no push goal in the candidates' directions after 60 draws")
    if task.kind == "open_drawer":
        fraction = DRAWER_FRACTIONS[int(rng.integers(len(DRAWER_FRACTIONS)))]
        return slowed(make_action(spec, task.kind, rng, frames, camera="static"), fraction)
    return make_action(spec, task.kind, rng, frames, target=task.target, camera="static")


def plan_instance(world_model: Any, task_name: str, candidates: int, seed: int, frames: int = 16,
                  scorer: Any = None, size: tuple[int, int] = (128, 128),
                  proposals: Any = None) -> dict[str, Any]:  # fmt: skip
    """One held-out task instance: a randomized scene from ``seed``, a goal made by the oracle, N
    candidates ranked by the world model and measured by the oracle (distance of the target's final
    position to the goal's; the drawer: of its final opening). ``world_model="oracle"`` ranks with this
    instance's own physics (at ``size`` = (width, height)); any other value is a world model object.
    ``proposals``: the candidates' source (default: scripted primitives; a
    :class:`~dexsim.planners.ForecastProposals` sees the start frame, the goal image and the task text).
    The goal is the same whichever source proposes. ``planning_s``: proposing + ranking (not the oracle's
    check)."""
    from ..envs.tasks import TASKS
    from ..physics.oracle import Oracle
    from ..physics.spec import randomized_scene
    from ..planners.candidates import task_candidates, with_camera
    from ..planners.proposals import PlanContext, PrimitiveProposals
    from ..planners.rank import RankPlanner, Rollout
    from ..scoring import Goal, make_scorer

    if task_name not in TASKS:
        raise ValueError(f"unknown task {task_name!r}; choose one of {sorted(TASKS)}")
    task = TASKS[task_name]
    rng = np.random.default_rng([seed, 77])
    spec = randomized_scene(task.scene, int(rng.integers(2**31)) + 10_000_019)  # never a training scene seed
    if task.kind == "open_drawer" and spec.drawer is not None:  # a variant may start open: open-drawer starts shut
        spec = replace(spec, drawer=replace(spec.drawer, initial_open=0.0))
    width, height = size if isinstance(world_model, str) else (world_model.width, world_model.height)
    oracle = Oracle(spec, width, height, seed=seed)
    source = proposals if proposals is not None else PrimitiveProposals()
    t0 = time.perf_counter()
    cands = task_candidates(spec, task.kind, task.target, candidates, rng, frames)
    propose_s = time.perf_counter() - t0
    camera = cands[0].trajectory.camera
    ref = with_camera(_goal_action(spec, task, cands, rng, frames), camera)
    goal_clip = oracle.run(ref.trajectory, masks=False)
    goal_at = _outcome(goal_clip.sim, spec, task.target)
    goal = Goal(image=goal_clip.scene[-1], text=task.text, start=goal_clip.static[0])
    if source.name != "primitives":  # the same goal, other candidates
        context = PlanContext(goal_clip.static[0], camera, oracle.K.numpy(), goal.image, task.text, frames, spec,
                              task.kind, task.target, oracle.world)  # fmt: skip
        t0 = time.perf_counter()
        cands = source.propose(context, candidates, rng)
        propose_s = time.perf_counter() - t0
    clips = [oracle.run(c.trajectory, masks=False) for c in cands]
    dist = np.array([np.linalg.norm(_outcome(c.sim, spec, task.target) - goal_at) for c in clips])
    rollout = Rollout(static=clips[0].static, prompts=np.stack([c.prompt for c in clips]),
                      hands=[c.trajectory for c in cands], texts=[c.text for c in cands])  # fmt: skip
    if isinstance(world_model, str):
        if world_model != "oracle":
            raise ValueError(f"`world_model` must be a world model or 'oracle', got {world_model!r}")
        from ..worldmodel.models import OracleWorldModel

        world_model = OracleWorldModel(width=width, height=height, world=oracle.world)
    planner = RankPlanner(world_model, scorer or make_scorer(DEFAULT_SCORER), batch_size=candidates, seed=seed)
    result = planner.plan(rollout, goal)
    best_oracle = dist.min()
    good = dist <= best_oracle + TIE_TOLERANCE
    chosen = result.best
    return {
        "seed": seed, "task": task_name, "scene_seed": spec.name, "candidate_texts": [c.text for c in cands],
        "model_scores": result.scores.tolist(), "oracle_distance_m": dist.tolist(), "chosen": chosen,
        "top1": bool(good[chosen]), "random_top1": float(good.mean()),
        "kendall_tau": kendall_tau(result.scores, -dist, TIE_TOLERANCE),
        "success": bool(dist[chosen] <= SUCCESS_RADIUS),
        "candidate_success_rate": float((dist <= SUCCESS_RADIUS).mean()),
        "seconds_per_candidate": result.seconds / candidates, "proposals": source.name, "propose_s": propose_s,
        "planning_s": propose_s + result.seconds, "K": oracle.K.numpy(), "rollout": rollout, "goal": goal,
        "videos": result.videos, "world": oracle.world, "physics": np.stack([c.interaction for c in clips]),
    }  # fmt: skip


def _batched_cost_ratio(world_model: Any, rollout: Any, goal: Any, scorer: Any, repeats: int = 3) -> float:
    """Time of N candidates in one batch / (N x time of one candidate at batch size 1)."""
    from ..planners.rank import RankPlanner, Rollout

    n = rollout.prompts.shape[0]
    one = Rollout(rollout.static, rollout.prompts[:1], None if rollout.hands is None else rollout.hands[:1])
    t_batch, t_one = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        RankPlanner(world_model, scorer, batch_size=n).plan(rollout, goal)
        t_batch.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        RankPlanner(world_model, scorer, batch_size=1).plan(one, goal)
        t_one.append(time.perf_counter() - t0)
    return statistics.median(t_batch) / (n * statistics.median(t_one))


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    return {"instances": len(rows), "top1_agreement": mean("top1"), "random_top1": mean("random_top1"),
            "kendall_tau": mean("kendall_tau"), "success_rate": mean("success"),
            "candidate_success_rate": mean("candidate_success_rate"),
            "seconds_per_candidate": float(np.median([r["seconds_per_candidate"] for r in rows])),
            "planning_s": float(np.median([r["planning_s"] for r in rows]))}  # fmt: skip


def plan_tasks(task: str) -> list[str]:
    """``all``, one task name or a comma-separated list -> task names (each checked)."""
    from ..envs.tasks import TASKS

    names = list(TASKS) if task == "all" else [t.strip() for t in task.split(",") if t.strip()]
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        raise ValueError(f"unknown task {', '.join(unknown) or repr(task)}; choose all or of {sorted(TASKS)}")
    return names


def bench_plan(world_model: Any, task: str = "push-red-box", tasks: int = 20, candidates: int = 8, seed: int = 0,
               cost_instances: int = 2, progress: bool = True, scorer: Any = None,
               proposals: Any = None) -> dict[str, Any]:  # fmt: skip
    """The planning benchmark over ``tasks`` held-out instances per task (``task``: a name, a comma list or
    ``all``; see the module docstring); pooled figures plus ``per_task``. ``scorer``: a
    :class:`~dexsim.scoring.Scorer` (default :data:`DEFAULT_SCORER`); ``proposals``: the candidates' source
    (default: scripted primitives), named by the JSON key ``proposals``."""
    from ..planners.proposals import PrimitiveProposals
    from ..scoring import make_scorer

    proposals = proposals if proposals is not None else PrimitiveProposals()
    names = plan_tasks(task)
    scorer = scorer if scorer is not None else make_scorer(DEFAULT_SCORER)
    rows: list[dict[str, Any]] = []
    ratios = []
    bar = tqdm(total=tasks * len(names), disable=not progress, desc="plan bench", unit="instance")
    for name in names:
        for i in range(tasks):
            r = plan_instance(world_model, name, candidates, seed * 100_003 + i, scorer=scorer, proposals=proposals)
            if len(ratios) < cost_instances and not isinstance(world_model, str):  # the oracle: no model to time
                ratios.append(_batched_cost_ratio(world_model, r["rollout"], r["goal"], scorer))
            rows.append({k: v for k, v in r.items() if k not in MEDIA_KEYS})
            bar.update(1)
    bar.close()
    pooled = _summary(rows)
    per_task = {n: _summary([r for r in rows if r["task"] == n]) for n in names}
    return {"task": task, "tasks": tasks, "candidates": candidates, "seed": seed, "proposals": proposals.name,
            "proposals_refine": getattr(proposals, "strength", None),
            "world_model": world_model if isinstance(world_model, str) else getattr(world_model, "name",
                                                                                    type(world_model).__name__),
            "scorer": scorer.name, **{k: v for k, v in pooled.items() if k != "instances"},
            "batched_cost_ratio": float(np.median(ratios)) if ratios else float("nan"),
            "batched_cost_instances": len(ratios), "success_radius_m": SUCCESS_RADIUS,
            "tie_tolerance_m": TIE_TOLERANCE, "per_task": per_task, "instances": rows}  # fmt: skip
