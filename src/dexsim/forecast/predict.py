"""Loading a forecaster and asking it, with every input checked at the door."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import ForecastBatch, collate, resize_images
from .model import Forecast, HandForecaster

__all__ = ["FORECAST_CONFIGS", "default_forecaster_dir", "forecast", "load_forecaster", "retrieval_forecaster"]

#: named model sizes: the shipped default and the tiny one tests build
FORECAST_CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "tiny": {"dim": 16, "heads": 2, "layers": 1, "image_size": 16, "keypoints": 4, "conv_width": 16,
             "text_buckets": 64},
    "bridge": {"bridge": True},
    "tiny-bridge": {"dim": 16, "heads": 2, "layers": 1, "image_size": 16, "keypoints": 4, "conv_width": 16,
                    "text_buckets": 64, "bridge": True},
    "residual": {"bridge": True, "bridge_residual": True},
    "tiny-residual": {"dim": 16, "heads": 2, "layers": 1, "image_size": 16, "keypoints": 4, "conv_width": 16,
                      "text_buckets": 64, "bridge": True, "bridge_residual": True},
}  # fmt: skip


def default_forecaster_dir() -> Path:
    """The shipped forecaster's folder inside the package."""
    return Path(__file__).parent / "weights" / "default"


def load_forecaster(name: str | os.PathLike[str] = "default") -> HandForecaster:
    """``"default"`` (shipped with dexsim) or a folder saved by ``save_pretrained`` / the trainer."""
    folder = default_forecaster_dir() if str(name) == "default" else Path(name)
    if not (folder / "config.json").is_file():
        where = "this install lacks the default forecaster; reinstall dexsim or" if str(name) == "default" else \
            f"forecaster {str(name)!r}: no config.json there;"  # fmt: skip
        raise FileNotFoundError(f"{where} train one with `dexsim train --preset forecast-flow-matching` ({folder})")
    from .evaluate import NeighbourBank

    model = HandForecaster.from_pretrained(str(folder))
    from .ground import ActionBank

    model.bank = NeighbourBank.load(folder) if (folder / "nn_bank.safetensors").is_file() else None
    model.actions = ActionBank.load(folder) if (folder / "action_bank.safetensors").is_file() else None
    model.corrector = None
    if (folder / CORRECTOR / "config.json").is_file():  # a residual forecaster of the retrieved futures
        corrector = HandForecaster.from_pretrained(str(folder / CORRECTOR))
        if not corrector.config.bridge_residual:
            raise ValueError(f"{folder / CORRECTOR} is not a residual forecaster (bridge_residual=True)")
        corrector.bank = model.bank
        model.corrector = corrector.eval()
    return model.eval()


#: the sub-folder of a forecaster folder that may hold its residual corrector
CORRECTOR = "corrector"


def retrieval_forecaster(model: HandForecaster) -> HandForecaster | None:
    """The network that forecasts from retrieved futures: ``model`` itself when it is a residual forecaster, else
    its ``corrector`` (loaded from the folder's ``corrector/``), else None; it needs a bank with hand parameters."""
    net = model if getattr(model.config, "bridge_residual", False) else getattr(model, "corrector", None)
    bank = getattr(net, "bank", None) if net is not None else None
    return net if bank is not None and bank.params is not None else None


def _array(name: str, value: Any, shape: tuple[int | None, ...]) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape, strict=True)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"`{name}` must have shape {want}, got {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0].tolist()
        raise ValueError(f"`{name}` holds a non-finite value at index {bad}")
    return a


def _image(name: str, image: Any) -> np.ndarray:
    a = _array(name, image, (None, None, 3))
    if a.dtype != np.uint8:
        raise ValueError(f"`{name}` must be a uint8 (H, W, 3) image, got dtype {a.dtype}")
    return a


