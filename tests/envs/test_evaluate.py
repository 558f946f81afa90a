"""Policy evaluation: statistics against their definitions, batching and sharding that do not change
the verdicts, the oracle as world model agreeing with physics, the policy interface, bad inputs,
and the policy ladder."""

from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np
import pytest

from dexsim.envs.evaluate import (
    cohen_kappa,
    evaluate,
    merge_reports,
    mmrv,
    pearson,
    resolve_policy,
    shard_path,
    spearman,
    wilson_interval,
)
from dexsim.envs.policies import LADDER, ladder_trajectory
from dexsim.worldmodel import DiffusionWorldModel

from .conftest import noisy_tiny_model

SIZE = 32


@pytest.fixture(scope="module")
def tiny_model() -> DiffusionWorldModel:
    return noisy_tiny_model(SIZE, num_steps=1)


class ZeroDelta:
    """A user policy class: made with one env, reset with the episode seed, hands hidden."""

    made: ClassVar[list] = []

    def __init__(self, env) -> None:
        ZeroDelta.made.append(env.action_space.shape)
        self.seed = None

    def reset(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, obs: dict) -> np.ndarray:
        assert obs["frames"].shape == (4, SIZE, SIZE, 3)  # one env's observation
        return np.zeros(21, np.float32)


def reach(obs: dict) -> np.ndarray:
    """A user policy function: both hands in view, moving forward."""
    a = np.zeros(21, np.float32)
    a[[7, 12, 15, 20]] = [0.5, 1.0, 0.5, 1.0]
    return a


# ------------------------------------------------------------------------------------ statistics
def test_wilson_interval_known_values() -> None:
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-5)
    with pytest.raises(ValueError, match="`n`"):
        wilson_interval(0, 0)


