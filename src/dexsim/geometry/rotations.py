"""Rotations: quaternions (w-first), axis-angle, rotation matrices and the 6D form.

Every function is batched over leading dimensions and works on float32 or float64
tensors. Quaternions are ``[w, x, y, z]`` (Hamilton convention, active rotation).
"""

from __future__ import annotations

import torch

from .._validate import tensor_arg

__all__ = [
    "axis_angle_to_matrix",
    "axis_angle_to_quat",
    "matrix_to_axis_angle",
    "matrix_to_quat",
    "matrix_to_rotation_6d",
    "quat_canonical",
    "quat_conjugate",
    "quat_multiply",
    "quat_normalize",
    "quat_rotate",
    "quat_slerp",
    "quat_to_axis_angle",
    "quat_to_matrix",
    "random_quat",
    "rotation_6d_to_matrix",
]


def quat_normalize(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternion. ``q``: (..., 4) w-first. Raises on a zero-norm quaternion."""
    q = tensor_arg("q", q, (4,))
    norm = q.norm(dim=-1, keepdim=True)
    if bool((norm < 1e-12).any()):
        idx = tuple(int(i) for i in torch.nonzero(norm[..., 0] < 1e-12)[0])
        raise ValueError(f"`q` must have a non-zero norm, got {q[idx].tolist()} at index {idx}")
    return q / norm


def quat_canonical(q: torch.Tensor) -> torch.Tensor:
    """The representative of ``q`` (..., 4) with ``w >= 0``: q and -q are one rotation.

    When ``w == 0`` exactly, the first non-zero of ``x, y, z`` is made positive, so the choice is unique.
    """
    nonzero = q != 0
    first = torch.argmax(nonzero.to(torch.int8), dim=-1, keepdim=True)  # first non-zero component
    lead = torch.gather(q, -1, first)
    return torch.where(lead < 0, -q, q)


def quat_conjugate(q: torch.Tensor) -> torch.Tensor:
    """Conjugate (= inverse for unit quaternions). ``q``: (..., 4)."""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``). Shapes (..., 4), broadcast."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        dim=-1,
    )


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors ``v`` (..., 3) by unit quaternions ``q`` (..., 4)."""
    u = q[..., 1:]
    w = q[..., :1]
    uv = torch.cross(u.expand_as(v), v, dim=-1)
    return v + 2.0 * (w * uv + torch.cross(u.expand_as(v), uv, dim=-1))


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) from quaternions (..., 4); ``q`` is normalised first."""
    q = quat_normalize(q)
    w, x, y, z = q.unbind(-1)
    two = 2.0
    m = torch.stack(
        (
            1 - two * (y * y + z * z), two * (x * y - w * z), two * (x * z + w * y),
            two * (x * y + w * z), 1 - two * (x * x + z * z), two * (y * z - w * x),
            two * (x * z - w * y), two * (y * z + w * x), 1 - two * (x * x + y * y),
        ),
        dim=-1,
    )  # fmt: skip
    return m.reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (..., 4) with ``w >= 0`` from rotation matrices (..., 3, 3).

    Uses the branch with the largest diagonal term (Shepperd's method), stable near 180 degrees.
    """
    m = tensor_arg("m", m, (3, 3))
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate quaternions scaled by 4*component; pick the best conditioned per element.
    cands = torch.stack(
        (
            torch.stack((1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                         m[..., 1, 0] - m[..., 0, 1]), -1),
            torch.stack((m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                         m[..., 0, 2] + m[..., 2, 0]), -1),
            torch.stack((m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                         m[..., 1, 2] + m[..., 2, 1]), -1),
            torch.stack((m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                         1 - m00 - m11 + m22), -1),
        ),
        dim=-2,
    )  # (..., 4 candidates, 4)  # fmt: skip
    diag = torch.stack((m00 + m11 + m22, m00, m11, m22), dim=-1)
    best = diag.argmax(dim=-1, keepdim=True)
    q = torch.gather(cands, -2, best[..., None].expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return quat_canonical(q)


def axis_angle_to_quat(aa: torch.Tensor) -> torch.Tensor:
    """Quaternions (..., 4) from axis-angle vectors (..., 3) (direction = axis, norm = angle in radians)."""
    aa = tensor_arg("axis_angle", aa, (3,))
    angle = aa.norm(dim=-1, keepdim=True)
    half = 0.5 * angle
    # sin(half)/angle with its Taylor series near zero so that gradients and small angles stay exact.
    small = angle < 1e-6
    safe = torch.where(small, torch.ones_like(angle), angle)
    k = torch.where(small, 0.5 - angle * angle / 48.0, torch.sin(half) / safe)
    return torch.cat((torch.cos(half), aa * k), dim=-1)


def quat_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors (..., 3) with angle in [0, pi] from quaternions (..., 4)."""
    q = quat_canonical(quat_normalize(q))
    vec = q[..., 1:]
    sin_half = vec.norm(dim=-1, keepdim=True)
    half = torch.atan2(sin_half, q[..., :1])
    small = sin_half < 1e-6
    safe = torch.where(small, torch.ones_like(sin_half), sin_half)
    # Near zero, 2*atan2(s, w)/s -> 2/w (w ~ 1 there after canonicalisation).
    k = torch.where(small, 2.0 / q[..., :1].clamp_min(1e-12), 2.0 * half / safe)
    return vec * k


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) from axis-angle (..., 3) (Rodrigues through the quaternion)."""
    return quat_to_matrix(axis_angle_to_quat(aa))


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3), angle in [0, pi], from rotation matrices (..., 3, 3)."""
    return quat_to_axis_angle(matrix_to_quat(m))


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) from the continuous 6D form (..., 6) of Zhou et al. 2019.

    The 6 numbers are the first two *columns* of the matrix; Gram-Schmidt makes them orthonormal.
    """
    d6 = tensor_arg("d6", d6, (6,))
    a1, a2 = d6[..., :3], d6[..., 3:]
    n1 = a1.norm(dim=-1, keepdim=True)
    if bool((n1 < 1e-12).any()):
        raise ValueError(f"`d6` first column must be non-zero, got {d6[torch.nonzero(n1[..., 0] < 1e-12)[0]]}")
    b1 = a1 / n1
    a2p = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    n2 = a2p.norm(dim=-1, keepdim=True)
    if bool((n2 < 1e-12).any()):
        raise ValueError("`d6` columns must not be parallel")
    b2 = a2p / n2
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def matrix_to_rotation_6d(m: torch.Tensor) -> torch.Tensor:
    """The 6D form (..., 6): the first two columns of ``m`` (..., 3, 3)."""
    m = tensor_arg("m", m, (3, 3))
    return torch.cat((m[..., :, 0], m[..., :, 1]), dim=-1)


