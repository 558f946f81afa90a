"""Where a planner's candidate actions come from: scripted primitives, or the hand forecaster.

A proposal source turns a :class:`PlanContext` (what a planner knows before acting: the start frame and
its camera, the goal, the scene spec when it is a built-in one) into ``n`` candidate
:class:`~dexsim.physics.actions.Action` objects seen along one camera path. ``RankPlanner`` ranks them,
``CEMPlanner`` can search the forecaster's noise space with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

__all__ = ["PROPOSAL_SOURCES", "ForecastProposals", "PlanContext", "PrimitiveProposals", "ProposalSource",
           "describe_motion", "proposal_source"]  # fmt: skip

PROPOSAL_SOURCES = ("primitives", "forecast")


@dataclass
class PlanContext:
    """What a planner knows: ``start`` (H, W, 3) uint8 the first frame without hands, ``camera`` (T, 7) the
    camera path the candidates share (camera-to-world), ``K`` (3, 3) at the start frame's size, the
    ``goal_image`` (H, W, 3) and ``text`` (either may be None), ``frames`` per candidate, and for scripted
    primitives the scene ``spec`` and the task's ``kind`` and ``target``; ``world``: the scene's renderer
    (:class:`~dexsim.world.World`) when the planner has it, to read the goal by rendering."""

    start: np.ndarray
    camera: np.ndarray
    K: np.ndarray
    goal_image: np.ndarray | None = None
    text: str | None = None
    frames: int = 16
    spec: Any = None
    kind: str | None = None
    target: str | None = None
    world: Any = None


class ProposalSource(Protocol):
    name: str

    def propose(self, context: PlanContext, n: int, rng: np.random.Generator) -> list[Any]: ...


class PrimitiveProposals:
    """Scripted primitives with randomized parameters (:func:`~dexsim.planners.candidates.task_candidates`)."""

    name = "primitives"

    def propose(self, context: PlanContext, n: int, rng: np.random.Generator) -> list[Any]:
        from .candidates import task_candidates

        if context.spec is None or context.kind is None:
            raise ValueError("primitive proposals need the scene `spec` and the task `kind` in the plan context")
        return task_candidates(context.spec, context.kind, context.target, n, rng, context.frames, context.camera)


def describe_motion(params: np.ndarray, visible: np.ndarray) -> str:
    """A short text for a trajectory: which hands are seen and where the wrist goes (metres, world x/y/z)."""
    parts = []
    for h, side in enumerate(("left", "right")):
        idx = np.nonzero(visible[:, h])[0]
        if len(idx) < 2:
            continue
        d = params[idx[-1], h, 48:] - params[idx[0], h, 48:]
        axis = int(np.argmax(np.abs(d)))
        word = (("right", "left"), ("forward", "back"), ("up", "down"))[axis][0 if d[axis] > 0 else 1]
        parts.append(f"{side} hand {word} {100 * np.linalg.norm(d):.0f} cm")
    return "forecast: " + (", ".join(parts) if parts else "no hand in view")


def _keep_in_workspace(f: Any, spec: Any) -> None:
    """Move each visible wrist of a forecast into the scene's working box (in place, joints with it), as the
    env's controllers clamp their wrists."""
    from ..physics.build import spec_workspace

    lo, hi = spec_workspace(spec)
    wrist = f.params[..., 48:51]
    delta = np.clip(wrist, lo, hi) - wrist
    delta = np.where(f.visible[..., None], delta, 0.0)
    f.params[..., 48:51] += delta
    f.joints += delta[..., None, :]


#: the least refinement strength when CEM searches grounded proposals' noise
CEM_MIN_STRENGTH = 0.5


