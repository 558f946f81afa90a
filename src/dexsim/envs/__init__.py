"""The Gymnasium environment ``DexWorld-v0``, its native vector env, and built-in tasks."""

from .core import ACTION_MODES, DexWorldCore, DexWorldEnv
from .tasks import TASKS, Task

__all__ = ["ACTION_MODES", "TASKS", "DexWorldCore", "DexWorldEnv", "Task", "register_envs"]

ENV_ID = "DexWorld-v0"


def register_envs() -> None:
    """Register ``DexWorld-v0`` (done on ``import dexsim``); idempotent."""
    from .. import _register

    _register()
