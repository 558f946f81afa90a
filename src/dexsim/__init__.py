"""dexsim: a static 3D scene turned into an interactive world for hands.

The static scene is a 3D Gaussian splat rendered exactly, the hands are rendered as a
visual action prompt, and a video diffusion world model generates the residual dynamics.
See ``DESIGN.md`` in the project documentation for the layers and conventions.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dexsim")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]


def _register() -> None:
    """``import dexsim`` registers ``DexWorld-v0`` with Gymnasium (cheap: the env module loads on make)."""
    try:
        import gymnasium as gym
    except ImportError:  # pragma: no cover - gymnasium is a core dependency
        return
    if "DexWorld-v0" not in gym.registry:
        gym.register(id="DexWorld-v0", entry_point="dexsim.envs.core:DexWorldEnv",
                     vector_entry_point="dexsim.envs.vector:DexWorldVectorEnv", max_episode_steps=8)  # fmt: skip


_register()

from . import _fork  # noqa: E402, F401  (records whether a fork happened after thread pools ran)
