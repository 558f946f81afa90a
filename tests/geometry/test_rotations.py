from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dexsim.geometry import (
    axis_angle_to_matrix,
    axis_angle_to_quat,
    matrix_to_axis_angle,
    matrix_to_quat,
    matrix_to_rotation_6d,
    quat_canonical,
    quat_conjugate,
    quat_multiply,
    quat_normalize,
    quat_rotate,
    quat_slerp,
    quat_to_axis_angle,
    quat_to_matrix,
    random_quat,
    rotation_6d_to_matrix,
)

finite = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
quats = st.lists(finite, min_size=4, max_size=4).filter(lambda v: np.linalg.norm(v) > 0.1)
# axis-angle vectors with angle strictly below pi (the representation is unique there)
axis_angles = st.tuples(
    st.lists(finite, min_size=3, max_size=3).filter(lambda v: np.linalg.norm(v) > 0.1),
    st.floats(0.0, math.pi - 1e-3),
).map(lambda a: (np.asarray(a[0]) / np.linalg.norm(a[0]) * a[1]).tolist())


def t64(v: object) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def assert_same_quat(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> None:
    """q and -q are the same rotation (the sign is arbitrary when w is ~0)."""
    assert min(float((a - b).abs().max()), float((a + b).abs().max())) <= atol, (a, b)


@settings(max_examples=200, deadline=None)
@given(quats)
def test_quat_matrix_round_trip(q: list[float]) -> None:
    qn = quat_canonical(quat_normalize(t64(q)))
    back = matrix_to_quat(quat_to_matrix(qn))
    assert_same_quat(back, qn)
    assert back[0] >= 0


@settings(max_examples=200, deadline=None)
@given(quats)
def test_quat_matrix_is_rotation(q: list[float]) -> None:
    m = quat_to_matrix(t64(q))
    assert torch.allclose(m @ m.T, torch.eye(3, dtype=torch.float64), atol=1e-9)
    assert torch.det(m).item() == pytest.approx(1.0, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(axis_angles)
def test_axis_angle_round_trip(aa: list[float]) -> None:
    a = t64(aa)
    assert torch.allclose(quat_to_axis_angle(axis_angle_to_quat(a)), a, atol=1e-6)
    assert torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(a)), a, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(quats)
def test_6d_round_trip(q: list[float]) -> None:
    m = quat_to_matrix(t64(q))
    assert torch.allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(m)), m, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(quats, quats, st.lists(finite, min_size=3, max_size=3))
def test_multiply_matches_matrix_product(a: list[float], b: list[float], v: list[float]) -> None:
    qa, qb = quat_normalize(t64(a)), quat_normalize(t64(b))
    m = quat_to_matrix(quat_multiply(qa, qb))
    assert torch.allclose(m, quat_to_matrix(qa) @ quat_to_matrix(qb), atol=1e-9)
    assert torch.allclose(quat_rotate(qa, t64(v)), quat_to_matrix(qa) @ t64(v), atol=1e-9)
    ident = quat_multiply(qa, quat_conjugate(qa))
    assert torch.allclose(ident, t64([1, 0, 0, 0]), atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(quats, quats, st.floats(0.0, 1.0))
def test_slerp_ends_and_constant_speed(a: list[float], b: list[float], t: float) -> None:
    qa, qb = quat_normalize(t64(a)), quat_normalize(t64(b))
    assert_same_quat(quat_slerp(qa, qb, 0.0), qa)
    assert_same_quat(quat_slerp(qa, qb, 1.0), qb)

    # angle(qa, slerp(t)) = t * angle(qa, qb) along the shorter arc
    def angle(x: torch.Tensor, y: torch.Tensor) -> float:
        return 2 * math.acos(min(1.0, abs(float((x * y).sum()))))

    total = angle(qa, qb)
    assert angle(qa, quat_slerp(qa, qb, t)) == pytest.approx(t * total, abs=1e-5)


def test_small_angles_are_exact() -> None:
    a = t64([1e-9, -2e-9, 3e-10])
    assert torch.allclose(quat_to_axis_angle(axis_angle_to_quat(a)), a, atol=1e-15)
    assert torch.allclose(axis_angle_to_matrix(t64([0.0, 0.0, 0.0])), torch.eye(3, dtype=torch.float64))


def test_matrix_to_quat_near_pi() -> None:
    for axis in ([1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]):
        aa = t64(axis) / np.linalg.norm(axis) * (math.pi - 1e-7)
        m = axis_angle_to_matrix(aa)
        assert torch.allclose(quat_to_matrix(matrix_to_quat(m)), m, atol=1e-9)


def test_random_quat_is_seeded_and_uniform() -> None:
    a = random_quat(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    b = random_quat(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(a, b)
    assert torch.allclose(a.norm(dim=-1), torch.ones(20000, dtype=torch.float64))
    # uniform rotations rotate +z to directions uniform on the sphere: mean close to zero
    z = quat_rotate(a, t64([0.0, 0.0, 1.0]).expand(20000, 3))
    assert z.mean(0).abs().max() < 0.03


def test_errors_name_argument_and_value() -> None:
    with pytest.raises(ValueError, match=r"`q` must have shape \(\.\.\., 4\), got \(3,\)"):
        quat_to_matrix(t64([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"`q` must be finite, got nan"):
        quat_to_matrix(t64([float("nan"), 0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"non-zero norm, got \[0.0, 0.0, 0.0, 0.0\]"):
        quat_normalize(t64([0.0, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"`axis_angle` must be finite, got inf"):
        axis_angle_to_quat(t64([float("inf"), 0.0, 0.0]))
    with pytest.raises(TypeError, match="`q` must be array-like"):
        quat_normalize(object())  # type: ignore[arg-type]
