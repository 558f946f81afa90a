"""Planners: choose actions by simulating them with a world model and scoring the outcome."""

from .candidates import perturb_action, primitive_candidates, with_camera, withdraw
from .cem import CEMConfig, CEMPlanner
from .proposals import ForecastProposals, PlanContext, PrimitiveProposals, proposal_source
from .rank import RankPlanner, RankResult, Rollout

__all__ = [
    "CEMConfig", "CEMPlanner", "ForecastProposals", "PlanContext", "PrimitiveProposals", "RankPlanner", "RankResult",
    "Rollout", "perturb_action", "primitive_candidates", "proposal_source", "with_camera", "withdraw",
]  # fmt: skip
