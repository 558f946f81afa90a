from __future__ import annotations

import numpy as np
import pytest
import torch

from dexsim.geometry import quat_to_axis_angle, random_quat
from dexsim.hands import HandModel, joint_limits
from dexsim.hands.ik import fit_hand
from dexsim.hands.skeleton import ANATOMICAL_FRAMES


def plausible_poses(n: int, g: torch.Generator) -> torch.Tensor:
    """Random finger poses inside 80% of the human joint limits: (n, 45)."""
    lim = joint_limits(torch.float64)[1:]
    u = torch.rand(n, 15, 3, generator=g, dtype=torch.float64)
    comp = lim[..., 0] * 0.8 + u * (lim[..., 1] - lim[..., 0]) * 0.8
    return torch.einsum("jab,njb->nja", ANATOMICAL_FRAMES[1:], comp).reshape(n, 45)


@pytest.mark.parametrize("side", ["left", "right"])
def test_round_trip_mean_error_below_5mm(side: str) -> None:
    g = torch.Generator().manual_seed(1 if side == "left" else 2)
    n = 12
    m = HandModel(side, limits="off")  # type: ignore[arg-type]
    hp = plausible_poses(n, g)
    if side == "left":
        hp = (hp.reshape(n, 15, 3) * torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64)).reshape(n, 45)
    go = quat_to_axis_angle(random_quat(n, g, torch.float64))
    tr = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.3
    target = m(go, hp, tr, with_mesh=False).joints
    res = fit_hand(target, side, smooth=0.0)  # type: ignore[arg-type]
    assert res.error.mean() < 0.005
    assert (res.joints - target.float()).norm(dim=-1).mean() < 0.005


def test_missing_joints_are_filled() -> None:
    g = torch.Generator().manual_seed(3)
    m = HandModel("right", limits="off")
    target = m(torch.zeros(4, 3), plausible_poses(4, g), torch.zeros(4, 3), with_mesh=False).joints
    valid = torch.ones(4, 21, dtype=torch.bool)
    valid[:, 13] = False  # no thumb CMC, as from Aria
    corrupted = target.clone()
    corrupted[:, 13] = float("nan")
    res = fit_hand(corrupted, "right", valid=valid, smooth=0.0)
    assert (res.joints[:, 13] - target[:, 13].float()).norm(dim=-1).mean() < 0.008
    with pytest.raises(ValueError, match=r"`valid` must have shape \(4, 21\)"):
        fit_hand(target, "right", valid=torch.ones(4, 20, dtype=torch.bool))


def test_fit_shape_recovers_hand_size() -> None:
    m = HandModel("right", limits="off")
    betas = torch.zeros(10, dtype=torch.float64)
    betas[0] = 2.0  # 10% larger hand
    target = m(torch.zeros(3), torch.zeros(45), torch.zeros(3), betas, with_mesh=False).joints[None]
    res = fit_hand(target, "right", fit_shape=True)
    # size, finger length and palm width are fitted together: the fitted hand is as long
    rest = m.rest_joints(res.betas.double())
    assert float(rest[18].norm()) == pytest.approx(float(target[0, 18].norm()), rel=0.025)
    assert res.error.mean() < 0.002
    assert np.isfinite(res.params.numpy()).all()
