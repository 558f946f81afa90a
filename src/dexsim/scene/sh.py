"""Real spherical harmonics up to degree 3 (the 3DGS basis and sign convention)."""

from __future__ import annotations

import torch

from .gaussians import SH_C0

_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
       -0.4570457994644658, 1.445305721320277, -0.5900435899266435)  # fmt: skip


def sh_basis(dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """SH basis values (..., (degree+1)^2) for unit directions ``dirs`` (..., 3)."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [_C2[0] * x * y, _C2[1] * y * z, _C2[2] * (2 * zz - xx - yy), _C2[3] * x * z, _C2[4] * (xx - yy)]
    if degree >= 3:
        out += [
            _C3[0] * y * (3 * xx - yy), _C3[1] * x * y * z, _C3[2] * y * (4 * zz - xx - yy),
            _C3[3] * z * (2 * zz - 3 * xx - 3 * yy), _C3[4] * x * (4 * zz - xx - yy),
            _C3[5] * z * (xx - yy), _C3[6] * x * (xx - 3 * yy),
        ]  # fmt: skip
    return torch.stack(out, dim=-1)


def eval_sh(sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Colours (..., 3) = sum_k basis_k(dir) * sh[..., k, :] + 0.5, clamped at 0 (as gsplat).

    Args:
        sh: (..., K, 3) coefficients, K = (degree+1)^2.
        dirs: (..., 3) viewing directions (camera -> Gaussian), normalised here.
    """
    degree = int(round(sh.shape[-2] ** 0.5)) - 1
    if degree == 0:
        return (sh[..., 0, :] * SH_C0 + 0.5).clamp_min(0.0)
    d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    basis = sh_basis(d, degree)
    return ((basis[..., None] * sh).sum(-2) + 0.5).clamp_min(0.0)
