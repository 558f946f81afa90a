"""The default hand's procedural surface: tapered tubes for the fingers and thumb, a rounded
slab for the palm, hemispherical fingertip caps, and linear-blend-skinning weights.

Every vertex is described relative to the rest joints (a point between two joint combinations,
an angle around the bone, radii), so the surface follows the hand shape (``betas``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from .skeleton import FINGER_CHAINS, NUM_JOINTS, NUM_POSE_JOINTS, THUMB_DORSAL

__all__ = ["HandSurface", "build_surface"]

RING = 12  # vertices around each tube


@dataclass
class HandSurface:
    """A parametric surface (V vertices, F faces) over the 21 rest joints.

    Attributes:
        a0, a1: (V, 21) joint weights of the two segment ends; t: (V,) position between them;
        axial: (V,) extra offset along the segment (caps); angle: (V,) around the bone;
        ry, rz: (V,) radii towards the back of the hand and sideways; hint: (V, 3) dorsal hint;
        power: (V,) superellipse exponent of the cross-section (1 = ellipse);
        weights: (V, 16) skinning weights; faces: (F, 3) triangles (outward, right hand).
    """

    a0: torch.Tensor
    a1: torch.Tensor
    t: torch.Tensor
    axial: torch.Tensor
    angle: torch.Tensor
    ry: torch.Tensor
    rz: torch.Tensor
    hint: torch.Tensor
    power: torch.Tensor
    weights: torch.Tensor
    faces: torch.Tensor

    @property
    def num_vertices(self) -> int:
        return int(self.t.shape[0])

    def vertices(self, joints: torch.Tensor, size: torch.Tensor | float = 1.0) -> torch.Tensor:
        """Rest vertices (..., V, 3) over rest joints (..., 21, 3); radii scale with ``size``."""
        dt = joints.dtype
        c0 = torch.einsum("vj,...jc->...vc", self.a0.to(dt), joints)
        c1 = torch.einsum("vj,...jc->...vc", self.a1.to(dt), joints)
        seg = c1 - c0
        d = seg / seg.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        hint = self.hint.to(dt)
        up = hint - (hint * d).sum(-1, keepdim=True) * d
        up = up / up.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        side = torch.cross(d, up, dim=-1)
        cos, sin = torch.cos(self.angle.to(dt)), torch.sin(self.angle.to(dt))
        p = self.power.to(dt)
        cz = torch.sign(cos) * cos.abs() ** p
        sy = torch.sign(sin) * sin.abs() ** p
        size = torch.as_tensor(size, dtype=dt)
        if size.ndim:
            size = size[..., None, None]
        centre = c0 + self.t.to(dt)[:, None] * seg + self.axial.to(dt)[:, None] * d * size
        return centre + size * ((self.rz.to(dt) * cz)[:, None] * side + (self.ry.to(dt) * sy)[:, None] * up)


class _Builder:
    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.faces: list[tuple[int, int, int]] = []

    def ring(self, a0, a1, t, axial, ry, rz, hint, weights, power=1.0, n=RING) -> list[int]:
        start = len(self.rows)
        for k in range(n):
            self.rows.append((a0, a1, t, axial, 2 * math.pi * k / n, ry, rz, hint, weights, power))
        return list(range(start, start + n))

    def point(self, a0, a1, t, axial, hint, weights) -> int:
        self.rows.append((a0, a1, t, axial, 0.0, 0.0, 0.0, hint, weights, 1.0))
        return len(self.rows) - 1

    def strip(self, r0: list[int], r1: list[int]) -> None:
        n = len(r0)
        for k in range(n):
            a, b, c, d = r0[k], r0[(k + 1) % n], r1[k], r1[(k + 1) % n]
            self.faces += [(a, c, b), (b, c, d)]

    def fan(self, ring: list[int], centre: int, flip: bool) -> None:
        n = len(ring)
        for k in range(n):
            a, b = ring[k], ring[(k + 1) % n]
            self.faces.append((a, b, centre) if flip else (b, a, centre))


def _onehot(*pairs: tuple[int, float]) -> np.ndarray:
    v = np.zeros(NUM_JOINTS)
    for j, w in pairs:
        v[j] += w
    return v


def _skin(*pairs: tuple[int, float]) -> np.ndarray:
    w = np.zeros(NUM_POSE_JOINTS)
    for j, x in pairs:
        w[j] += x
    return w


def _tube(b: _Builder, stations, hint, cap_from: tuple, cap_radius: float, cap_weights: np.ndarray) -> None:
    """A tube through ``stations`` = [(a0, a1, t, ry, rz, weights)], closed by a hemispherical cap
    along the last segment (``cap_from`` = (a0, a1) of that segment)."""
    rings = [b.ring(a0, a1, t, 0.0, ry, rz, hint, w) for (a0, a1, t, ry, rz, w) in stations]
    for r0, r1 in itertools.pairwise(rings):
        b.strip(r0, r1)
    last_ry, last_rz = stations[-1][3], stations[-1][4]
    a0, a1 = cap_from
    t_end = stations[-1][2]
    prev = rings[-1]
    for phi in (math.radians(35), math.radians(65)):
        r = b.ring(a0, a1, t_end, cap_radius * math.sin(phi), last_ry * math.cos(phi), last_rz * math.cos(phi),
                   hint, cap_weights)  # fmt: skip
        b.strip(prev, r)
        prev = r
    tip = b.point(a0, a1, t_end, cap_radius, hint, cap_weights)
    b.fan(prev, tip, flip=False)


_FINGER_RADIUS = {"index": 0.0092, "middle": 0.0096, "ring": 0.0090, "pinky": 0.0080}


def build_surface() -> HandSurface:
    """The default right hand's surface (about 650 vertices)."""
    b = _Builder()
    dorsal = (0.0, 1.0, 0.0)
    for name, r0 in _FINGER_RADIUS.items():
        _, mcp, pip, dip, tip = FINGER_CHAINS[name]
        seg1 = (_onehot((mcp, 1)), _onehot((pip, 1)))
        seg2 = (_onehot((pip, 1)), _onehot((dip, 1)))
        seg3 = (_onehot((dip, 1)), _onehot((tip, 1)))
        taper = [1.0, 0.98, 0.93, 0.9, 0.86, 0.84, 0.8, 0.78]
        r = [r0 * k for k in taper]
        stations = [
            (*seg1, -0.30, 0.85 * r[0], r[0], _skin((0, 1.0))),
            (*seg1, 0.0, 0.85 * r[1], r[1], _skin((0, 0.5), (mcp, 0.5))),
            (*seg1, 0.5, 0.85 * r[2], r[2], _skin((mcp, 1.0))),
            (*seg2, 0.0, 0.85 * r[3], r[3], _skin((mcp, 0.5), (pip, 0.5))),
            (*seg2, 0.5, 0.85 * r[4], r[4], _skin((pip, 1.0))),
            (*seg3, 0.0, 0.85 * r[5], r[5], _skin((pip, 0.5), (dip, 0.5))),
            (*seg3, 0.45, 0.85 * r[6], r[6], _skin((dip, 1.0))),
            (*seg3, 0.62, 0.85 * r[7], r[7], _skin((dip, 1.0))),
        ]
        _tube(b, stations, dorsal, seg3, r[7], _skin((dip, 1.0)))
    # thumb: metacarpal (thick, the thenar bulk), proximal and distal phalanges
    seg1 = (_onehot((13, 1)), _onehot((14, 1)))
    seg2 = (_onehot((14, 1)), _onehot((15, 1)))
    seg3 = (_onehot((15, 1)), _onehot((16, 1)))
    thumb_hint = THUMB_DORSAL
    stations = [
        (*seg1, -0.15, 0.012, 0.015, _skin((0, 0.7), (13, 0.3))),
        (*seg1, 0.35, 0.0115, 0.0135, _skin((13, 1.0))),
        (*seg1, 1.0, 0.0095, 0.0105, _skin((13, 0.5), (14, 0.5))),
        (*seg2, 0.5, 0.0088, 0.0098, _skin((14, 1.0))),
        (*seg2, 1.0, 0.0084, 0.0094, _skin((14, 0.5), (15, 0.5))),
        (*seg3, 0.45, 0.0080, 0.0090, _skin((15, 1.0))),
        (*seg3, 0.60, 0.0078, 0.0088, _skin((15, 1.0))),
    ]
    _tube(b, stations, thumb_hint, seg3, 0.0088, _skin((15, 1.0)))
    # palm: a rounded slab from the wrist to the knuckle line (rigid with the wrist)
    knuckles = _onehot((1, 0.25), (4, 0.25), (7, 0.25), (10, 0.25))
    wrist = _onehot((0, 1.0))
    slab = [(-0.06, 0.013, 0.028), (0.15, 0.0145, 0.035), (0.45, 0.015, 0.040), (0.75, 0.0145, 0.043),
            (1.0, 0.012, 0.044)]  # fmt: skip
    rings = [b.ring(wrist, knuckles, t, 0.0, ry, rz, dorsal, _skin((0, 1.0)), power=0.7) for t, ry, rz in slab]
    for r0, r1 in itertools.pairwise(rings):
        b.strip(r0, r1)
    b.fan(rings[0], b.point(wrist, knuckles, -0.08, 0.0, dorsal, _skin((0, 1.0))), flip=True)
    b.fan(rings[-1], b.point(wrist, knuckles, 1.02, 0.0, dorsal, _skin((0, 1.0))), flip=False)

    cols = list(zip(*b.rows, strict=True))

    def f64(x) -> torch.Tensor:
        return torch.tensor(np.asarray(x, dtype=np.float64))

    return HandSurface(
        a0=f64(np.stack(cols[0])), a1=f64(np.stack(cols[1])), t=f64(cols[2]), axial=f64(cols[3]),
        angle=f64(cols[4]), ry=f64(cols[5]), rz=f64(cols[6]), hint=f64(np.stack(cols[7])),
        weights=f64(np.stack(cols[8])), power=f64(cols[9]), faces=torch.tensor(b.faces, dtype=torch.long),
    )  # fmt: skip
