"""Cross-entropy method over a continuous action parameterisation, scored through a world model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .rank import RankPlanner, Rollout

__all__ = ["CEMConfig", "CEMPlanner"]


@dataclass
class CEMConfig:
    """``samples`` per iteration, ``elites`` kept, ``iterations``, initial ``std``, ``min_std``,
    ``momentum`` of the mean/std update, ``horizon`` (steps of the parameterisation per plan)."""

    samples: int = 16
    elites: int = 4
    iterations: int = 3
    std: float = 0.5
    min_std: float = 0.05
    momentum: float = 0.1
    horizon: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.elites <= self.samples:
            raise ValueError(f"`elites` must lie in [1, samples={self.samples}], got {self.elites}")
        if self.iterations < 1 or self.horizon < 1:
            raise ValueError("`iterations` and `horizon` must be >= 1")


class CEMPlanner:
    """Iterative sampling: draw ``samples`` parameter vectors (bounded to [-1, 1]), turn them into a
    :class:`Rollout` with ``make_rollout`` (for example :meth:`DexWorldEnv.preview` of ``delta``
    actions), score them with a :class:`RankPlanner`, refit a diagonal Gaussian to the elites."""

    def __init__(self, world_model: Any, scorer: Any, config: CEMConfig | None = None, batch_size: int = 8,
                 seed: int = 0, mask_hands: bool = True, proposals: Any = None) -> None:  # fmt: skip
        self.config = config or CEMConfig()
        self.ranker = RankPlanner(world_model, scorer, batch_size=batch_size, seed=seed, mask_hands=mask_hands,
                                  proposals=proposals)  # fmt: skip
        self.rng = np.random.default_rng(seed)

    def plan(self, make_rollout: Callable[[np.ndarray], Rollout], goal: Any, dim: int,
             mean: np.ndarray | None = None, mask: np.ndarray | None = None) -> dict[str, Any]:  # fmt: skip
        """Optimise (horizon, dim) parameters; ``mask`` (dim,) marks the free dimensions (others stay at
        ``mean``). Returns the best parameters seen, its score and the per-iteration elite scores."""
        c = self.config
        mu = np.zeros((c.horizon, dim)) if mean is None else np.asarray(mean, np.float64).reshape(c.horizon, dim)
        free = np.ones(dim, bool) if mask is None else np.asarray(mask, bool)
        sd = np.full((c.horizon, dim), c.std) * free
        best, best_score, history = mu.copy(), -np.inf, []
        for _ in range(c.iterations):
            x = np.clip(mu + sd * self.rng.standard_normal((c.samples, c.horizon, dim)), -1.0, 1.0)
            result = self.ranker.plan(make_rollout(x), goal)
            elite = x[result.order[: c.elites]]
            history.append(float(result.scores[result.order[: c.elites]].mean()))
            if result.scores[result.best] > best_score:
                best, best_score = x[result.best].copy(), float(result.scores[result.best])
            mu = c.momentum * mu + (1 - c.momentum) * elite.mean(0)
            sd = np.maximum(c.momentum * sd + (1 - c.momentum) * elite.std(0), c.min_std) * free
        return {"params": best, "score": best_score, "elite_scores": history}

    def plan_proposals(self, context: Any, make_rollout: Callable[[list[Any]], Rollout], goal: Any) -> dict[str, Any]:
        """CEM in the proposal source's noise space (the forecaster's: ``noise_shape`` per sample): the
        first iteration samples its prior N(0, I); each next one refits a diagonal Gaussian to the elites'
        noise. ``make_rollout`` turns the proposed actions into a :class:`Rollout`. Returns the best
        action seen, its score and the per-iteration elite scores."""
        source = self.ranker.proposals
        shape = getattr(source, "noise_shape", None)
        if shape is None:
            raise ValueError(f"CEM needs a proposal source with a noise space (the forecaster), not {source.name!r}")
        c = self.config
        mu, sd = np.zeros(shape), np.ones(shape)
        best, best_score, history = None, -np.inf, []
        for _ in range(c.iterations):
            x = mu + sd * self.rng.standard_normal((c.samples, *shape))
            actions = source.propose(context, c.samples, self.rng, noise=x.astype(np.float32))
            result = self.ranker.plan(make_rollout(actions), goal)
            elite = x[result.order[: c.elites]]
            history.append(float(result.scores[result.order[: c.elites]].mean()))
            if result.scores[result.best] > best_score:
                best, best_score = actions[result.best], float(result.scores[result.best])
            mu = c.momentum * mu + (1 - c.momentum) * elite.mean(0)
            sd = np.maximum(c.momentum * sd + (1 - c.momentum) * elite.std(0), c.min_std)
        return {"action": best, "score": best_score, "elite_scores": history}
