"""Planners: ranking, CEM, candidates, the plan benchmark's measures (the scorers: tests/scoring)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dexsim.bench.plan import SUCCESS_RADIUS, TIE_TOLERANCE, kendall_tau, plan_instance
from dexsim.planners import CEMConfig, CEMPlanner, RankPlanner, Rollout, perturb_action, primitive_candidates
from dexsim.scoring import Goal, PSNRScorer
from dexsim.worldmodel import Generation


class _Echo:
    """A world model whose prediction is the prompt video itself (so rankings are predictable)."""

    width = height = 16
    window, context_frames, fps = 4, 1, 8.0

    def __init__(self) -> None:
        self.batches: list[int] = []

    def generate(self, static, prompt, context=None, **kw):
        self.batches.append(prompt.shape[0])
        out = np.array(prompt, copy=True)
        if context is not None:
            out[:, : context.shape[1]] = context
        return Generation(out)


def test_rank_planner_batches_and_orders() -> None:
    rng = np.random.default_rng(1)
    static = rng.integers(0, 255, (7, 16, 16, 3), dtype=np.uint8)
    goal_img = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    prompts = np.repeat(static[None], 5, 0).copy()
    for i in range(5):  # candidate i ends i/4 of the way to the goal image
        prompts[i, -1] = (static[-1] * (1 - i / 4) + goal_img * (i / 4)).astype(np.uint8)
    wm = _Echo()
    res = RankPlanner(wm, PSNRScorer(), batch_size=5, mask_hands=False).plan(
        Rollout(static, prompts), Goal(image=goal_img, start=static[0])
    )
    assert res.order.tolist() == [4, 3, 2, 1, 0] and res.best == 4
    assert wm.batches == [5, 5]  # 2 windows of 4 frames (1 context) cover 7 frames, all 5 candidates at once
    assert res.videos.shape == prompts.shape
    with pytest.raises(ValueError, match="batch_size"):
        RankPlanner(wm, PSNRScorer(), batch_size=0)
    with pytest.raises(ValueError, match="hand_mask_dilate"):
        RankPlanner(wm, PSNRScorer(), hand_mask_dilate=-1)


def test_kendall_tau() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert kendall_tau(a, a) == pytest.approx(1.0)
    assert kendall_tau(a, -a) == pytest.approx(-1.0)
    assert abs(kendall_tau(a, np.array([2.0, 1.0, 4.0, 3.0]))) < 0.5
    # differences within the measure's tolerance are ties: only the clearly ordered pairs count
    b = np.array([1.0, 1.004, 3.0, 4.0])
    assert kendall_tau(np.array([2.0, 1.0, 3.0, 4.0]), b) < kendall_tau(np.array([2.0, 1.0, 3.0, 4.0]), b, 0.01)


def test_candidates_share_the_camera_and_perturbations_move_the_hand() -> None:
    from dexsim.physics.spec import builtin_scene

    spec = builtin_scene("tabletop")
    cands = primitive_candidates(spec, "red_box", 6, np.random.default_rng(0), frames=8)
    assert len(cands) == 6 and {c.text.split()[-1] for c in cands[:3]} == {"left", "right", "forward"}
    assert all(np.array_equal(c.trajectory.camera, cands[0].trajectory.camera) for c in cands)
    var = perturb_action(cands[0], np.random.default_rng(1), 2)
    h = int(np.flatnonzero(cands[0].trajectory.visible[0])[0])
    shift = np.abs(var[0].trajectory.joints[:, h] - cands[0].trajectory.joints[:, h]).max()
    assert 1e-3 < shift < 0.5


def test_candidates_withdraw_the_hand_at_the_end() -> None:
    from dexsim.physics.spec import builtin_scene
    from dexsim.planners import withdraw

    spec = builtin_scene("tabletop")
    cands = primitive_candidates(spec, "red_box", 3, np.random.default_rng(0), frames=12, withdraw_frames=4)
    plain = primitive_candidates(spec, "red_box", 3, np.random.default_rng(0), frames=8, withdraw_frames=0)
    for c, p in zip(cands, plain, strict=True):
        tr, h = c.trajectory, int(np.flatnonzero(p.trajectory.visible[0])[0])
        assert tr.joints.shape[0] == 12 and np.allclose(np.diff(tr.t), 1 / 8)
        assert np.array_equal(tr.params[:8], p.trajectory.params)  # the action itself is unchanged
        wrist = tr.joints[:, h, 0]
        assert wrist[-1, 2] > wrist[7, 2] + 0.07  # lifted ~8 cm
        assert np.linalg.norm(wrist[-1, :2] - wrist[0, :2]) < np.linalg.norm(wrist[7, :2] - wrist[0, :2])  # back
        assert np.array_equal(tr.camera[8:], np.repeat(tr.camera[7:8], 4, 0))
    assert withdraw(plain[0], 0) is plain[0]
    with pytest.raises(ValueError, match="withdraw_frames"):
        primitive_candidates(spec, "red_box", 3, np.random.default_rng(0), frames=8, withdraw_frames=7)


def test_cem_improves_on_a_known_optimum() -> None:
    """CEM over 2 parameters whose 'video' brightens towards a target point: it must approach it."""
    target = np.array([0.5, -0.3])

    def make_rollout(x: np.ndarray) -> Rollout:
        n = x.shape[0]
        d = np.linalg.norm(x[:, 0, :] - target, axis=-1)
        prompts = np.zeros((n, 2, 16, 16, 3), np.uint8)
        prompts[:, -1] = (255 * np.exp(-3 * d))[:, None, None, None].astype(np.uint8)
        return Rollout(np.zeros((2, 16, 16, 3), np.uint8), prompts)

    goal = Goal(image=np.full((16, 16, 3), 255, np.uint8))
    cfg = CEMConfig(samples=24, elites=6, iterations=4, std=0.6)
    planner = CEMPlanner(_Echo(), PSNRScorer(), cfg, seed=0, mask_hands=False)
    out = planner.plan(make_rollout, goal, dim=2)
    assert np.linalg.norm(out["params"][0] - target) < 0.2
    assert out["elite_scores"][-1] >= out["elite_scores"][0]


@pytest.mark.slow
def test_env_preview_feeds_the_cem_planner() -> None:
    from dexsim.envs.core import DexWorldEnv
    from dexsim.worldmodel import DiffusionWorldModel, compact_pipeline

    wm = DiffusionWorldModel(compact_pipeline("tiny"), 32, 32, window=5, context_frames=1, num_steps=1)
    env = DexWorldEnv(world_model=wm, width=32, height=32, chunk=4)
    env.reset(seed=0)
    before = env.hand_params.copy()
    acts = np.zeros((3, 1, 21))
    acts[:, 0, 5 + 8 + 7] = 1.0
    acts[:, 0, 5 + 8 + 1] = [-0.5, 0.0, 0.5]
    r = env.preview(acts)
    assert r.prompts.shape == (3, 4, 32, 32, 3) and len(r.hands) == 3
    assert np.array_equal(env.hand_params, before)  # the env state is untouched
    assert not np.array_equal(r.prompts[0], r.prompts[2])
    with pytest.raises(ValueError, match="camera"):
        bad = acts.copy()
        bad[1, 0, 0] = 1.0
        env.preview(bad)
    torch.manual_seed(0)
    mask = np.zeros(21, bool)
    mask[5 + 8 : 5 + 8 + 3] = True
    mean = np.zeros(21)
    mean[5 + 8 + 7] = 1.0
    planner = CEMPlanner(wm, PSNRScorer(), CEMConfig(samples=4, elites=2, iterations=2))
    goal = Goal(image=r.static[-1])
    out = planner.plan(env.preview, goal, dim=21, mean=mean, mask=mask)
    assert out["params"].shape == (1, 21) and np.all(out["params"][0, ~mask] == mean[~mask])


@pytest.mark.slow
def test_plan_instance_with_the_oracle_picks_the_physics_best() -> None:
    """The instance's figures follow from its own per-candidate output; with the exact simulator as the
    world model the chosen candidate is an oracle-best one."""
    r = plan_instance("oracle", "push-red-box", 4, seed=3, frames=8, size=(32, 32))
    scores, dist = np.asarray(r["model_scores"]), np.asarray(r["oracle_distance_m"])
    assert scores.shape == dist.shape == (4,) and len(r["candidate_texts"]) == 4
    best = dist <= dist.min() + TIE_TOLERANCE  # the oracle-best candidates, ties within the tolerance
    # random_top1: the expected top-1 of a uniformly random pick = the share of oracle-best candidates
    assert r["random_top1"] == pytest.approx(best.sum() / len(dist))
    assert 0 < best.sum() < len(dist)  # this instance tells candidates apart: a random pick can miss
    assert r["chosen"] == int(np.argmax(scores))  # the planner takes the best-scored candidate
    assert r["top1"] == bool(best[r["chosen"]])
    assert r["top1"]  # ranking by the exact simulator agrees with the physics measure
    assert r["kendall_tau"] == pytest.approx(kendall_tau(scores, -dist, TIE_TOLERANCE))
    assert r["success"] == bool(dist[r["chosen"]] <= SUCCESS_RADIUS)
    assert r["candidate_success_rate"] == pytest.approx(np.mean(dist <= SUCCESS_RADIUS))


def test_slowed_stops_part_way_and_task_candidates_cover_each_kind() -> None:
    from dexsim.physics.actions import make_action
    from dexsim.physics.spec import builtin_scene
    from dexsim.planners.candidates import DRAWER_FRACTIONS, slowed, task_candidates

    spec = builtin_scene("drawer")
    pull = make_action(spec, "open_drawer", np.random.default_rng(0), 12, camera="static")
    half = slowed(pull, 0.5)
    tr, th = pull.trajectory, half.trajectory
    assert np.allclose(th.params[6], tr.params[3], atol=1e-5) and np.allclose(th.params[0], tr.params[0])
    hand = int(np.argmax(tr.visible.any(0)))
    path = lambda t: np.linalg.norm(np.diff(t.params[:, hand, 48:], axis=0), axis=-1).sum()  # noqa: E731
    assert path(th) < 0.75 * path(tr)
    assert not np.allclose(th.joints, tr.joints)  # joints follow the new parameters
    with pytest.raises(ValueError, match="fraction"):
        slowed(pull, 0.0)
    cands = task_candidates(spec, "open_drawer", None, 6, np.random.default_rng(1), 12)
    assert [c.kind for c in cands[: len(DRAWER_FRACTIONS)]] == ["open_drawer"] * len(DRAWER_FRACTIONS)
    assert len(cands) == 6 and all(np.array_equal(c.trajectory.camera, cands[0].trajectory.camera) for c in cands)
    table = builtin_scene("tabletop")
    picks = task_candidates(table, "pick_place", "green_can", 5, np.random.default_rng(2), 12)
    assert [c.kind for c in picks[:3]] == ["pick_place"] * 3 and picks[3].kind == "push"
    with pytest.raises(ValueError, match="task kind"):
        task_candidates(table, "juggle", None, 3, np.random.default_rng(0))


@pytest.mark.slow
def test_bench_plan_with_the_oracle_times_no_model() -> None:
    """``--model oracle`` ranks each instance with its own physics: no batched-cost timing (it crashed there)."""
    from dexsim.bench.plan import bench_plan

    r = bench_plan("oracle", "push-red-box", tasks=1, candidates=2, seed=4, cost_instances=2, progress=False)
    assert r["world_model"] == "oracle" and r["batched_cost_instances"] == 0 and np.isnan(r["batched_cost_ratio"])
    assert r["scorer"] == "shift" and len(r["instances"]) == 1 and 0.0 <= r["top1_agreement"] <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("task", ["open-drawer", "pick-place-green-can"])
def test_plan_instance_of_other_task_kinds_measures_their_outcome(task: str) -> None:
    r = plan_instance("oracle", task, 4, seed=1, frames=12, size=(48, 48))
    dist = np.asarray(r["oracle_distance_m"])
    # the first three candidates do the task's action to different extents: their outcomes differ
    assert dist.shape == (4,) and np.ptp(dist[:3]) > TIE_TOLERANCE
    assert r["top1"] == bool(dist[r["chosen"]] <= dist.min() + TIE_TOLERANCE)
