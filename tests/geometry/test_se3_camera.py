from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dexsim.geometry import (
    PinholeIntrinsics,
    in_frustum,
    look_at,
    make_se3,
    matrix_to_pose7,
    pixel_rays,
    plucker_rays,
    pose7_to_matrix,
    pose7_to_viewmat,
    project_points,
    quat_canonical,
    quat_normalize,
    se3_inverse,
    transform_points,
    unproject_depth,
    viewmat_to_pose7,
)

finite = st.floats(-5.0, 5.0, allow_nan=False, allow_infinity=False)
poses7 = st.tuples(
    st.lists(finite, min_size=3, max_size=3),
    st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda v: np.linalg.norm(v) > 0.1),
).map(lambda p: p[0] + p[1])


def t64(v: object) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def canonical_pose(p: torch.Tensor) -> torch.Tensor:
    return torch.cat((p[:3], quat_canonical(quat_normalize(p[3:]))))


@settings(max_examples=200, deadline=None)
@given(poses7)
def test_pose7_matrix_round_trip(p: list[float]) -> None:
    pose = canonical_pose(t64(p))
    for back in (matrix_to_pose7(pose7_to_matrix(pose)), viewmat_to_pose7(pose7_to_viewmat(pose))):
        assert torch.allclose(back[:3], pose[:3], atol=1e-6)
        # q and -q are one rotation; the sign is arbitrary when w is ~0
        err = min(float((back[3:] - pose[3:]).abs().max()), float((back[3:] + pose[3:]).abs().max()))
        assert err <= 1e-6


@settings(max_examples=200, deadline=None)
@given(poses7, st.lists(st.lists(finite, min_size=3, max_size=3), min_size=1, max_size=5))
def test_inverse_undoes_transform(p: list[float], pts: list[list[float]]) -> None:
    t = pose7_to_matrix(t64(p))
    x = t64(pts)
    assert torch.allclose(transform_points(se3_inverse(t), transform_points(t, x)), x, atol=1e-9)
    assert torch.allclose(t @ se3_inverse(t), torch.eye(4, dtype=torch.float64), atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(finite, min_size=3, max_size=3),
    st.lists(finite, min_size=3, max_size=3),
    st.floats(0.5, 10.0),
)
def test_look_at_centres_target_and_unprojects(eye: list[float], target: list[float], depth: float) -> None:
    e, tg = t64(eye), t64(target)
    d = tg - e
    if d.norm() < 1e-2 or torch.linalg.norm(torch.cross(d / d.norm(), t64([0, 0, 1]), dim=0)) < 1e-2:
        return  # degenerate: eye==target or looking straight up/down
    intr = PinholeIntrinsics.from_fov(60.0, 64, 48)
    vm = look_at(e, tg)
    uv, z = project_points(tg[None], vm, intr.K(torch.float64))
    assert torch.allclose(uv[0], t64([32.0, 24.0]), atol=1e-6)
    assert z[0].item() == pytest.approx(float(d.norm()), abs=1e-9)
    # camera y points down in the world (z-up world): the world up vector projects to -y in camera
    up_cam = vm[:3, :3] @ t64([0.0, 0.0, 1.0])
    assert up_cam[1] < 1e-9
    # unprojecting a constant-depth map and projecting again lands on the pixel centres
    dm = torch.full((48, 64), depth, dtype=torch.float64)
    pts = unproject_depth(dm, vm, intr.K(torch.float64))
    uv2, z2 = project_points(pts.reshape(-1, 3), vm, intr.K(torch.float64))
    v, u = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    assert torch.allclose(uv2, torch.stack((u, v), -1).reshape(-1, 2).double(), atol=1e-6)
    assert torch.allclose(z2, torch.full_like(z2, depth), atol=1e-9)