class ForecastProposals:
    """The hand forecaster, conditioned on the start frame, the goal image and the text, as a proposal
    source: ``n`` samples of the whole clip from nothing observed (hands not yet in view), each
    :meth:`propose` call drawing its noise from ``rng`` (or taking ``noise`` (n, horizon, STATE_DIM),
    which is how :class:`~dexsim.planners.CEMPlanner` searches the forecaster's space).

    Grounded (the default when the forecaster ships an action bank and the context names the scene): the
    goal image is read for where the task's object (or the drawer) must go (:func:`~dexsim.forecast.ground.
    goal_shift`), training actions that moved such a thing so far are turned, moved onto it and time-warped
    (:func:`~dexsim.forecast.ground.grounded_trajectories`), and the forecaster refines them from
    ``strength`` of the way back to noise. ``spread``: how much the candidates' travel varies around the
    goal's reading."""

    name = "forecast"

    def __init__(self, forecaster: Any = "default", steps: int = 10, grounded: bool = True,
                 strength: float = 0.0, spread: float = 0.1) -> None:  # fmt: skip
        from ..forecast import load_forecaster

        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"`strength` must lie in [0, 1], got {strength}")
        if not 0.0 <= spread < 1.0:
            raise ValueError(f"`spread` must lie in [0, 1), got {spread}")
        self.model = load_forecaster(forecaster) if isinstance(forecaster, str) else forecaster
        self.steps = steps
        self.grounded = grounded
        self.strength = strength
        self.spread = spread

    def _grounding(self, context: PlanContext, n: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
        """Retrieved, goal-aligned trajectories (params (n, F, 2, 51), visible (n, F, 2)), or None when the
        forecaster has no action bank or the context does not say what must move."""
        from ..forecast.ground import (
            ACTION_KINDS,
            drawer_anchor,
            goal_shift,
            grounded_trajectories,
            object_anchor,
            refine_shift_by_render,
            task_kind_from_text,
        )

        bank = getattr(self.model, "actions", None)
        spec = context.spec
        kind = context.kind or task_kind_from_text(context.text)
        if not self.grounded or bank is None or spec is None or kind not in ACTION_KINDS:
            return None
        if kind == "open_drawer":
            if spec.drawer is None:
                return None
            anchor = drawer_anchor(spec)
        else:
            target = context.target or _named_object(spec, context.text)
            if target is None:
                return None
            anchor = object_anchor(spec, target)
        shift = None
        if context.goal_image is not None:
            camera = np.asarray(context.camera, np.float64)[0]
            drawer = kind == "open_drawer"
            shift = goal_shift(context.start, context.goal_image, camera, np.asarray(context.K, np.float64), anchor,
                               drawer=drawer)  # fmt: skip
            if context.world is not None and shift is not None:
                part = len(spec.object_names) - 1 if drawer else spec.object_names.index(target)
                shift = refine_shift_by_render(context.world, spec, camera, context.goal_image, part, shift, drawer)
        return grounded_trajectories(bank, kind, anchor, shift, n, rng, context.frames, spread=self.spread)

    @property
    def noise_shape(self) -> tuple[int, int]:
        from ..forecast.state import STATE_DIM

        return self.model.config.horizon, STATE_DIM

    def propose(self, context: PlanContext, n: int, rng: np.random.Generator,
                noise: np.ndarray | None = None) -> list[Any]:  # fmt: skip
        from ..forecast import forecast
        from ..physics.actions import Action
        from .candidates import with_camera

        if context.frames > self.model.config.horizon:
            raise ValueError(f"the forecaster predicts at most {self.model.config.horizon} frames, "
                             f"the plan asks for {context.frames}")  # fmt: skip
        camera = np.asarray(context.camera, np.float32)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        # CEM (``noise`` given) searches the refinement's noise: the same retrieved starts on every call, and
        # at least half of the flow re-run so that the noise matters
        grounded = self._grounding(context, n, rng if noise is None else np.random.default_rng(0))
        init, strength = None, 1.0
        if grounded is not None:
            path = camera if len(camera) == context.frames else np.repeat(camera[:1], context.frames, 0)
            init = (grounded[0], grounded[1], np.repeat(path[None], n, 0))
            strength = self.strength if noise is None else max(self.strength, CEM_MIN_STRENGTH)
        f = forecast(self.model, context.start, camera[0], context.K, None, context.goal_image, context.text,
                     k=n, horizon=context.frames, steps=self.steps, generator=gen,
                     noise=None if noise is None else torch.as_tensor(noise), init=init,
                     strength=strength)  # fmt: skip
        if context.spec is not None:
            _keep_in_workspace(f, context.spec)
        h, w = context.start.shape[:2]
        trajs = f.trajectories(fps=self.model.config.fps, K=np.asarray(context.K, np.float32), width=w, height=h)
        out = [Action(t, describe_motion(f.params[i], f.visible[i]), "forecast", context.target)
               for i, t in enumerate(trajs)]  # fmt: skip
        cam = camera if len(camera) == context.frames else np.repeat(camera[:1], context.frames, 0)
        return [with_camera(a, cam) for a in out]


def _named_object(spec: Any, text: str | None) -> str | None:
    """The object of ``spec`` whose name (``red_box`` as ``red box``) the text mentions, None if none or several."""
    said = " ".join((text or "").lower().replace("-", " ").replace("_", " ").split())
    hits = [o.name for o in spec.objects if o.name.lower().replace("_", " ") in said]
    return hits[0] if len(hits) == 1 else None


def proposal_source(name: str, forecaster: Any = "default", refine: float = 0.0) -> ProposalSource:
    """``primitives`` or ``forecast`` (with ``forecaster``: ``"default"``, a folder or a model; ``refine``: the
    strength of its refinement of the grounded actions, see :class:`ForecastProposals`)."""
    if name == "primitives":
        return PrimitiveProposals()
    if name == "forecast":
        return ForecastProposals(forecaster, strength=refine)
    raise ValueError(f"unknown proposal source {name!r}; choose one of {PROPOSAL_SOURCES}")
