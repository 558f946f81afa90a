from __future__ import annotations

import itertools
import math

import pytest
import torch

from dexsim.hands import HandModel, check_pose_limits, joint_limits, rest_joints
from dexsim.hands.model import mirror_params
from dexsim.hands.skeleton import ANATOMICAL_FRAMES, BONES, FINGER_CHAINS


def flexion_pose(flex: list[float]) -> torch.Tensor:
    """(45,) rotations that flex joints 1-15 by ``flex`` radians about their anatomical axes."""
    return torch.stack([ANATOMICAL_FRAMES[j + 1][:, 2] * flex[j] for j in range(15)]).reshape(45).float()


def test_rest_skeleton_is_anthropometric() -> None:
    j = rest_joints()
    assert j.shape == (21, 3)
    assert 0.17 < float(j[18].norm()) < 0.20  # wrist to middle fingertip: hand length
    for name, chain in FINGER_CHAINS.items():
        for a, b in itertools.pairwise(chain[1:]):
            seg = float((j[b] - j[a]).norm())
            assert 0.015 < seg < 0.05, (name, a, b, seg)
    # thumb on the -z side, little finger on +z, for the right hand
    assert j[16, 2] < j[17, 2] < j[18, 2] < j[19, 2] < j[20, 2]


def test_betas_scale_the_hand() -> None:
    b = torch.zeros(2, 10)
    b[1, 0] = 2.0
    j = rest_joints(b)
    assert float(j[1, 18].norm() / j[0, 18].norm()) == pytest.approx(1.10, abs=1e-4)


def test_forward_kinematics_keeps_bone_lengths_and_flexes_towards_the_palm() -> None:
    m = HandModel("right")
    rest = m(torch.zeros(3), torch.zeros(45), torch.zeros(3))
    curled = m(torch.zeros(3), flexion_pose([1.0, 1.0, 0.8] * 4 + [0.3, 0.4, 0.5]), torch.zeros(3))
    for a, b in BONES:
        la = (rest.joints[b] - rest.joints[a]).norm()
        lb = (curled.joints[b] - curled.joints[a]).norm()
        assert float(la) == pytest.approx(float(lb), abs=1e-6)
    # fingertips move towards the palm side (-y) and back towards the wrist
    assert (curled.joints[17:, 1] < rest.joints[17:, 1] - 0.01).all()
    assert (curled.joints[17:21, 0] < rest.joints[17:21, 0]).all()
    assert rest.vertices.shape[0] > 500 and rest.faces.shape[1] == 3


def test_global_orient_and_transl() -> None:
    m = HandModel("right")
    go = torch.tensor([0.0, 0.0, math.pi / 2])
    out = m(go, torch.zeros(45), torch.tensor([1.0, 2.0, 3.0]))
    rest = rest_joints()
    expected = torch.stack((-rest[:, 1], rest[:, 0], rest[:, 2]), -1) + torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(out.joints, expected, atol=1e-5)
    # the mesh follows: all vertices within a few cm of some joint
    d = torch.cdist(out.vertices, out.joints).min(-1).values
    assert d.max() < 0.05


def test_left_hand_is_the_mirror_image() -> None:
    hp = flexion_pose([0.5, 0.6, 0.3] * 4 + [0.2, 0.3, 0.4])
    params = torch.cat((torch.tensor([0.2, -0.4, 0.3]), hp, torch.tensor([0.1, 0.2, 0.3])))
    right = HandModel("right")(params[:3], params[3:48], params[48:])
    mp = mirror_params(params)
    left = HandModel("left")(mp[:3], mp[3:48], mp[48:])
    mirror = torch.tensor([1.0, 1.0, -1.0])
    assert torch.allclose(left.joints, right.joints * mirror, atol=1e-5)
    assert torch.allclose(left.vertices, right.vertices * mirror, atol=1e-5)


def test_batched_over_time_and_hands() -> None:
    m = HandModel("left")
    out = m(torch.zeros(5, 2, 3), torch.zeros(5, 2, 45), torch.randn(5, 2, 3))
    assert out.joints.shape == (5, 2, 21, 3) and out.vertices.shape[:2] == (5, 2)


def test_limits_clamp_warn_or_reject() -> None:
    bad = flexion_pose([3.0] + [0.0] * 14)  # index MCP bent 3 rad: impossible
    with pytest.warns(UserWarning, match=r"index_mcp flexion = 3\.000 rad, allowed \[-0\.45, 1\.65\]"):
        clamped = check_pose_limits(bad)
    comp = torch.einsum("ab,a->b", ANATOMICAL_FRAMES[1].float(), clamped[:3])
    assert float(comp[2]) == pytest.approx(float(joint_limits()[1, 2, 1]), abs=1e-5)
    with pytest.raises(ValueError, match="index_mcp flexion"):
        HandModel("right", limits="strict")(torch.zeros(3), bad, torch.zeros(3))
    ok = flexion_pose([0.5] * 15)
    assert torch.allclose(check_pose_limits(ok), ok)  # a plausible pose is left alone


def test_bad_input_names_the_argument() -> None:
    m = HandModel("right")
    with pytest.raises(ValueError, match=r"`hand_pose` must have shape \(\.\.\., 45\), got \(44,\)"):
        m(torch.zeros(3), torch.zeros(44), torch.zeros(3))
    with pytest.raises(ValueError, match="`transl` must be finite, got nan"):
        m(torch.zeros(3), torch.zeros(45), torch.tensor([0.0, float("nan"), 0.0]))
    with pytest.raises(ValueError, match="`side` must be 'left' or 'right', got 'middle'"):
        HandModel("middle")  # type: ignore[arg-type]


def test_missing_mano_files_say_what_to_download() -> None:
    pytest.importorskip("smplx")
    with pytest.raises(FileNotFoundError, match=r"MANO_RIGHT\.pkl not found: download MANO"):
        HandModel("right", mano_model_dir="/nonexistent")


def test_real_mano_when_available() -> None:
    import os

    folder = os.environ.get("DEXSIM_MANO_DIR")
    if not folder:
        pytest.skip("set DEXSIM_MANO_DIR to a folder with MANO_RIGHT.pkl to test the real MANO")
    m = HandModel("right", mano_model_dir=folder)
    out = m(torch.zeros(3), torch.zeros(45), torch.zeros(3))
    assert out.joints.shape == (21, 3) and out.vertices.shape == (778, 3)


def test_params_to_joints_poses_both_hands_and_blanks_the_hidden() -> None:
    import numpy as np

    from dexsim.hands.model import params_to_joints

    params = np.zeros((3, 2, 51))
    params[:, :, 48:] = [[0.1, 0.2, 0.8], [0.3, 0.2, 0.8]]
    visible = np.array([[True, True], [True, False], [False, False]])
    joints = params_to_joints(params, visible)
    assert joints.shape == (3, 2, 21, 3) and joints.dtype == np.float64
    for h, side in enumerate(("left", "right")):
        p = torch.from_numpy(params[:1, h])
        want = HandModel(side, limits="off")(p[:, :3], p[:, 3:48], p[:, 48:], with_mesh=False).joints[0].numpy()
        assert np.allclose(joints[0, h], want)
    assert not joints[1, 1].any() and not joints[2].any() and np.allclose(joints[1, 0], joints[0, 0])
    with pytest.raises(ValueError, match=r"\(T, 2, 51\)"):
        params_to_joints(np.zeros((3, 51)))
