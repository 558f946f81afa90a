"""Goal-grounded proposals: reading the goal image, the action bank, aligned retrieval, refinement."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dexsim.forecast.ground import (
    ActionBank,
    _fraction_for,
    goal_shift,
    grounded_trajectories,
    object_anchor,
    task_kind_from_text,
)


def _camera() -> np.ndarray:
    from dexsim.physics.spec import randomized_scene
    from dexsim.planners.candidates import task_candidates

    spec = randomized_scene("tabletop", 5)
    return task_candidates(spec, "push", "red_box", 1, np.random.default_rng(0), 2)[0].trajectory.camera[0]


def test_goal_shift_reads_where_the_object_went() -> None:
    from dexsim.physics.oracle import Oracle
    from dexsim.physics.spec import randomized_scene

    spec = randomized_scene("tabletop", 5)
    k = spec.object_names.index("red_box")
    move = np.array([0.07, 0.04])
    obj = spec.objects[k]
    moved = replace(spec, objects=[replace(o, position=tuple(np.add(o.position, move))) if i == k else o
                                   for i, o in enumerate(spec.objects)])  # fmt: skip
    cam = _camera()
    a, b = Oracle(spec, 96, 96), Oracle(moved, 96, 96)
    start = a.world.render_static(cam[None])[0]
    goal = b.world.render_static(cam[None])[0]
    anchor = object_anchor(spec, obj.name)
    est = goal_shift(start, goal, cam, a.K.numpy(), anchor)
    assert est is not None and np.linalg.norm(est - move) < 0.02, est
    assert np.allclose(goal_shift(start, start, cam, a.K.numpy(), anchor), 0.0)  # nothing appeared: stay
    behind = cam[:3] + (cam[:3] - anchor)  # the anchor mirrored through the camera centre
    assert goal_shift(start, goal, cam, a.K.numpy(), behind) is None


def test_fraction_for_stops_where_the_recorded_motion_reaches_the_distance() -> None:
    moved = np.stack([np.linspace(0.0, 0.15, 16), np.zeros(16)], -1)  # 1 cm per frame
    assert _fraction_for(moved, 0.2) == 1.0  # never reached: the whole action
    f = _fraction_for(moved, 0.075)
    assert abs(f * 15 - 7.5) < 1e-9  # reached half way through frame 7 -> 8
    assert _fraction_for(moved, 0.0) == pytest.approx(1 / 15)


def _bank() -> ActionBank:
    """Two pushes along +x (the hand from 5 cm behind the object, pushing 1 cm a frame) and one along +y."""
    T = 16
    params = np.zeros((3, T, 2, 51), np.float32)
    visible = np.zeros((3, T, 2), bool)
    anchor = np.array([[0.1, 0.3, 0.8], [0.0, 0.4, 0.8], [0.2, 0.3, 0.8]])
    moved = np.zeros((3, T, 2))
    for i, d in enumerate(([1, 0], [1, 0], [0, 1])):
        d = np.array(d, float)
        wrist = anchor[i, :2] - 0.05 * d + np.arange(T)[:, None] * 0.01 * d
        params[i, :, 1, 48:50] = wrist
        params[i, :, 1, 50] = anchor[i, 2]
        visible[i, :, 1] = True
        moved[i] = np.arange(T)[:, None] * 0.01 * d
    return ActionBank(["push", "push", "push"], anchor, moved, params, visible)


def test_grounded_trajectories_turn_move_and_stop_the_retrieved_action() -> None:
    bank = _bank()
    target = np.array([-0.2, 0.5, 0.78])
    shift = np.array([0.0, 0.06])  # 6 cm along +y: the +y push is nearest; with pool 1 it is the only draw
    params, visible = grounded_trajectories(bank, "push", target, shift, 2, np.random.default_rng(0), pool=1)
    assert params.shape == (2, 16, 2, 51) and visible[:, :, 1].all() and not visible[:, :, 0].any()
    w = params[0, :, 1, 48:51]
    assert np.allclose(w[0], target + [0.0, -0.05, 0.0], atol=1e-6)  # starts 5 cm behind the object
    assert np.allclose(w[-1, :2], target[:2] + [0.0, 0.01], atol=1e-5)  # stops once the object moved 6 cm
    # a goal 40 degrees off +x: the nearest push is a +x one, turned to point along the goal
    params, _ = grounded_trajectories(bank, "push", target, np.array([0.06, 0.05]), 1, np.random.default_rng(0),
                                      pool=1)  # fmt: skip
    d = params[0, -1, 1, 48:50] - params[0, 0, 1, 48:50]
    assert np.isclose(np.arctan2(d[1], d[0]), np.arctan2(0.05, 0.06), atol=1e-5)
    assert np.isclose(np.linalg.norm(d), np.hypot(0.06, 0.05), atol=1e-5)  # played until the object went as far
    turned, _ = grounded_trajectories(bank, "push", target, np.array([-0.06, -0.05]), 1, np.random.default_rng(0),
                                      pool=1, max_turn=0.1)  # fmt: skip
    d = turned[0, -1, 1, 48:50] - turned[0, 0, 1, 48:50]
    assert abs(np.arctan2(d[1], d[0])) <= 0.1 + 1e-6 or abs(np.arctan2(d[1], d[0]) - np.pi / 2) <= 0.1 + 1e-6
    with pytest.raises(ValueError, match="no 'open_drawer' action"):
        grounded_trajectories(bank, "open_drawer", target, None, 1, np.random.default_rng(0))


def test_a_replay_checked_bank_stops_only_where_replays_held_and_drops_actions_that_never_did() -> None:
    from dexsim.forecast.ground import REPLAY_GRID

    bank = _bank()
    target = np.array([-0.2, 0.5, 0.78])
    shift = np.array([0.0, 0.061])  # the +y push moves its object 6.1 cm 0.41 of the way through its motion
    grid = np.asarray(REPLAY_GRID)
    bank.replay_error = np.zeros((3, len(grid)))
    bank.replay_error[2, np.isclose(grid, 0.4)] = 0.5  # stopped there, the replay missed: the nearest other stop
    params, _ = grounded_trajectories(bank, "push", target, shift, 1, np.random.default_rng(0), pool=1)
    travel = params[0, -1, 1, 49] - params[0, 0, 1, 49]
    assert np.isclose(travel, 0.45 * 15 * 0.01, atol=1e-5)  # stopped at 0.45, the nearest stop that held
    bank.replay_error[2, :] = np.nan  # never checked: left out, a +x push turned (at most 45 degrees) instead
    params, _ = grounded_trajectories(bank, "push", target, shift, 1, np.random.default_rng(0), pool=1)
    d = params[0, -1, 1, 48:50] - params[0, 0, 1, 48:50]
    assert np.isclose(np.arctan2(d[1], d[0]), np.pi / 4, atol=1e-5)
    bank.replay_error[:] = 1.0  # nothing held anywhere: the check is ignored rather than proposing nothing
    params, _ = grounded_trajectories(bank, "push", target, shift, 1, np.random.default_rng(0), pool=1)
    assert np.isclose(params[0, -1, 1, 49] - params[0, 0, 1, 49], 0.061, atol=1e-5)  # stopped where asked


def test_task_kind_from_text() -> None:
    assert task_kind_from_text("open the drawer") == "open_drawer"
    assert task_kind_from_text("pick up the green can and place it") == "pick_place"
    assert task_kind_from_text("push the red box away") == "push"
    assert task_kind_from_text("wave") is None and task_kind_from_text(None) is None
    assert task_kind_from_text("the right hand pushes the drawer closed") is None  # not a pull


def test_object_anchor_sits_at_the_objects_centre() -> None:
    from dexsim.physics.spec import randomized_scene

    spec = randomized_scene("tabletop", 5)
    for o in spec.objects:  # a sphere's size holds radii: its centre is one radius above the table
        want = spec.table_height + (o.size[0] if o.shape == "sphere" else o.size[2] / 2)
        assert np.isclose(object_anchor(spec, o.name)[2], want)
    with pytest.raises(ValueError, match="no object 'cup'"):
        object_anchor(spec, "cup")


def test_action_bank_from_datagen_clips_round_trips(clips: Path, tmp_path: Path) -> None:
    pushes = [m for m in sorted((clips / "meta").glob("*.json")) if json.loads(m.read_text())["action"] == "push"]
    if not pushes:
        pytest.skip("the tiny dataset drew no push")
    bank = ActionBank.build([clips], min_motion=0.0)
    assert len(bank) == len(pushes) and set(bank.kinds) == {"push"}
    first = json.loads(pushes[0].read_text())
    phys = np.load(clips / "meta" / f"{pushes[0].stem}.npz")
    from dexsim.physics.spec import randomized_scene

    spec = randomized_scene(first["scene"].rsplit("-", 1)[0], first["scene_seed"])
    k = spec.object_names.index(first["target"])
    assert np.allclose(bank.anchor[0], phys["object_poses"][0, k, :3], atol=1e-6)
    assert np.allclose(bank.moved[0, -1], phys["object_poses"][15, k, :2] - phys["object_poses"][0, k, :2], atol=1e-6)
    # the replay check: pushes played at every other stop of the grid in another variant of their scene
    from dexsim.forecast.ground import REPLAY_GRID

    assert bank.replay_error.shape == (len(bank), len(REPLAY_GRID))
    played = ~np.isnan(bank.replay_error[0])
    assert played[-1] and played.sum() == (len(REPLAY_GRID) + 1) // 2 and (bank.replay_error[:, played] >= 0).all()
    assert bank.replay_error[:, played].min() < 0.05  # a push replayed on the same object mostly does what it did
    bank.save(tmp_path)
    back = ActionBank.load(tmp_path)
    assert back.kinds == bank.kinds and np.allclose(back.params, bank.params, atol=2e-3)
    assert np.allclose(back.replay_error, bank.replay_error, equal_nan=True)
    with pytest.raises(ValueError, match="no clip of"):
        ActionBank.build([clips], kinds=("open_drawer",))


def test_refinement_strength_zero_returns_the_start_and_one_ignores_it(tiny_forecaster) -> None:
    from dexsim.forecast import forecast

    bank = _bank()
    params, visible = grounded_trajectories(bank, "push", np.array([0.0, 0.35, 0.78]), None, 2,
                                            np.random.default_rng(0))  # fmt: skip
    cam = np.tile(_camera(), (2, 16, 1)).astype(np.float32)
    frame = np.zeros((32, 32, 3), np.uint8)
    K = np.array([[30.0, 0, 16], [0, 30.0, 16], [0, 0, 1]])
    keep = forecast(tiny_forecaster, frame, cam[0, 0], K, k=2, horizon=8, init=(params[:, :8], visible[:, :8],
                    cam[:, :8]), strength=0.0)  # fmt: skip
    assert np.allclose(keep.params[:, :, 1, 48:], params[:, :8, 1, 48:], atol=1e-5)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    free = forecast(tiny_forecaster, frame, cam[0, 0], K, k=2, horizon=8, generator=g())
    ignored = forecast(tiny_forecaster, frame, cam[0, 0], K, k=2, horizon=8, generator=g(),
                       init=(params[:, :8], visible[:, :8], cam[:, :8]), strength=1.0)  # fmt: skip
    assert np.allclose(free.params, ignored.params, atol=1e-5)
    with pytest.raises(ValueError, match="init"):
        forecast(tiny_forecaster, frame, cam[0, 0], K, k=2, init=(params[:1], visible[:1], cam[:1]))
    # a strength between steps re-runs whole steps: 0.15 of 10 steps mixes and restarts at t = 0.8, like 0.2
    a, b = (forecast(tiny_forecaster, frame, cam[0, 0], K, k=2, horizon=8, generator=g(), steps=10,
                     init=(params[:, :8], visible[:, :8], cam[:, :8]), strength=s) for s in (0.15, 0.2))  # fmt: skip
    assert np.allclose(a.params, b.params, atol=1e-6) and not np.allclose(a.params, keep.params, atol=1e-3)


def test_forecast_proposals_ground_on_the_task_object(tiny_forecaster, monkeypatch) -> None:
    from dexsim.physics.oracle import Oracle
    from dexsim.physics.spec import randomized_scene
    from dexsim.planners import ForecastProposals, PlanContext
    from dexsim.planners.candidates import task_candidates

    spec = randomized_scene("tabletop", 5)
    oracle = Oracle(spec, 32, 32)
    camera = task_candidates(spec, "push", "red_box", 1, np.random.default_rng(0), 16)[0].trajectory.camera
    start = oracle.world.render_static(camera[:1])[0]
    source = ForecastProposals(tiny_forecaster, strength=0.0, spread=0.0)
    monkeypatch.setattr(source.model, "actions", _bank(), raising=False)
    anchor = object_anchor(spec, "red_box")
    for ctx in (PlanContext(start, camera, oracle.K.numpy(), start, "push the red box away", 16, spec, "push",
                            "red_box"),
                PlanContext(start, camera, oracle.K.numpy(), None, "push the red box away", 16, spec)):  # fmt: skip
        actions = source.propose(ctx, 3, np.random.default_rng(1))
        assert len(actions) == 3
        for a in actions:  # every proposal starts 5 cm from the red box, as the bank's pushes did from theirs
            first = a.trajectory.params[0, 1, 48:51]
            assert a.trajectory.visible[:, 1].all() and abs(np.linalg.norm(first - anchor) - 0.05) < 1e-4
    monkeypatch.setattr(source.model, "actions", None)  # no bank: the ungrounded sampler
    assert len(source.propose(ctx, 2, np.random.default_rng(1))) == 2


def test_refine_shift_by_render_finds_the_goal_pose() -> None:
    from dexsim.forecast.ground import refine_shift_by_render
    from dexsim.physics.oracle import Oracle
    from dexsim.physics.spec import randomized_scene

    cam = _camera()
    spec = randomized_scene("tabletop", 5)
    world = Oracle(spec, 48, 48).world
    k = spec.object_names.index("red_box")
    motion = torch.eye(4, dtype=torch.float64).repeat(1, len(spec.object_names), 1, 1)
    motion[0, k, :2, 3] = torch.tensor([0.05, 0.02], dtype=torch.float64)
    goal = world.render_scene(cam[None], motion).rgb_uint8().numpy()[0]
    found = refine_shift_by_render(world, spec, cam, goal, k, np.array([0.04, 0.03]))  # read 1.4 cm off
    assert np.allclose(found, [0.05, 0.02], atol=1e-9)
    drawer_spec = randomized_scene("drawer", 3)
    world = Oracle(drawer_spec, 48, 48).world
    n = len(drawer_spec.object_names)
    opening = drawer_spec.drawer.travel * 6 / 14
    motion = torch.eye(4, dtype=torch.float64).repeat(1, n, 1, 1)
    motion[0, n - 1, 1, 3] = -opening
    goal = world.render_scene(cam[None], motion).rgb_uint8().numpy()[0]
    found = refine_shift_by_render(world, drawer_spec, cam, goal, n - 1, np.zeros(2), drawer=True)
    assert np.allclose(found, [0.0, -opening], atol=1e-9)
