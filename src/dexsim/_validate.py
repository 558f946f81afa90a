"""Validation at the door: every error names the argument and the bad value."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def as_tensor(
    name: str, value: object, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Convert ``value`` to a floating tensor, raising a ``TypeError`` that names ``name``."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"`{name}` must be array-like, got {type(value).__name__}: {value!r}") from exc
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.int16, torch.uint8)):
        raise TypeError(f"`{name}` must hold numbers, got dtype {t.dtype}")
    if dtype is None and not t.is_floating_point():
        dtype = torch.get_default_dtype()
    if dtype is not None or device is not None:
        t = t.to(dtype=dtype or t.dtype, device=device or t.device)
    return t


def check_shape(name: str, t: torch.Tensor | np.ndarray, trailing: Sequence[int | None]) -> None:
    """Check that ``t``'s last dimensions equal ``trailing`` (``None`` = any size).

    Raises:
        ValueError: naming ``name``, the expected trailing shape and the shape received.
    """
    shape = tuple(t.shape)
    n = len(trailing)
    ok = len(shape) >= n and all(e is None or e == s for e, s in zip(trailing, shape[len(shape) - n :], strict=True))
    if not ok:
        want = "(..., " + ", ".join("*" if e is None else str(e) for e in trailing) + ")"
        raise ValueError(f"`{name}` must have shape {want}, got {shape}")


def check_finite(name: str, t: torch.Tensor | np.ndarray) -> None:
    """Raise a ``ValueError`` naming ``name`` and the first non-finite value and its index."""
    tt = torch.as_tensor(t)
    if not tt.is_floating_point():
        return
    bad = ~torch.isfinite(tt)
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(
            f"`{name}` must be finite, got {tt[idx].item()} at index {idx} ({int(bad.sum())} non-finite values)"
        )


def tensor_arg(
    name: str,
    value: object,
    trailing: Sequence[int | None] = (),
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``as_tensor`` + ``check_shape`` + ``check_finite`` in one call."""
    t = as_tensor(name, value, dtype=dtype, device=device)
    check_shape(name, t, trailing)
    check_finite(name, t)
    return t


def check_positive(name: str, value: float) -> float:
    """Return ``value`` when it is a finite number > 0, else raise naming it."""
    if not isinstance(value, (int, float, np.floating, np.integer)) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}")
    return float(value)


def positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1, else a ``ValueError`` naming ``name`` (bools are refused)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return int(value)
