"""``RankPlanner``: simulate N candidate actions in one batch, score each against the goal, rank."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..worldmodel.protocol import Rollout

__all__ = ["RankPlanner", "RankResult", "Rollout"]


@dataclass
class RankResult:
    """``order``: candidate indices, best first; ``scores`` (N,); ``videos`` (N, T, H, W, 3) predicted."""

    order: np.ndarray
    scores: np.ndarray
    videos: np.ndarray
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def best(self) -> int:
        return int(self.order[0])


class RankPlanner:
    """Batched simulate-and-rank (DWM's action evaluation): one world-model call per ``batch_size``
    candidates, the static video shared (and its encoding paid once per call), scores from a
    :class:`~dexsim.scoring.Scorer` against a :class:`~dexsim.scoring.Goal`, ignoring the pixels where
    each candidate's hand prompt shows its hand at the end, grown by ``hand_mask_dilate`` pixels, since
    generated hands are a little larger than their prompts (``mask_hands``: goal images have no hands).
    ``proposals``: where :meth:`propose` draws candidates (a :mod:`~dexsim.planners.proposals` source:
    scripted primitives by default, or the hand forecaster)."""

    def __init__(self, world_model: Any, scorer: Any, batch_size: int = 8, seed: int = 0,
                 mask_hands: bool = True, hand_mask_dilate: int = 4, proposals: Any = None) -> None:  # fmt: skip
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
        if hand_mask_dilate < 0:
            raise ValueError(f"`hand_mask_dilate` must be >= 0, got {hand_mask_dilate}")
        self.world_model, self.scorer, self.batch_size, self.seed = world_model, scorer, batch_size, seed
        self.mask_hands, self.hand_mask_dilate = mask_hands, hand_mask_dilate
        if proposals is None:
            from .proposals import PrimitiveProposals

            proposals = PrimitiveProposals()
        if not callable(getattr(proposals, "propose", None)):
            raise ValueError(f"`proposals` must be a proposal source with propose(), got {type(proposals).__name__}")
        self.proposals = proposals

    def propose(self, context: Any, n: int, rng: np.random.Generator | None = None) -> list[Any]:
        """``n`` candidate actions for a :class:`~dexsim.planners.proposals.PlanContext` from the source."""
        if n < 1:
            raise ValueError(f"`n` must be >= 1, got {n}")
        return self.proposals.propose(context, n, rng if rng is not None else np.random.default_rng(self.seed))

    def simulate(self, rollout: Rollout) -> np.ndarray:
        """(N, T, H, W, 3) predicted videos of every candidate."""
        from ..worldmodel.rollout import rollout as run

        n = rollout.prompts.shape[0]
        out = np.empty(rollout.prompts.shape, np.uint8)
        for s in range(0, n, self.batch_size):
            e = min(n, s + self.batch_size)
            out[s:e] = run(self.world_model, rollout.static[None], rollout.prompts[s:e],
                           text=None if rollout.texts is None else rollout.texts[s:e],
                           generator=torch.Generator().manual_seed(self.seed),
                           hands=None if rollout.hands is None else rollout.hands[s:e])  # fmt: skip
        return out

    def plan(self, rollout: Rollout, goal: Any) -> RankResult:
        t0 = time.perf_counter()
        videos = self.simulate(rollout)
        t1 = time.perf_counter()
        from ..scoring import hand_masks_from_prompts

        masks = hand_masks_from_prompts(rollout.prompts, dilate=self.hand_mask_dilate) if self.mask_hands else None
        scores = np.asarray(self.scorer.score(videos, goal, masks), np.float64)
        order = np.argsort(-scores, kind="stable")
        t2 = time.perf_counter()
        return RankResult(order, scores, videos, t2 - t0, {"simulate_s": t1 - t0, "score_s": t2 - t1})