def _history(history: Any, camera: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A HandTrajectory (or dict of arrays ``params``, ``visible``, ``camera``) -> its newest ``limit`` frames."""
    if history is None:
        return np.zeros((1, 2, 51), np.float32), np.zeros((1, 2), bool), camera[None].astype(np.float32)
    get = (lambda k: history.get(k)) if isinstance(history, dict) else (lambda k: getattr(history, k, None))
    params, visible, cams = get("params"), get("visible"), get("camera")
    if params is None or visible is None:
        raise ValueError("`history` needs hand `params` (T, 2, 51) and `visible` (T, 2)")
    params = _array("history.params", params, (None, 2, 51))
    visible = _array("history.visible", visible, (len(params), 2)).astype(bool)
    cams = (np.repeat(camera[None], len(params), 0) if cams is None
            else _array("history.camera", cams, (len(params), 7)))  # fmt: skip
    if len(params) == 0:
        raise ValueError("`history` has no frames; pass None for no history")
    return params[-limit:].astype(np.float32), visible[-limit:], cams[-limit:].astype(np.float32)


def forecast(model: HandForecaster, frame: Any, camera: Any, K: Any, history: Any = None, goal_image: Any = None,
             text: str | None = None, target: Any = None, target_visible: Any = None, k: int = 8,
             horizon: int | None = None, steps: int = 10, generator: torch.Generator | None = None,
             noise: torch.Tensor | None = None, init: tuple[Any, Any, Any] | None = None,
             strength: float = 1.0, start: str = "auto") -> Forecast:  # fmt: skip
    """K futures of both hands and the camera after ``frame``.

    Args:
        frame: (H, W, 3) uint8, the last observed egocentric frame.
        camera: (7,) its camera-to-world pose ``[t, q]``; K: (3, 3) its intrinsics at W x H.
        history: the trajectory so far (a HandTrajectory or a dict of ``params`` (T, 2, 51), ``visible``
            (T, 2), optional ``camera`` (T, 7)); ``None``: nothing observed (hands not yet in view).
        goal_image: (H, W, 3) uint8, the scene as it should end (same size as ``frame``).
        text: what the hands should do. target / target_visible: (2, 51) / (2,) a hand pose at the horizon.
        k: samples; horizon: frames (at most the model's); steps: Euler steps of the flow.
        noise: (k, model horizon, STATE_DIM) starting points instead of random ones (CEM).
        init: ``(params (k, F, 2, 51), visible (k, F, 2), camera (k, F, 7))`` trajectories to refine, F <= the
            model's horizon (the last frame is held to fill it); strength: how much of the flow re-runs from
            them (1: they are ignored, 0: returned unchanged).
        start: ``"noise"``; ``"retrieval"``: a residual forecaster (``bridge_residual``, or a folder's corrector)
            samples corrections to the futures its nearest-neighbour bank retrieves for the observed history and text
            (sample j corrects the (j mod 5)-th nearest); a forecaster without one returns the bank's ``k`` diverse
            futures for the newest :data:`RETRIEVAL_HISTORY` observed frames (``NeighbourBank.nearest_diverse``),
            decoded through the hand model (a bank clip's future ends 12 frames on: its last frame is held beyond);
            ``"auto"``: retrieval where that is possible (a corrector with its bank and
            a history; or a bank with hand parameters and at least :data:`RETRIEVAL_HISTORY` observed frames; no
            ``init`` or ``noise``), noise otherwise.
    """
    c = model.config
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be a positive int, got {k!r}")
    horizon = c.horizon if horizon is None else horizon
    if not isinstance(horizon, int) or not 1 <= horizon <= c.horizon:
        raise ValueError(f"`horizon` must be an int in [1, {c.horizon}] (this model's horizon), got {horizon!r}")
    frame = _image("frame", frame)
    camera = _array("camera", camera, (7,)).astype(np.float32)
    K = _array("K", K, (3, 3)).astype(np.float64).copy()
    h, w = frame.shape[:2]
    goal = None
    if goal_image is not None:
        goal = _image("goal_image", goal_image)
        if goal.shape != frame.shape:
            raise ValueError(f"`goal_image` must match the frame's size {frame.shape[:2]}, got {goal.shape[:2]}")
    hist = _history(history, camera, c.history)
    tgt = None
    if target is not None:
        tp = _array("target", target, (2, 51)).astype(np.float32)
        tv = np.ones(2, bool) if target_visible is None else _array("target_visible", target_visible, (2,)).astype(bool)
        tgt = (tp, tv)
    if text is not None and not isinstance(text, str):
        raise ValueError(f"`text` must be a string, got {type(text).__name__}")
    if start not in ("auto", "noise", "retrieval"):
        raise ValueError(f"`start` must be 'auto', 'noise' or 'retrieval', got {start!r}")
    net = retrieval_forecaster(model)
    bank = getattr(model, "bank", None)
    bank_only = net is None and bank is not None and bank.params is not None
    can_retrieve = history is not None and (net is not None or (bank_only and len(hist[0]) >= RETRIEVAL_HISTORY))
    if start == "retrieval" and not can_retrieve:
        raise ValueError("`start='retrieval'` needs a nearest-neighbour bank with hand parameters (or a residual "
                         "corrector with one) and a `history` (of at least "
                         f"{RETRIEVAL_HISTORY} frames without a corrector)")  # fmt: skip
    if start == "retrieval" and (init is not None or noise is not None):
        raise ValueError("`start='retrieval'` draws its own starting points; pass neither `init` nor `noise`")
    retrieve = start == "retrieval" or (start == "auto" and can_retrieve and init is None and noise is None)
    s = c.image_size
    K[0] *= s / w
    K[1] *= s / h
    to_u8 = lambda x: (resize_images(x, s) * 255).round().to(torch.uint8).numpy()  # noqa: E731
    item = {"image": to_u8(frame), "goal": None if goal is None else to_u8(goal), "camera": camera, "K": K,
            "history": hist, "future": (np.zeros((0, 2, 51)), np.zeros((0, 2), bool), np.zeros((0, 7))),
            "text": text, "target": tgt}  # fmt: skip
    batch: ForecastBatch = collate([item], c.history, c.horizon, s)
    if retrieve and net is None:  # the bank's diverse futures, decoded through the hand model (no network pass)
        from .state import decode_states

        starts = _retrieved_init(bank, hist, camera, text, k, horizon, c.horizon, diverse=True)
        return Forecast.from_decoded(decode_states(starts[:, :horizon]))
    if retrieve:
        assert net is not None
        if net.config.horizon < horizon or net.config.history != c.history or net.config.image_size != s:
            raise ValueError("the residual corrector's horizon, history or image size does not fit its forecaster")
        start_states = _retrieved_init(net.bank, hist, camera, text, k, horizon, net.config.horizon)[None]
        return net.forecast_batch(batch, k, horizon, steps, generator, init=start_states, source="retrieval")[0]
    start_states = None if init is None else _init_states(init, k, c.horizon)[None]
    return model.forecast_batch(batch, k, horizon, steps, generator, None if noise is None else noise[None],
                                start_states, strength)[0]  # fmt: skip


#: observed frames a residual forecaster's retrieval matches (the forecasting protocol's 4)
RETRIEVAL_HISTORY = 4


def retrieved_states(bank: Any, seen: np.ndarray, seen_visible: np.ndarray, camera: np.ndarray, text: str | None,
                     k: int, horizon: int, model_horizon: int, diverse: bool = False) -> torch.Tensor:  # fmt: skip
    """(k, model_horizon, STATE_DIM) raw states: the bank's 5 futures of ``horizon`` frames nearest to the observed
    keypoints ``seen`` (H, 12, 3) with visibility ``seen_visible`` (H, 2) (sample j takes the (j mod 5)-th; a bank of
    fewer windows repeats them), the last observed ``camera`` (7,) held, the last frame held to ``model_horizon``;
    ``diverse``: the bank's ``k`` diverse futures (``NeighbourBank.nearest_diverse``) instead of the 5 nearest."""
    near, vis = bank.retrieve_params(seen, seen_visible, horizon, k if diverse else 5, text, diverse=diverse)
    pick = np.arange(k) % len(near)
    cam = np.repeat(np.asarray(camera)[None, None], k, 0).repeat(horizon, 1)
    return _init_states((near[pick], vis[pick], cam), k, model_horizon)


def _retrieved_init(bank: Any, hist: tuple[np.ndarray, np.ndarray, np.ndarray], camera: np.ndarray,
                    text: str | None, k: int, horizon: int, model_horizon: int,
                    diverse: bool = False) -> torch.Tensor:  # fmt: skip
    """:func:`retrieved_states` for the newest (at most :data:`RETRIEVAL_HISTORY`) frames of a ``history`` given as
    hand parameters (their keypoints from the hand model)."""
    from .state import decode_states, encode_states, forecast_keypoints

    params, visible, cams = hist
    T = bank.keypoints.shape[1]
    seen_n = max(1, min(len(params), RETRIEVAL_HISTORY, T - 1))
    states = encode_states(torch.from_numpy(params[-seen_n:]), torch.from_numpy(visible[-seen_n:]),
                           torch.from_numpy(cams[-seen_n:]))  # fmt: skip
    seen = forecast_keypoints(decode_states(states).joints).numpy()
    return retrieved_states(bank, seen, visible[-seen_n:], camera, text, k, min(horizon, T - seen_n), model_horizon,
                            diverse)  # fmt: skip


def _init_states(init: tuple[Any, Any, Any], k: int, horizon: int) -> torch.Tensor:
    """``(params, visible, camera)`` of k trajectories -> (k, horizon, STATE_DIM) raw states (last frame held)."""
    from .state import encode_states

    if not isinstance(init, tuple | list) or len(init) != 3:
        raise ValueError("`init` must be a tuple (params (k, F, 2, 51), visible (k, F, 2), camera (k, F, 7))")
    params = _array("init params", init[0], (k, None, 2, 51))
    f = params.shape[1]
    if not 1 <= f <= horizon:
        raise ValueError(f"`init` holds {f} frames; this model predicts 1 to {horizon}")
    visible = _array("init visible", init[1], (k, f, 2)).astype(bool)
    camera = _array("init camera", init[2], (k, f, 7))
    hold = np.minimum(np.arange(horizon), f - 1)
    return encode_states(torch.from_numpy(params[:, hold].astype(np.float32)), torch.from_numpy(visible[:, hold]),
                         torch.from_numpy(camera[:, hold].astype(np.float32)))  # fmt: skip
