"""``dexsim plan`` / ``dexsim bench plan``: rank candidates with a world model, check with the physics oracle."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
from tqdm.auto import tqdm

__all__ = ["bench_plan", "kendall_tau", "plan_instance"]

#: a candidate whose final target position is within this of the goal's (m) succeeds; oracle ties
SUCCESS_RADIUS = 0.04
TIE_TOLERANCE = 0.01
#: the scorer plans are ranked with unless one is given
DEFAULT_SCORER = "multiscale_psnr"


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


def _final_xy(sim: Any, k: int) -> np.ndarray:
    return np.asarray(sim.object_poses[-1, k, :2], np.float64)


def plan_instance(world_model: Any, task_name: str, candidates: int, seed: int, frames: int = 16,
                  scorer: Any = None, size: tuple[int, int] = (128, 128)) -> dict[str, Any]:  # fmt: skip
    """One held-out task instance: a randomized scene from ``seed``, a goal made by the oracle, N
    candidates ranked by the world model and measured by the oracle (distance of the target's final
    position to the goal's). ``world_model="oracle"`` ranks with this instance's own physics (at
    ``size`` = (width, height)); any other value is a world model object."""
    from ..envs.tasks import TASKS
    from ..physics.actions import make_action
    from ..physics.oracle import Oracle
    from ..physics.spec import randomized_scene
    from ..planners.candidates import primitive_candidates, with_camera
    from ..planners.rank import RankPlanner, Rollout
    from ..scoring import Goal, make_scorer

    task = TASKS[task_name]
    if task.target is None:
        raise ValueError(f"plan benchmarks need an object task; {task_name!r} has no target object")
    rng = np.random.default_rng([seed, 77])
    spec = randomized_scene(task.scene, int(rng.integers(2**31)) + 10_000_019)  # never a training scene seed
    width, height = size if isinstance(world_model, str) else (world_model.width, world_model.height)
    oracle = Oracle(spec, width, height, seed=seed)
    cands = primitive_candidates(spec, task.target, candidates, rng, frames)
    camera = cands[0].trajectory.camera
    ref = None
    for _ in range(60):  # the goal: another push of the target, in the direction of one candidate
        a = make_action(spec, task.kind, rng, frames, target=task.target, camera="static")
        if a.text.endswith(cands[int(rng.integers(3))].text.split()[-1]):
            ref = with_camera(a, camera)
            break
    assert ref is not None
    goal_clip = oracle.run(ref.trajectory, masks=False)
    k = spec.object_names.index(task.target)
    goal_xy = _final_xy(goal_clip.sim, k)
    goal = Goal(image=goal_clip.scene[-1], text=task.text, start=goal_clip.static[0])
    clips = [oracle.run(c.trajectory, masks=False) for c in cands]
    dist = np.array([np.linalg.norm(_final_xy(c.sim, k) - goal_xy) for c in clips])
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
        "seconds_per_candidate": result.seconds / candidates, "rollout": rollout, "goal": goal, "videos": result.videos,
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


def bench_plan(world_model: Any, task: str = "push-red-box", tasks: int = 20, candidates: int = 8, seed: int = 0,
               cost_instances: int = 2, progress: bool = True, scorer: Any = None) -> dict[str, Any]:  # fmt: skip
    """The planning benchmark over ``tasks`` held-out instances (see the module docstring); ``scorer``:
    a :class:`~dexsim.scoring.Scorer` (default :data:`DEFAULT_SCORER`)."""
    from ..scoring import make_scorer

    scorer = scorer if scorer is not None else make_scorer(DEFAULT_SCORER)
    rows = []
    ratios = []
    for i in tqdm(range(tasks), disable=not progress, desc="plan bench", unit="instance"):
        r = plan_instance(world_model, task, candidates, seed * 100_003 + i, scorer=scorer)
        if i < cost_instances:
            ratios.append(_batched_cost_ratio(world_model, r["rollout"], r["goal"], scorer))
        rows.append({k: v for k, v in r.items() if k not in ("rollout", "goal", "videos")})
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    return {"task": task, "tasks": tasks, "candidates": candidates, "seed": seed,
            "world_model": world_model if isinstance(world_model, str) else getattr(world_model, "name",
                                                                                    type(world_model).__name__),
            "scorer": scorer.name,
            "top1_agreement": mean("top1"), "random_top1": mean("random_top1"), "kendall_tau": mean("kendall_tau"),
            "success_rate": mean("success"), "candidate_success_rate": mean("candidate_success_rate"),
            "seconds_per_candidate": float(np.median([r["seconds_per_candidate"] for r in rows])),
            "batched_cost_ratio": float(np.median(ratios)) if ratios else float("nan"),
            "batched_cost_instances": len(ratios), "success_radius_m": SUCCESS_RADIUS,
            "tie_tolerance_m": TIE_TOLERANCE, "instances": rows}  # fmt: skip
