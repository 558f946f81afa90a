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