def test_intrinsics_resize_crop_keep_rays() -> None:
    intr = PinholeIntrinsics(500.0, 480.0, 320.0, 240.0, 640, 480)
    half = intr.resize(320, 240)
    assert (half.fx, half.fy, half.cx, half.cy) == (250.0, 240.0, 160.0, 120.0)
    assert half.fov_y == pytest.approx(intr.fov_y)
    crop = intr.crop(100, 50, 200, 100)
    # a world point projects to the same pixel minus the crop offset
    pt = t64([[0.3, -0.2, 2.0]])
    eye = torch.eye(4, dtype=torch.float64)
    uv, _ = project_points(pt, eye, intr.K(torch.float64))
    uvc, _ = project_points(pt, eye, crop.K(torch.float64))
    assert torch.allclose(uvc, uv - t64([100.0, 50.0]))
    assert PinholeIntrinsics.from_K(intr.K(), 640, 480) == intr


def test_intrinsics_errors() -> None:
    with pytest.raises(ValueError, match=r"`fx` must be a finite number > 0, got -1\.0"):
        PinholeIntrinsics(-1.0, 1.0, 0.0, 0.0, 4, 4)
    with pytest.raises(ValueError, match="`width` must be a positive int, got 0"):
        PinholeIntrinsics(1.0, 1.0, 0.0, 0.0, 0, 4)
    with pytest.raises(ValueError, match="`cx` must be finite, got nan"):
        PinholeIntrinsics(1.0, 1.0, float("nan"), 0.0, 4, 4)
    with pytest.raises(ValueError, match="exceeds the image"):
        PinholeIntrinsics(1.0, 1.0, 0.0, 0.0, 4, 4).crop(2, 2, 3, 3)
    with pytest.raises(ValueError, match="`fov_y_deg` must be in"):
        PinholeIntrinsics.from_fov(180.0, 4, 4)


def test_frustum_and_plucker() -> None:
    intr = PinholeIntrinsics.from_fov(90.0, 32, 32)
    K = intr.K(torch.float64)
    vm = look_at(t64([0.0, -2.0, 0.0]), t64([0.0, 0.0, 0.0]))
    pts = t64([[0.0, 0.0, 0.0], [0.0, -3.0, 0.0], [5.0, 0.0, 0.0], [0.0, 100.0, 0.0]])
    mask = in_frustum(pts, vm, K, 32, 32, far=50.0)
    assert mask.tolist() == [True, False, False, False]
    pl = plucker_rays(vm, K, 32, 32)
    assert pl.shape == (32, 32, 6)
    d, m = pl[..., :3], pl[..., 3:]
    assert torch.allclose(d.norm(dim=-1), torch.ones(32, 32, dtype=torch.float64))
    # moment is orthogonal to direction, and invariant to the point taken on the ray
    assert torch.allclose((d * m).sum(-1), torch.zeros(32, 32, dtype=torch.float64), atol=1e-12)
    o, _ = pixel_rays(vm, K, 32, 32)
    assert torch.allclose(torch.cross(o + 3.7 * d, d, dim=-1), m, atol=1e-12)
    # batched cameras
    vms = torch.stack((vm, look_at(t64([2.0, 0.0, 1.0]), t64([0.0, 0.0, 0.0]))))
    assert plucker_rays(vms, K, 8, 4).shape == (2, 4, 8, 6)


def test_se3_errors() -> None:
    bad = torch.eye(4, dtype=torch.float64)
    bad[3, 0] = 2.0
    with pytest.raises(ValueError, match=r"last row \[0, 0, 0, 1\], got \[2.0, 0.0, 0.0, 1.0\]"):
        se3_inverse(bad)
    with pytest.raises(ValueError, match=r"`pose` must have shape \(\.\.\., 7\), got \(6,\)"):
        pose7_to_matrix(torch.zeros(6))
    with pytest.raises(ValueError, match="`points` must be finite"):
        transform_points(torch.eye(4), t64([[0.0, math.inf, 0.0]]))
    with pytest.raises(ValueError, match="must not be parallel"):
        look_at(t64([0.0, 0.0, 0.0]), t64([0.0, 0.0, 1.0]))
    assert make_se3(torch.eye(3).expand(2, 3, 3), torch.zeros(3)).shape == (2, 4, 4)
