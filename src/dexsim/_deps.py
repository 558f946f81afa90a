"""One place for optional dependencies: import them where used, fail naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

#: module name -> (pip extra, distribution name) for every optional dependency.
OPTIONAL_DEPENDENCIES: dict[str, tuple[str, str]] = {
    "gsplat": ("gpu", "gsplat"),
    "projectaria_tools": ("aria", "projectaria-tools"),
    "lpips": ("metrics", "lpips"),
    "torchvision": ("metrics", "torchvision"),
    "dreamsim": ("metrics", "dreamsim"),
    "smplx": ("mano", "smplx"),
    "pytest": ("dev", "pytest"),
    "hypothesis": ("dev", "hypothesis"),
    "viser": ("play", "viser"),
    "rerun": ("play", "rerun-sdk"),
    "playwright": ("play", "playwright"),
}


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra.

    Args:
        module: importable module name, e.g. ``"gsplat"``.
        purpose: what the caller wanted it for, put into the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra, dist = OPTIONAL_DEPENDENCIES.get(module, (None, module))
        why = f" for {purpose}" if purpose else ""
        hint = f'pip install "dexsim[{extra}]"' if extra else f"pip install {dist}"
        raise MissingDependencyError(f"`{module}` is needed{why} but is not installed: {hint}") from exc
