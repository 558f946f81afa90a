"""The hand forecaster: state encoding, training, sampling, checked inputs, baselines, the benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dexsim.forecast import (
    FORECAST_CONFIGS,
    HandForecaster,
    NeighbourBank,
    constant_velocity,
    decode_states,
    displacements,
    encode_states,
    forecast,
    held_still,
)
from dexsim.forecast.data import ForecastClips, load_clip
from dexsim.hands.model import HandModel, check_pose_limits


def test_state_round_trip_recovers_params_and_joints(clips: Path) -> None:
    c = load_clip(clips, "train_000000", size=16)
    x = encode_states(torch.from_numpy(c.params), torch.from_numpy(c.visible), torch.from_numpy(c.camera))
    d = decode_states(x)
    assert torch.equal(d.visible, torch.from_numpy(c.visible))
    seen = c.visible
    assert np.abs(d.joints.numpy()[seen] - c.joints[seen]).max() < 1e-4  # the recorded joints, from params
    assert np.abs(d.camera.numpy()[:, :3] - c.camera[:, :3]).max() < 1e-5
    q_err = 1 - np.abs((d.camera.numpy()[:, 3:] * c.camera[:, 3:]).sum(-1))
    assert q_err.max() < 1e-6
    assert not d.limit_violation.any()


def test_goal_render_shows_the_final_scene(clips: Path) -> None:
    c = load_clip(clips, "train_000000", size=32)
    assert c.goals.shape == (8, 3, 32, 32) and c.frames.shape == (8, 3, 32, 32)
    # a push moves an object: the final scene differs from the static first frame somewhere, by a real amount
    diff = np.abs(c.goals[0].astype(int) - c.static0.astype(int)).max()
    assert diff > 20, diff


def test_partial_goal_windows_stop_where_their_goal_was_rendered(clips: Path) -> None:
    from dexsim.forecast.data import PARTIAL_FRAMES

    data = ForecastClips([clips], 32, 8, 16, progress=False)
    c = data.clips[0]
    assert c.partial_goals.shape == (len(PARTIAL_FRAMES), 3, 32, 32)
    # the scene part-way differs from the final scene (the push was still under way at frame 5)
    assert np.abs(c.partial_goals[0].astype(int) - c.goals[0].astype(int)).max() > 20
    j = 2
    item = data._partial_window(c, j, goal=True, text=True, target=True)
    stop = PARTIAL_FRAMES[j]
    params, visible, _ = item["future"]
    assert np.allclose(params[-1][visible[-1]], c.params[stop][visible[-1]], atol=1e-6)  # ends where the goal is
    assert np.allclose(params[0], c.params[0]) and np.array_equal(item["goal"], c.partial_goals[j])
    batch = data.sample(8, np.random.default_rng(0), plan_prob=1.0, partial_prob=1.0)
    assert batch.future.shape[:2] == (8, 16) and not batch.history_visible.any()


def test_flow_matching_fits_a_batch(clips: Path) -> None:
    torch.manual_seed(0)
    model = HandForecaster(**FORECAST_CONFIGS["tiny"])
    data = ForecastClips([clips], 16, model.config.history, model.config.horizon, progress=False)
    batch = data.sample(4, np.random.default_rng(0))
    model.set_statistics(encode_states(torch.from_numpy(np.concatenate([c.params for c in data.clips])),
                                       torch.from_numpy(np.concatenate([c.visible for c in data.clips])),
                                       torch.from_numpy(np.concatenate([c.camera for c in data.clips]))))  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        first = [float(model.loss(batch, torch.Generator().manual_seed(s))) for s in range(4)]
    for _ in range(150):
        loss = model.loss(batch, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = [float(model.loss(batch, torch.Generator().manual_seed(s))) for s in range(4)]
    # the flow-matching loss has a floor (the noise is not predictable); a fitted model is well below the start
    assert np.mean(last) < 0.75 * np.mean(first), (first, last)


def test_trained_forecaster_samples_valid_futures(tiny_forecaster, clips: Path) -> None:
    c = load_clip(clips, "train_000001", size=32)
    frame = c.frames[3].transpose(1, 2, 0).copy()
    hist = {"params": c.params[:4], "visible": c.visible[:4], "camera": c.camera[:4]}
    K = c.K.astype(np.float64)
    f = forecast(tiny_forecaster, frame, c.camera[3], K, hist, text=c.text, k=3, horizon=12,
                 generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert f.params.shape == (3, 12, 2, 51) and f.joints.shape == (3, 12, 2, 21, 3) and f.camera.shape == (3, 12, 7)
    for h, side in enumerate(("left", "right")):
        p = torch.from_numpy(f.params[:, :, h]).float()
        check_pose_limits(p[..., 3:48], side, strict=True)  # within the joint limits, or this raises
        j = HandModel(side, limits="off")(p[..., :3], p[..., 3:48], p[..., 48:], with_mesh=False).joints.numpy()
        shown = f.visible[:, :, h]
        assert np.abs(j[shown] - f.joints[:, :, h][shown]).max() < 1e-4
        assert (f.joints[:, :, h][~shown] == 0).all()
    again = forecast(tiny_forecaster, frame, c.camera[3], K, hist, text=c.text, k=3, horizon=12,
                     generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert np.array_equal(again.params, f.params)  # the same generator gives the same samples
    traj = f.trajectories(fps=8.0)[0]
    assert traj.num_frames == 12 and traj.camera.shape == (12, 7)


def test_forecast_refuses_bad_inputs_at_the_door(tiny_forecaster) -> None:
    frame = np.zeros((32, 32, 3), np.uint8)
    cam = np.array([0, -0.3, 1.2, 1, 0, 0, 0], np.float32)
    K = np.array([[28.0, 0, 16], [0, 28.0, 16], [0, 0, 1]])
    with pytest.raises(ValueError, match=r"goal_image.*\(32, 32\).*\(16, 24\)"):
        forecast(tiny_forecaster, frame, cam, K, goal_image=np.zeros((16, 24, 3), np.uint8))
    with pytest.raises(ValueError, match=r"horizon.*\[1, 16\].*17"):
        forecast(tiny_forecaster, frame, cam, K, horizon=17)
    bad = {"params": np.zeros((2, 2, 51), np.float32), "visible": np.ones((2, 2), bool)}
    bad["params"][1, 0, 5] = np.nan
    with pytest.raises(ValueError, match=r"history.params.*non-finite.*\[1, 0, 5\]"):
        forecast(tiny_forecaster, frame, cam, K, history=bad)
    with pytest.raises(ValueError, match="`frame` must be a uint8"):
        forecast(tiny_forecaster, frame.astype(np.float32), cam, K)
    with pytest.raises(ValueError, match="`k` must be a positive int"):
        forecast(tiny_forecaster, frame, cam, K, k=0)
    with pytest.raises(ValueError, match=r"`camera` must have shape \(7\)"):
        forecast(tiny_forecaster, frame, cam[:3], K)


def test_displacements_take_the_best_sample() -> None:
    truth = np.zeros((4, 12, 3))
    pred = np.stack([np.full((4, 12, 3), 1.0), np.zeros((4, 12, 3))])
    pred[1, -1] = [0.3, 0.4, 0.0]  # 0.5 m off at the end only
    valid = np.ones((4, 12), bool)
    ade, fde = displacements(pred, truth, valid)
    assert ade == pytest.approx(0.5 / 4) and fde == pytest.approx(0.5)
    assert displacements(pred[:1], truth, valid)[1] == pytest.approx(np.sqrt(3))
    valid[-1] = False  # the final frame unseen: FDE is read at the last seen frame
    assert displacements(pred[1:], truth, valid)[1] == pytest.approx(0.0)


def test_baselines_extrapolate_as_named() -> None:
    hist = np.stack([np.full((12, 3), t * 0.01) for t in range(4)])  # moving 1 cm per frame on each axis
    cv = constant_velocity(hist, 5)
    assert cv.shape == (1, 5, 12, 3) and np.allclose(cv[0, :, 0, 0], 0.03 + 0.01 * np.arange(1, 6))
    still = held_still(hist, 5)
    assert np.allclose(still[0], hist[-1])


def test_neighbour_bank_retrieves_the_matching_history(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(6, 16, 12, 3)).astype(np.float32)
    vis = np.ones((6, 16, 2), bool)
    bank = NeighbourBank(kp, vis, ["a", "b", "a", "b", "a", "b"])
    bank.save(tmp_path)
    bank = NeighbourBank.load(tmp_path)
    query = kp[3, :4] + np.float32(0.5)  # clip 3 seen 0.5 m away: retrieved and moved onto the query
    out = bank.retrieve(query, vis[3, :4], 12, k=1)
    wrist_shift = np.repeat(query[-1].reshape(2, 6, 3)[:, :1] - kp[3, 3].reshape(2, 6, 3)[:, :1], 6, 1)
    assert np.allclose(out[0], kp[3, 4:16] + wrist_shift.reshape(12, 3), atol=2e-3)
    assert len(bank.retrieve(query, vis[3, :4], 12, k=2, text="a")) == 2
    with pytest.raises(ValueError, match="16 frames"):
        bank.retrieve(query, vis[3, :4], 13, k=1)
    with pytest.raises(ValueError, match="no hand parameters"):
        bank.retrieve_params(query, vis[3, :4], 12, k=1)
    params = rng.normal(size=(6, 16, 2, 51)).astype(np.float32)
    NeighbourBank(kp, vis, bank.texts, params).save(tmp_path)
    p, v = NeighbourBank.load(tmp_path).retrieve_params(query, vis[3, :4], 12, k=1)
    shift = query[-1].reshape(2, 6, 3)[:, 0] - kp[3, 3].reshape(2, 6, 3)[:, 0]  # (2, 3): each hand's wrist
    assert p.shape == (1, 12, 2, 51) and v.all()
    assert np.allclose(p[0, ..., 48:], params[3, 4:, :, 48:] + shift, atol=2e-2)  # wrists moved as the keypoints
    assert np.allclose(p[0, ..., :48], params[3, 4:, :, :48], atol=2e-2)  # the pose kept


def test_diverse_retrieval_covers_distinct_futures() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(scale=0.05, size=(16, 12, 3)).astype(np.float32)
    kp = np.stack([base + np.float32(0.001 * j) for j in range(6)])  # histories ever farther from clip 0's
    kp[3, 4:] += np.float32(0.1)  # clips 3 and 4 end 10 cm away on either side; 0, 1, 2 and 5 end together
    kp[4, 4:] -= np.float32(0.1)
    bank = NeighbourBank(kp, np.ones((6, 16, 2), bool), ["a"] * 6)
    query, vis = kp[0, :4], np.ones((4, 2), bool)
    near, _ = bank.nearest(query, vis, 12, 3)
    assert near.tolist() == [0, 1, 2]  # three copies of one outcome
    spread, shift = bank.nearest_diverse(query, vis, 12, 3)
    assert spread.tolist() == [0, 3, 4] and shift.shape == (3, 2, 3)  # the nearest, then the distinct outcomes
    assert bank.nearest_diverse(query, vis, 12, 1)[0].tolist() == [0]  # K = 1 is plain retrieval
    assert bank.nearest_diverse(query, vis, 12, 3, cap=0.0)[0].tolist() == [0, 1, 2]  # no credit for spread
    out = bank.retrieve(query, vis, 12, 3, diverse=True)
    assert np.allclose(out[1], kp[3, 4:] - 0.003, atol=1e-5) and np.allclose(out[2], kp[4, 4:] - 0.004, atol=1e-5)


def test_forecast_with_a_history_samples_the_banks_diverse_futures(tiny_forecaster_dir: Path, clips: Path) -> None:
    from dexsim.forecast import load_forecaster

    model = load_forecaster(tiny_forecaster_dir)
    assert model.bank is not None and model.bank.params is not None and model.corrector is None
    c = ForecastClips([clips], 16, 8, 16, progress=False).clips[1]
    frame = np.ascontiguousarray(c.frames[3].transpose(1, 2, 0))
    hist = {"params": c.params[:4], "visible": c.visible[:4], "camera": c.camera[:4]}
    f = forecast(model, frame, c.camera[3], c.K, hist, text=c.text, k=3, horizon=8)  # auto: 4 frames seen
    seen = c.visible[4:12]
    # the clip is in the bank, so sample 0 (the nearest) is its own future; the others are other clips' futures
    assert np.allclose(f.params[0][..., 48:51][seen], c.params[4:12][..., 48:51][seen], atol=1e-3)
    assert not np.allclose(f.params[1][..., 48:51][seen], c.params[4:12][..., 48:51][seen], atol=1e-3)
    short = {k: v[1:4] for k, v in hist.items()}  # 3 frames: too few to match, the network's flow from noise
    g = forecast(model, frame, c.camera[3], c.K, short, text=c.text, k=3, horizon=8,
                 generator=torch.Generator().manual_seed(0))  # fmt: skip
    own = forecast(model, frame, c.camera[3], c.K, short, text=c.text, k=3, horizon=8,
                   generator=torch.Generator().manual_seed(0), start="noise")  # fmt: skip
    assert np.array_equal(g.params, own.params)
    with pytest.raises(ValueError, match="at least 4 frames"):
        forecast(model, frame, c.camera[3], c.K, short, text=c.text, start="retrieval")


def test_bench_forecast_started_from_retrieval(tiny_forecaster, clips: Path) -> None:
    from dexsim.bench.forecast import bench_forecast

    # strength 0: the model returns the retrieved futures (decoded through the hand model): the retrieval's figures
    kept = bench_forecast(tiny_forecaster, [clips], progress=False, refine=0.0)
    assert kept["refine"] == 0.0
    for key in ("ade_k5", "fde_k5"):
        assert abs(kept["model"][key] - kept["nearest_neighbour"][key]) < 2e-3
    redrawn = bench_forecast(tiny_forecaster, [clips], progress=False, refine=0.5)
    assert redrawn["model"]["fde_k5"] != kept["model"]["fde_k5"]


def test_bench_forecast_reports_every_method(tiny_forecaster, clips: Path) -> None:
    from dexsim.bench.forecast import bench_forecast

    r = bench_forecast(tiny_forecaster, [clips], [clips], progress=False)
    for name in ("model", "still", "constant_velocity", "nearest_neighbour"):
        assert set(r[name]) == {"ade_k1", "fde_k1", "ade_k5", "fde_k5"}
        assert all(np.isfinite(v) and v >= 0 for v in r[name].values())
        assert r[name]["fde_k5"] <= r[name]["fde_k1"] + 1e-9
    # retrieval from the very clips evaluated finds each clip itself: no displacement
    assert r["nearest_neighbour"]["fde_k1"] < 1e-3 < r["still"]["fde_k1"]
    assert 0.0 <= r["joint_limit_violation_rate"] <= 1.0 and 0.0 <= r["table_penetration_rate"] <= 1.0
    assert r["clips"] == 4 and r["inference_k8_s"] > 0


def test_forecast_proposals_plan_against_the_same_goal(tiny_forecaster) -> None:
    from dexsim.bench.plan import plan_instance
    from dexsim.physics.build import spec_workspace
    from dexsim.physics.spec import randomized_scene
    from dexsim.planners import ForecastProposals

    prim = plan_instance("oracle", "push-red-box", 3, seed=2, frames=8, size=(32, 32))
    fc = plan_instance("oracle", "push-red-box", 3, seed=2, frames=8, size=(32, 32),
                       proposals=ForecastProposals(tiny_forecaster))  # fmt: skip
    assert prim["proposals"] == "primitives" and fc["proposals"] == "forecast"
    assert np.array_equal(prim["goal"].image, fc["goal"].image)  # one goal, whichever source proposes
    assert all(t.startswith("forecast") for t in fc["candidate_texts"]) and len(fc["oracle_distance_m"]) == 3
    spec = randomized_scene("tabletop", int(fc["scene_seed"].rsplit("-", 1)[1]))
    lo, hi = spec_workspace(spec)
    for h in fc["rollout"].hands:  # wrists kept in the working box, camera shared
        wrists = h.params[..., 48:51][h.visible]
        assert ((wrists >= lo - 1e-5) & (wrists <= hi + 1e-5)).all()
        assert np.array_equal(h.camera, fc["rollout"].hands[0].camera)
    assert fc["planning_s"] >= fc["propose_s"] > 0


def test_cem_searches_the_forecasters_noise(tiny_forecaster) -> None:
    from dexsim.physics.oracle import Oracle
    from dexsim.physics.spec import randomized_scene
    from dexsim.planners import CEMConfig, CEMPlanner, ForecastProposals, PlanContext, Rollout
    from dexsim.planners.candidates import task_candidates
    from dexsim.scoring import Goal, make_scorer
    from dexsim.worldmodel.models import OracleWorldModel

    spec = randomized_scene("tabletop", 5)
    oracle = Oracle(spec, 32, 32)
    camera = task_candidates(spec, "push", "red_box", 1, np.random.default_rng(0), 8)[0].trajectory.camera
    start = oracle.world.render_static(camera[:1])[0]
    ctx = PlanContext(start, camera, oracle.K.numpy(), start, "push the red box away", 8, spec, "push", "red_box")

    def make_rollout(actions):
        clips = [oracle.run(a.trajectory, masks=False) for a in actions]
        return Rollout(static=clips[0].static, prompts=np.stack([c.prompt for c in clips]),
                       hands=[a.trajectory for a in actions])  # fmt: skip

    wm = OracleWorldModel(width=32, height=32, world=oracle.world)
    cem = CEMPlanner(wm, make_scorer("psnr"), CEMConfig(samples=3, elites=1, iterations=2), batch_size=3,
                     proposals=ForecastProposals(tiny_forecaster))  # fmt: skip
    out = cem.plan_proposals(ctx, make_rollout, Goal(image=start, text=ctx.text, start=start))
    assert len(out["elite_scores"]) == 2 and out["action"].kind == "forecast"
    assert np.isfinite(out["score"]) and out["score"] >= max(out["elite_scores"]) - 1e-9
    with pytest.raises(ValueError, match="noise space"):
        CEMPlanner(wm, make_scorer("psnr")).plan_proposals(ctx, make_rollout, Goal(image=start))


def test_env_forecast_proposes_the_next_chunk(tiny_forecaster) -> None:
    import gymnasium as gym

    import dexsim  # noqa: F401

    env = gym.make("DexWorld-v0", task="push-red-box", world_model="oracle", action_mode="mano", width=32,
                   height=32, chunk=4)  # fmt: skip
    env.reset(seed=0)
    f = env.unwrapped.forecast(k=2, forecaster=tiny_forecaster, generator=torch.Generator().manual_seed(0))
    assert f.params.shape == (2, 4, 2, 51)
    obs, *_ = env.step(f.mano_action(1))  # a proposal is a valid action of the env
    f2 = env.unwrapped.forecast(k=1, forecaster=tiny_forecaster)  # now with the episode as history
    assert f2.params.shape == (1, 4, 2, 51) and obs["frames"].shape == (4, 32, 32, 3)
    a, b = (env.unwrapped.forecast(k=2, forecaster=tiny_forecaster, generator=torch.Generator().manual_seed(s))
            for s in (1, 2))  # fmt: skip
    assert not np.allclose(a.params, b.params)  # the network samples (not the bank's fixed futures) mid-episode
    env.close()