def quat_slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical linear interpolation along the shorter arc.

    Args:
        q0, q1: (..., 4) unit quaternions.
        t: (...) or scalar in [0, 1]; broadcast against the batch.
    Returns:
        (..., 4) unit quaternions; ``t=0`` gives ``q0``, ``t=1`` gives ``q1`` (up to sign).
    """
    q0 = quat_normalize(q0)
    q1 = quat_normalize(q1)
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)[..., None]
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    near = sin_theta < 1e-6
    safe = torch.where(near, torch.ones_like(sin_theta), sin_theta)
    w0 = torch.where(near, 1 - t, torch.sin((1 - t) * theta) / safe)
    w1 = torch.where(near, t, torch.sin(t * theta) / safe)
    out = w0 * q0 + w1 * q1
    return out / out.norm(dim=-1, keepdim=True)


def random_quat(n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` uniformly distributed unit quaternions (n, 4), ``w >= 0`` (Shoemake's method)."""
    u = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    a, b = torch.sqrt(1 - u[:, 0]), torch.sqrt(u[:, 0])
    t1, t2 = 2 * torch.pi * u[:, 1], 2 * torch.pi * u[:, 2]
    q = torch.stack((b * torch.cos(t2), a * torch.sin(t1), a * torch.cos(t1), b * torch.sin(t2)), dim=-1)
    return quat_canonical(q).to(dtype)
