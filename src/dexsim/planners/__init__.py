"""Planners: choose actions by simulating them with a world model and scoring the outcome."""

from .candidates import perturb_action, primitive_candidates, with_camera, withdraw
from .cem import CEMConfig, CEMPlanner
from .rank import RankPlanner, RankResult, Rollout

__all__ = [
    "CEMConfig", "CEMPlanner", "RankPlanner", "RankResult", "Rollout", "perturb_action", "primitive_candidates",
    "with_camera", "withdraw",
]  # fmt: skip
