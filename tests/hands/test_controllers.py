"""Hand controllers: pure step functions with bounded spaces, validation at the door, clamping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dexsim.hands.controllers import (
    DELTA_SCALE,
    ActionError,
    Chunk,
    HandState,
    initial_state,
    make_controller,
)
from dexsim.hands.model import HandModel

WORKSPACE = (np.array([-0.5, -0.2, 0.75]), np.array([0.5, 0.6, 1.25]))
TABLE = (0.0, 0.35, 0.75)


def _state() -> HandState:
    return initial_state(TABLE, None, np.random.default_rng(0))


def _copy(s: HandState) -> dict[str, np.ndarray]:
    return {k: np.array(getattr(s, k)) for k in ("camera", "palm", "wrist", "grasp", "visible", "params")}


def test_delta_controller_is_a_pure_function_of_state_and_action() -> None:
    ctrl = make_controller("delta", 4, WORKSPACE)
    s0 = _state()
    before = _copy(s0)
    a = np.zeros(21)
    a[5:8] = [1.0, 0.0, 0.0]  # left wrist 8 cm to +x
    a[12] = 1.0  # left hand in view
    chunk, s1 = ctrl.step(s0, a)
    chunk2, s2 = ctrl.step(s0, a)
    for k, v in _copy(s0).items():
        assert np.array_equal(v, before[k]), k  # the state is not changed
    assert np.array_equal(chunk.params, chunk2.params) and np.array_equal(s1.palm, s2.palm)
    assert isinstance(chunk, Chunk) and chunk.cameras.shape == (4, 7) and chunk.params.shape == (4, 2, 51)
    assert np.allclose(s1.palm[0] - s0.palm[0], [DELTA_SCALE["wrist_move"], 0, 0])
    assert chunk.visible[:, 0].all() and not chunk.visible[:, 1].any()
    # the posed wrist follows the palm: the hand model's joints move by the same 8 cm at the end
    model = HandModel("left", limits="clamp")

    def wrist(p: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(p.astype(np.float32))[None]
        return model(t[:, :3], t[:, 3:48], t[:, 48:]).joints[0, 0].double().numpy()

    assert np.allclose(wrist(chunk.params[-1, 0]) - wrist(s0.params[0]), [0.08, 0, 0], atol=1e-5)
    # interpolated over the chunk: a quarter of the way after the first frame
    assert np.allclose(wrist(chunk.params[0, 0]) - wrist(s0.params[0]), [0.02, 0, 0], atol=1e-5)


def test_delta_camera_turn_keeps_unit_quaternions() -> None:
    ctrl = make_controller("delta", 3, WORKSPACE)
    a = np.zeros(21)
    a[3:5] = [1.0, -0.5]
    chunk, _ = ctrl.step(_state(), a)
    assert np.allclose(np.linalg.norm(chunk.cameras[:, 3:], axis=1), 1.0)
    assert np.allclose(chunk.cameras[:, :3], _state().camera[:3])  # turning does not move the eye


def _mano(chunk: int = 2) -> dict[str, np.ndarray]:
    s = _state()
    return {"camera": np.tile(s.camera, (chunk, 1)), "params": np.tile(s.params, (chunk, 1, 1)),
            "visible": np.ones((chunk, 2), np.int8)}  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("camera", np.zeros((2, 7)), "zero quaternion at frame 0"),
        ("camera", np.full((2, 7), np.nan), "non-finite"),
        ("camera", np.zeros((14,)), r"shape \(2, 7\)"),
        ("params", np.zeros((2, 102)), r"shape \(2, 2, 51\)"),
        ("params", np.zeros((4, 2, 51)), r"shape \(2, 2, 51\)"),
        ("visible", np.ones(4), r"shape \(2, 2\)"),
        ("visible", np.full((2, 2), 3), "0/1 or bool"),
    ],
)
def test_mano_actions_of_the_wrong_layout_or_values_are_refused(key: str, value: np.ndarray, message: str) -> None:
    ctrl = make_controller("mano", 2, WORKSPACE)
    a = _mano()
    a[key] = value
    with pytest.raises(ActionError, match=message):
        ctrl.step(_state(), a)
    assert issubclass(ActionError, ValueError)


def test_mano_unit_quaternions_pass_bit_for_bit_and_others_are_normalised() -> None:
    ctrl = make_controller("mano", 2, WORKSPACE, clamp="silent")
    a = _mano()
    chunk, _ = ctrl.step(_state(), a)
    assert np.array_equal(chunk.cameras, a["camera"])
    a["camera"] = a["camera"].copy()
    a["camera"][:, 3:] *= 0.5
    chunk, _ = ctrl.step(_state(), a)
    assert np.allclose(np.linalg.norm(chunk.cameras[:, 3:], axis=1), 1.0)


def test_keypoints_nan_is_refused_unless_declared_missing() -> None:
    ctrl = make_controller("keypoints", 2, WORKSPACE, clamp="silent")
    s = _state()
    a = _mano()
    model = HandModel("right", limits="clamp")
    p = torch.from_numpy(s.params[1].astype(np.float32))[None]
    right = model(p[:, :3], p[:, 3:48], p[:, 48:]).joints[0].double().numpy()
    joints = np.tile(np.stack([right - [0.3, 0, 0], right]), (2, 1, 1, 1))
    action = {"camera": a["camera"], "joints": joints.copy(), "visible": a["visible"]}
    action["joints"][0, 1, 5] = np.nan
    with pytest.raises(ActionError, match="NaN at frame 0, hand 1, joint 5"):
        ctrl.step(s, action)
    valid = np.ones((2, 2, 21), bool)
    valid[0, 1, 5] = False
    chunk, _ = ctrl.step(s, {**action, "joint_valid": valid})
    # the missing joint is not guessed at the origin: the fitted wrist stays where the keypoints put it
    q = torch.from_numpy(chunk.params[0, 1].astype(np.float32))[None]
    fitted = model(q[:, :3], q[:, 3:48], q[:, 48:]).joints[0].double().numpy()
    assert np.linalg.norm(fitted[0] - right[0]) < 0.02


def test_out_of_bounds_values_follow_the_clamp_policy() -> None:
    a = np.zeros(21)
    a[0] = 3.0
    with pytest.warns(UserWarning, match="clamped"):
        make_controller("delta", 2, WORKSPACE, clamp="warn").step(_state(), a)
    with pytest.raises(ActionError, match="outside its bounds"):
        make_controller("delta", 2, WORKSPACE, clamp="error").step(_state(), a)
    with pytest.raises(ValueError, match="action_mode"):
        make_controller("joystick", 2, WORKSPACE)
    with pytest.raises(ValueError, match="chunk"):
        make_controller("delta", 0, WORKSPACE)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=21, max_size=21))
def test_delta_chunks_stay_in_the_workspace_and_in_the_action_space(values: list[float]) -> None:
    ctrl = make_controller("delta", 2, WORKSPACE, clamp="error")
    a = np.asarray(values)
    assert ctrl.action_space.contains(a.astype(np.float32))
    chunk, s = ctrl.step(_state(), a)
    lo, hi = WORKSPACE
    assert ((s.palm >= lo - 1e-9) & (s.palm <= hi + 1e-9)).all()
    assert np.isfinite(chunk.params).all() and np.allclose(np.linalg.norm(chunk.cameras[:, 3:], axis=1), 1.0)
    assert ((s.grasp >= 0) & (s.grasp <= 1)).all()


def test_hand_params_batched_equals_one_frame_at_a_time() -> None:
    """The delta controller poses all frames of a chunk in one batched call: it must give what posing each frame
    (and each hand, the left one mirrored) separately gives."""
    from dexsim.geometry import axis_angle_to_matrix
    from dexsim.hands.controllers import SIDES, hand_params
    from dexsim.hands.poses import grip_pose, palm_params

    rng = np.random.default_rng(3)
    palm = rng.uniform(-0.3, 0.3, (5, 2, 3))
    wrist = axis_angle_to_matrix(torch.from_numpy(rng.uniform(-2.0, 2.0, (5, 2, 3)))).numpy()
    grasp = rng.uniform(0.0, 1.0, (5, 2))
    batched = hand_params(palm, wrist, grasp)
    assert batched.shape == (5, 2, 51)
    for i in range(5):
        for h, side in enumerate(SIDES):
            one = palm_params(wrist[i, h], palm[i, h], grip_pose(float(grasp[i, h])), side)
            np.testing.assert_allclose(batched[i, h], one, atol=1e-12)
    assert not np.allclose(batched[:, 0, 3:48], batched[:, 1, 3:48])  # the left hand's fingers are mirrored
