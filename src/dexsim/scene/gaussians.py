"""``GaussianScene``: a 3D Gaussian splat with optional per-Gaussian object ids."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .._validate import check_finite

__all__ = ["SH_C0", "GaussianScene", "num_sh_bases", "rgb_to_sh0", "sh0_to_rgb"]

#: zeroth spherical-harmonic basis constant, 1 / (2 sqrt(pi)).
SH_C0 = 0.28209479177387814


def num_sh_bases(degree: int) -> int:
    """``(degree + 1) ** 2`` SH coefficients per colour channel."""
    if degree not in (0, 1, 2, 3):
        raise ValueError(f"`sh_degree` must be 0, 1, 2 or 3, got {degree!r}")
    return (degree + 1) ** 2


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    """DC coefficients (..., 3) whose rendered colour is ``rgb`` (..., 3) in [0, 1]."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: torch.Tensor) -> torch.Tensor:
    """Colour (..., 3) of DC coefficients (..., 3), before clamping."""
    return sh0 * SH_C0 + 0.5


@dataclass
class GaussianScene:
    """A 3D Gaussian splat, stored the way INRIA ``.ply`` files store it (bit-exact round trips).

    Args:
        means: (N, 3) centres, world frame.
        quats: (N, 4) rotations, w-first, not necessarily normalised (normalised when rendering).
        log_scales: (N, 3) log of the standard deviations along the local axes.
        opacity_logits: (N,) logit of the opacity.
        sh: (N, K, 3) spherical-harmonic coefficients, ``K = (degree + 1) ** 2``; ``sh[:, 0]`` is DC.
        object_ids: (N,) int64, 0 = static background, ``k >= 1`` = rigid object ``k``.
        object_names: names of objects ``1..``; ``object_names[k - 1]`` names id ``k``.
    """

    means: torch.Tensor
    quats: torch.Tensor
    log_scales: torch.Tensor
    opacity_logits: torch.Tensor
    sh: torch.Tensor
    object_ids: torch.Tensor | None = None
    object_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        expect = {
            "means": (n, 3),
            "quats": (n, 4),
            "log_scales": (n, 3),
            "opacity_logits": (n,),
        }
        for name, shape in expect.items():
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape or n < 0:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"`{name}` must have shape {shape if n >= 0 else '(N, 3)'}, got {got}")
            if not t.is_floating_point():
                raise ValueError(f"`{name}` must be floating point, got {t.dtype}")
            check_finite(name, t)
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(f"`sh` must have shape ({n}, K, 3), got {tuple(self.sh.shape)}")
        k = self.sh.shape[1]
        if k not in (1, 4, 9, 16):
            raise ValueError(f"`sh` must hold 1, 4, 9 or 16 coefficients per channel (degree 0-3), got {k}")
        check_finite("sh", self.sh)
        norms = self.quats.norm(dim=-1)
        if n > 0 and bool((norms < 1e-12).any()):
            raise ValueError(f"`quats` must be non-zero, got a zero quaternion at row {int(torch.argmin(norms))}")
        if self.object_ids is not None:
            ids = self.object_ids
            if tuple(ids.shape) != (n,) or ids.is_floating_point():
                raise ValueError(f"`object_ids` must be an integer tensor of shape ({n},), got {tuple(ids.shape)}")
            if n > 0 and int(ids.min()) < 0:
                raise ValueError(f"`object_ids` must be >= 0, got {int(ids.min())}")
            self.object_ids = ids.long()

    # -- derived quantities ---------------------------------------------------------------
    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[0])

    def __len__(self) -> int:
        return self.num_gaussians

    @property
    def sh_degree(self) -> int:
        return int(round(self.sh.shape[1] ** 0.5)) - 1

    @property
    def scales(self) -> torch.Tensor:
        """(N, 3) standard deviations (``exp(log_scales)``)."""
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> torch.Tensor:
        """(N,) opacities in (0, 1) (``sigmoid(opacity_logits)``)."""
        return torch.sigmoid(self.opacity_logits)

    @property
    def num_objects(self) -> int:
        """Largest object id (0 when everything is static background)."""
        if self.object_ids is None or self.num_gaussians == 0:
            return 0
        return int(self.object_ids.max())

    def bounds(self, quantile: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(3,) lower and upper corners of the means, optionally robust to ``quantile`` outliers."""
        if self.num_gaussians == 0:
            raise ValueError("an empty scene has no bounds")
        if quantile <= 0:
            return self.means.amin(0), self.means.amax(0)
        m = self.means.double()
        if m.shape[0] > 1_000_000:  # torch.quantile's input limit: subsample deterministically
            m = m[:: m.shape[0] // 1_000_000 + 1]
        q = torch.tensor([quantile, 1 - quantile], dtype=m.dtype)
        lo_hi = torch.quantile(m, q, dim=0)
        return lo_hi[0].to(self.means.dtype), lo_hi[1].to(self.means.dtype)

    # -- constructors and edits ------------------------------------------------------------
    @classmethod
    def from_activated(
        cls,
        means: torch.Tensor,
        quats: torch.Tensor,
        scales: torch.Tensor,
        opacities: torch.Tensor,
        colors: torch.Tensor | None = None,
        sh: torch.Tensor | None = None,
        object_ids: torch.Tensor | None = None,
        object_names: list[str] | None = None,
    ) -> GaussianScene:
        """Build from linear scales (N, 3), opacities (N,) in (0, 1) and either RGB ``colors``
        (N, 3) in [0, 1] (degree-0 SH) or full ``sh`` (N, K, 3)."""
        if (colors is None) == (sh is None):
            raise ValueError("pass exactly one of `colors` and `sh`")
        scales = torch.as_tensor(scales, dtype=torch.float32)
        opacities = torch.as_tensor(opacities, dtype=torch.float32)
        if bool((scales <= 0).any()):
            raise ValueError(f"`scales` must be > 0, got min {float(scales.min())}")
        if bool(((opacities <= 0) | (opacities >= 1)).any()):
            raise ValueError(
                f"`opacities` must lie in (0, 1), got range [{float(opacities.min())}, {float(opacities.max())}]"
            )
        if sh is None:
            sh = rgb_to_sh0(torch.as_tensor(colors, dtype=torch.float32))[:, None, :]
        return cls(
            means=torch.as_tensor(means, dtype=torch.float32),
            quats=torch.as_tensor(quats, dtype=torch.float32),
            log_scales=torch.log(scales),
            opacity_logits=torch.logit(opacities),
            sh=torch.as_tensor(sh, dtype=torch.float32),
            object_ids=None if object_ids is None else torch.as_tensor(object_ids),
            object_names=list(object_names or []),
        )

    def subset(self, mask_or_index: torch.Tensor) -> GaussianScene:
        """A new scene holding the selected rows."""
        sel = mask_or_index
        return GaussianScene(
            self.means[sel], self.quats[sel], self.log_scales[sel], self.opacity_logits[sel], self.sh[sel],
            None if self.object_ids is None else self.object_ids[sel], list(self.object_names),
        )  # fmt: skip

    def with_sh_degree(self, degree: int) -> GaussianScene:
        """Truncate or zero-pad the SH coefficients to ``degree``."""
        k = num_sh_bases(degree)
        if k <= self.sh.shape[1]:
            sh = self.sh[:, :k]
        else:
            sh = torch.cat((self.sh, self.sh.new_zeros(self.num_gaussians, k - self.sh.shape[1], 3)), 1)
        return GaussianScene(self.means, self.quats, self.log_scales, self.opacity_logits, sh.contiguous(),
                             self.object_ids, list(self.object_names))  # fmt: skip

    @staticmethod
    def concat(scenes: list[GaussianScene]) -> GaussianScene:
        """Join scenes; SH degrees are raised to the largest; object ids are kept as given."""
        if not scenes:
            raise ValueError("`scenes` must not be empty")
        deg = max(s.sh_degree for s in scenes)
        scenes = [s.with_sh_degree(deg) for s in scenes]
        any_ids = any(s.object_ids is not None for s in scenes)
        ids = None
        if any_ids:
            ids = torch.cat([s.object_ids if s.object_ids is not None else torch.zeros(len(s), dtype=torch.long)
                             for s in scenes])  # fmt: skip
        names: list[str] = []
        for s in scenes:
            names = s.object_names if len(s.object_names) > len(names) else names
        return GaussianScene(
            torch.cat([s.means for s in scenes]), torch.cat([s.quats for s in scenes]),
            torch.cat([s.log_scales for s in scenes]), torch.cat([s.opacity_logits for s in scenes]),
            torch.cat([s.sh for s in scenes]), ids, list(names),
        )  # fmt: skip

    def to(self, device: torch.device | str) -> GaussianScene:
        return GaussianScene(
            self.means.to(device), self.quats.to(device), self.log_scales.to(device),
            self.opacity_logits.to(device), self.sh.to(device),
            None if self.object_ids is None else self.object_ids.to(device), list(self.object_names),
        )  # fmt: skip