def test_kappa_pearson_spearman_known_values() -> None:
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)  # p_o 0.75, p_e 0.5
    assert cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert cohen_kappa([1, 1, 1], [1, 1, 1]) is None  # undefined: p_e = 1
    assert pearson([0, 1, 2], [1, 3, 5]) == pytest.approx(1.0)
    assert pearson([0, 1, 2], [1, 1, 1]) is None
    assert spearman([0, 1, 2, 3], [0, 1, 8, 27]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([0, 0, 1], [0, 1, 2]) == pytest.approx(np.corrcoef([1.5, 1.5, 3], [1, 2, 3])[0, 1])  # ties


def _simpler_mmrv(sim, real) -> float:
    """SIMPLER's loop (simpler_env/utils/metrics.py), the reference."""
    out = []
    for i in range(len(sim)):
        v = 0.0
        for j in range(len(sim)):
            if (sim[i] > sim[j]) != (real[i] > real[j]):
                v = max(v, abs(real[i] - real[j]))
        out.append(v)
    return float(np.mean(out))


def test_mmrv_is_simplers() -> None:
    assert mmrv([0.1, 0.5, 0.9], [0.2, 0.6, 0.7]) == 0.0
    assert mmrv([0.9, 0.5, 0.1], [0.1, 0.5, 0.9]) == pytest.approx((0.8 + 0.4 + 0.8) / 3)
    assert mmrv([0.5, 0.5], [0.2, 0.6]) == pytest.approx(0.2)  # a tie on one side only is a violation
    rng = np.random.default_rng(0)
    for _ in range(50):
        sim, real = rng.integers(0, 5, 7) / 4, rng.integers(0, 5, 7) / 4  # with ties
        assert mmrv(sim, real) == pytest.approx(_simpler_mmrv(sim, real))


# ------------------------------------------------------------------------------------ evaluation
def _eval(model, policy, episodes: int = 3, **kw):
    kw.setdefault("oracle", False)
    return evaluate("push-red-box", policy, episodes, 5, model, chunk=4, progress=False, **kw).report


def test_a_user_policy_class_and_function_and_module_path(tiny_model) -> None:
    ZeroDelta.made.clear()
    r = _eval(tiny_model, ZeroDelta)
    assert ZeroDelta.made == [(21,)] * 3  # one instance per episode, made with one env
    assert r["policy"] == "ZeroDelta" and r["action_mode"] == "delta" and r["num_episodes"] == 3
    assert [e["seed"] for e in r["episodes"]] == [500015, 500016, 500017]  # seed 5: 5 * 100003 + e
    assert [e["steps"] for e in r["episodes"]] == [4, 4, 4]
    lo, hi = r["ci95"]
    assert 0.0 <= lo <= r["success_rate"] <= hi <= 1.0 and r["success_rate"] == r["successes"] / 3
    assert resolve_policy("tests.envs.test_evaluate:reach").name == "tests.envs.test_evaluate:reach"
    assert _eval(tiny_model, "tests.envs.test_evaluate:reach", 1)["num_episodes"] == 1


def test_batching_and_sharding_do_not_change_the_verdicts(tiny_model) -> None:
    """Episodes batched in one vector env equal episodes run one by one (each env has its own random
    stream), and shards merged equal one process."""
    one = _eval(tiny_model, reach, 3, batch_size=1)
    batched = _eval(tiny_model, reach, 3, batch_size=3)
    shards = [_eval(tiny_model, reach, 3, batch_size=2, shard=(r, 2)) for r in (1, 0)]
    assert [e["episode"] for e in shards[0]["episodes"]] == [1]
    merged = merge_reports(shards)
    for other in (batched, merged):
        for a, b in zip(one["episodes"], other["episodes"], strict=True):
            assert (a["episode"], a["success"]) == (b["episode"], b["success"])
            assert (a["measure"] is None) == (b["measure"] is None)
            if a["measure"] is not None:
                assert a["measure"] == pytest.approx(b["measure"], abs=2e-3)
        assert other["success_rate"] == one["success_rate"]
    with pytest.raises(ValueError, match="missing"):
        merge_reports(shards[:1])
    with pytest.raises(ValueError, match="appears in"):
        merge_reports([shards[0], shards[0], shards[1]])
    with pytest.raises(ValueError, match="differ in 'seed'"):
        merge_reports([shards[0], {**shards[1], "seed": 9}])
    assert shard_path("out/ev.json", 1, 4).name == "ev.shard1-of-4.json"
    assert shard_path("ev.json", 0, 1).name == "ev.json"


def test_the_oracle_as_world_model_agrees_with_physics_on_every_episode() -> None:
    """With the physics oracle as the world model its verdict is physics: paired agreement 1, and the
    replay holds the detector's reading of the same frames."""
    r = evaluate("push-red-box", "reference", 2, 0, "oracle", size=SIZE, chunk=8, progress=False).report
    assert r["oracle"] and r["world_model"] == "oracle" and r["action_mode"] == "mano"
    for e in r["episodes"]:
        assert e["success"] == e["oracle_success"] and e["measure"] == pytest.approx(e["oracle_measure"])
        assert isinstance(e["detector_on_oracle_success"], bool)
    assert r["paired_agreement"] == 1.0 and r["oracle_success_rate"] == r["success_rate"] == 1.0
    assert {"kappa", "detector_agreement_on_oracle", "end_position_error_px", "oracle_ci95"} <= set(r)


def test_a_learned_model_is_replayed_in_physics(tiny_model) -> None:
    r = _eval(tiny_model, reach, 2, oracle=True, videos=1)
    keys = {"success", "measure", "oracle_success", "oracle_measure", "detector_on_oracle_success",
            "end_position_error_px", "detector_end_position_error_px", "seconds"}  # fmt: skip
    for e in r["episodes"]:
        assert keys <= set(e)
        assert not e["oracle_success"] and e["oracle_measure"] < 0.01  # hands reaching forward, far from the box
        assert not e["detector_on_oracle_success"]
    assert r["oracle_success_rate"] == 0.0 and r["detector_agreement_on_oracle"] == 1.0
    assert r["paired_agreement"] == 1.0 - r["success_rate"]


# ------------------------------------------------------------------------------------ bad inputs
def test_bad_inputs_name_the_value(tiny_model) -> None:
    with pytest.raises(ValueError, match="'nope'"):
        _eval(tiny_model, "nope")
    with pytest.raises(ValueError, match="got 0"):
        _eval(tiny_model, reach, 0)
    with pytest.raises(ValueError, match=r"shape \(20,\)"):
        _eval(tiny_model, lambda obs: np.zeros(20), 1)
    with pytest.raises(ValueError, match="non-finite action: nan at index"):
        _eval(tiny_model, lambda obs: np.full(21, np.nan), 1)
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        _eval(tiny_model, "no_such_module:policy")
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        _eval(tiny_model, "tests.envs.test_evaluate:missing")
    with pytest.raises(ValueError, match="plays 'mano' actions, not 'delta'"):
        _eval(tiny_model, "reference", action_mode="delta")
    with pytest.raises(ValueError, match="unknown task 'fly'"):
        evaluate("fly", reach, 1, world_model=tiny_model)


# ---------------------------------------------------------------------------------------- ladder
def test_the_ladder_has_eight_policies_that_play_in_the_env(tiny_model) -> None:
    assert len(LADDER) >= 8 and LADDER[0] == "reference" and "random-delta" in LADDER
    for name in LADDER:
        r = _eval(tiny_model, name, 1)
        assert r["num_episodes"] == 1 and r["action_mode"] == ("delta" if name == "random-delta" else "mano")


def test_ladder_policies_are_drawn_from_the_seed() -> None:
    a = ladder_trajectory("push-red-box", "noise-4cm", np.random.default_rng(3), 16)
    b = ladder_trajectory("push-red-box", "noise-4cm", np.random.default_rng(3), 16)
    c = ladder_trajectory("push-red-box", "noise-4cm", np.random.default_rng(4), 16)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])
    ref = ladder_trajectory("push-red-box", "reference", np.random.default_rng(3), 16)
    short = ladder_trajectory("push-red-box", "stop-short", np.random.default_rng(3), 16)
    assert np.allclose(short[0][::2][:8], ref[0][:8])  # half speed: frame 2i shows frame i


@pytest.mark.slow
@pytest.mark.parametrize("task", ["push-red-box", "pick-place-green-can", "open-drawer"])
def test_the_ladder_spans_success_and_failure_in_physics(task: str) -> None:
    """The reference succeeds and waving fails in physics (seeds 0 and 1)."""
    from dexsim.envs.tasks import TASKS
    from dexsim.physics.build import scene_world
    from dexsim.physics.sim import Simulator
    from dexsim.world import HandStates

    t = TASKS[task]
    world = scene_world(t.scene, SIZE, SIZE)
    sim = Simulator(world.spec)
    for name, seed in itertools.product(("reference", "wave"), (0, 1)):
        params, visible = ladder_trajectory(task, name, np.random.default_rng([seed, 0x1ADDE]), 16)
        _, joints = world.pose_hands(HandStates(params, visible))
        rec = sim.run(joints.numpy(), visible)
        assert t.success(rec.object_poses, rec.drawer, world.spec) == (name == "reference"), (name, seed)
