"""``dexsim bench forecast``: HandWorld's forecasting protocol on held-out clips, beside its baselines.

Every held-out clip is observed for its first 4 frames (trajectory and the 4th frame) and the next 12
are predicted, with the clip's text as the goal (``goal="text"``; ``image`` adds the final scene,
``none`` gives neither). Figures per method: best-of-K ADE / FDE of the 12 keypoints (m) for K = 1 and 5.
The model also reports how often a sample leaves the joint limits or passes through the table, and
the time of K = 8 proposals.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["GOALS", "bench_forecast", "forecast_figure"]

GOALS = ("text", "image", "text+image", "none")
OBSERVED, HORIZON = 3, 12  # frames 0..3 seen, 4..15 predicted


def _metrics(rows: list[tuple[float, float, float, float]]) -> dict[str, float]:
    a = np.array(rows, np.float64)
    keys = ("ade_k1", "fde_k1", "ade_k5", "fde_k5")
    return {k: float(np.nanmean(a[:, i])) for i, k in enumerate(keys)}


def _inference_seconds(model: Any, batch: Any, repeats: int = 7) -> float:
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        model.forecast_batch(batch, 8, None, generator=torch.Generator().manual_seed(r))
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def _model_source(model: Any, start: str) -> str:
    """What forecasts the model row: ``"forecaster"`` (the network from noise), ``"bridge"`` (a bridge's flow from
    the 5 retrieved futures; the bench's only, asked for by ``start="retrieval"``), ``"residual"`` / ``"corrector"``
    (a residual forecaster, or the folder's corrector, correcting them) or ``"bank"`` (the shipped bank's diverse
    futures, as :func:`~dexsim.forecast.forecast` returns them)."""
    c = model.config
    if start == "noise":
        return "forecaster"
    if start == "retrieval" and getattr(c, "bridge", False) and not getattr(c, "bridge_residual", False):
        return "bridge"
    if getattr(c, "bridge_residual", False):
        return "residual"
    if getattr(model, "corrector", None) is not None:
        return "corrector"
    bank = getattr(model, "bank", None)
    if bank is not None and bank.params is not None:
        return "bank"
    if start == "retrieval":
        raise ValueError("`start='retrieval'` needs a bridge forecaster, a residual corrector (a `corrector/` "
                         "folder) or a nearest-neighbour bank with hand parameters beside the weights; this one "
                         "has none")  # fmt: skip
    return "forecaster"


#: the clips the figure shows: the first held-out clip whose text holds each of these (no choice by result; the
#: first clip when none does)
FIGURE_KINDS = ("picks up", "pushes the", "pulls the drawer")
FIGURE_SCALE = 4


def _as_joints(keypoints: np.ndarray) -> np.ndarray:
    """(..., 12, 3) protocol keypoints -> (..., 2, 21, 3) joints with only the wrist and fingertips filled."""
    from ..forecast.state import KEYPOINTS

    out = np.zeros((*keypoints.shape[:-2], 2, 21, 3), keypoints.dtype)
    out[..., list(KEYPOINTS), :] = keypoints.reshape(*keypoints.shape[:-2], 2, len(KEYPOINTS), 3)
    return out


def _figure_row(clip: Any, observed: int, truth: np.ndarray, nn: np.ndarray, model: np.ndarray,
                visible: np.ndarray) -> np.ndarray:  # fmt: skip
    """(3, H, W, 3) panels over the last observed frame (upscaled): the true future, retrieval's 5, the model's 5.
    ``truth`` (F, 12, 3), ``nn`` / ``model`` (5, F, 12, 3), ``visible`` (F, 2)."""
    from ..forecast.draw import draw_forecasts

    frame = np.asarray(clip.frames[observed]).transpose(1, 2, 0)
    frame = np.repeat(np.repeat(frame, FIGURE_SCALE, 0), FIGURE_SCALE, 1)
    K = np.asarray(clip.K, np.float64).copy()
    K[:2] *= FIGURE_SCALE  # continuous pixel coordinates (pixel i spans [i, i + 1)): a plain scale
    panels = []
    for paths in (truth[None], nn, model):
        vis = np.repeat(visible[None], len(paths), 0)
        panels.append(draw_forecasts(frame, _as_joints(paths), vis, clip.camera[observed], K))
    return np.stack(panels)


def forecast_figure(rows: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """The figure's labelled rows -> one image (see :func:`bench_forecast`'s ``figure``)."""
    from ..video import contact_sheet

    return contact_sheet(rows, max_frames=3)


def bench_forecast(model: Any, data: list[str | Path], train_data: list[str | Path] | None = None,
                   goal: str = "text", clips: int | None = None, seed: int = 0, progress: bool = True,
                   refine: float | None = None, start: str = "auto",
                   figure: bool = False) -> dict[str, Any]:  # fmt: skip
    """The forecasting benchmark of ``model`` (a :class:`~dexsim.forecast.HandForecaster`) on the held-out
    ``data`` folders; the nearest-neighbour baseline retrieves from ``train_data`` (default: the bank
    shipped with the model, ``model.bank``). ``start``: where the model row's forecasts come from, as in
    :func:`~dexsim.forecast.forecast`: ``"noise"`` (the network's flow from noise), ``"retrieval"`` (a bridge
    forecaster's flow from the bank's 5 retrieved futures; a residual corrector's corrections of them; else the
    shipped bank's 5 diverse futures, ``NeighbourBank.nearest_diverse``), ``"auto"`` (retrieval where the model
    has what it needs, else noise). When the model row is not from noise, ``network_from_noise`` reports the
    network's own figures beside it (``inference_k8_s`` times the network's K = 8 planning proposals from noise, the
    proposals the planners draw). ``refine``: the network starts from the bank's 5 nearest futures and
    re-draws them from ``refine`` of the way back to noise (the model row is then the network's). ``figure``: the
    result's ``"figure"`` is an (H, W, 3) uint8 picture of the first pick-and-place, push and drawer pull among the
    clips (else the first clip): their true future, retrieval's 5 and the model's 5 drawn over the last observed
    frame (wrist paths, final fingertips)."""
    from ..forecast.data import ForecastClips
    from ..forecast.evaluate import (
        constant_velocity,
        displacements,
        held_still,
        keypoint_visibility,
        table_penetration,
    )
    from ..forecast.model import Forecast
    from ..forecast.predict import retrieved_states
    from ..forecast.state import decode_states, forecast_keypoints
    from ..training.forecast import ForecastData

    if goal not in GOALS:
        raise ValueError(f"`goal` must be one of {GOALS}, got {goal!r}")
    c = model.config
    if start not in ("auto", "noise", "retrieval"):
        raise ValueError(f"`start` must be 'auto', 'noise' or 'retrieval', got {start!r}")
    if refine is not None and start == "retrieval":
        raise ValueError("`start='retrieval'` forecasts from the retrieved futures as they are (or corrects them); it "
                         "does not combine with `refine`, which re-draws them with the network's flow")  # fmt: skip
    if refine is not None:
        start = "noise"
    mode = _model_source(model, start)
    runner = model.corrector if mode == "corrector" else model
    if train_data:
        bank = ForecastData(list(train_data), model, progress=progress).bank()
    else:
        bank = getattr(model, "bank", None)
        if bank is None:
            raise ValueError("this forecaster has no nearest-neighbour bank beside its weights; pass --train-data")
    held = ForecastClips(list(data), c.image_size, c.history, c.horizon, progress=progress)
    n = len(held) if clips is None else min(clips, len(held))
    rows: dict[str, list] = {"model": [], "still": [], "constant_velocity": [], "nearest_neighbour": []}
    if mode != "forecaster":
        rows["network_from_noise"] = []
    violations, penetrations, truth_pen = [], [], []
    shown: dict[str, tuple[str, np.ndarray]] = {}
    fut = slice(OBSERVED + 1, OBSERVED + 1 + HORIZON)
    for i in tqdm(range(n), desc="forecast bench", unit="clip", disable=not progress):
        clip = held.clips[i]
        if len(clip.params) < OBSERVED + 1 + HORIZON:
            raise ValueError(f"clip {clip.clip_id} has {len(clip.params)} frames; the protocol needs "
                             f"{OBSERVED + 1 + HORIZON}")  # fmt: skip
        truth = forecast_keypoints(clip.joints[fut]).numpy()
        valid = keypoint_visibility(clip.visible[fut])
        seen = forecast_keypoints(clip.joints[: OBSERVED + 1]).numpy()
        batch = held.window(i, OBSERVED, goal="image" in goal, text="text" in goal)
        text = clip.text if "text" in goal else None
        window_seed = seed * 100_003 + i
        init, strength = None, 1.0
        if refine is not None or mode != "forecaster":  # the bank's futures: diverse ones are the model row itself
            init = retrieved_states(model.bank if mode == "bank" else bank, seen, clip.visible[: OBSERVED + 1],
                                    clip.camera[OBSERVED], text, 5, HORIZON, runner.config.horizon,
                                    diverse=mode == "bank")[None]  # fmt: skip
            strength = 1.0 if refine is None else refine
        source = "retrieval" if mode in ("bridge", "residual", "corrector") else "noise"
        if mode == "bank":  # the futures as forecast() returns them: decoded, no network pass
            f = Forecast.from_decoded(decode_states(init[0, :, :HORIZON]))
        else:
            f = runner.forecast_batch(batch, 5, HORIZON, generator=torch.Generator().manual_seed(window_seed),
                                      init=init, strength=strength, source=source)[0]  # fmt: skip
        pred = forecast_keypoints(f.joints).numpy()
        nn = bank.retrieve(seen, clip.visible[: OBSERVED + 1], HORIZON, 5, text)
        methods = {"model": pred, "still": held_still(seen, HORIZON),
                   "constant_velocity": constant_velocity(seen, HORIZON), "nearest_neighbour": nn}  # fmt: skip
        if "network_from_noise" in rows:
            own = model.forecast_batch(batch, 5, HORIZON, generator=torch.Generator().manual_seed(window_seed))[0]
            methods["network_from_noise"] = forecast_keypoints(own.joints).numpy()
        kind = next((k for k in FIGURE_KINDS if k in clip.text and k not in shown), None if i else "first")
        if figure and kind is not None:
            shown[kind] = (f"{clip.text}: truth | nearest neighbour (5) | {mode} (5)",
                           _figure_row(clip, OBSERVED, truth, nn, pred, clip.visible[fut]))  # fmt: skip
        for name, p in methods.items():
            ade1, fde1 = displacements(p[:1], truth, valid)
            ade5, fde5 = displacements(p, truth, valid)
            rows[name].append((ade1, fde1, ade5, fde5))
        violations.append(f.limit_violation.mean())
        penetrations.append(table_penetration(f.joints, f.visible, clip.table_height, table_xy=clip.table_xy).mean())
        truth_pen.append(table_penetration(clip.joints[None, fut], clip.visible[None, fut], clip.table_height,
                                           table_xy=clip.table_xy)[0])  # fmt: skip
    out: dict[str, Any] = {name: _metrics(r) for name, r in rows.items()}
    cv = out["constant_velocity"]["fde_k5"]
    out |= {
        "clips": n, "observed_frames": OBSERVED + 1, "horizon": HORIZON, "goal": goal, "seed": seed, "refine": refine,
        "start": start,
        "data": [str(d) for d in data], "train_data": [str(d) for d in train_data] if train_data else "shipped bank",
        "fde_k5_vs_constant_velocity": float(1 - out["model"]["fde_k5"] / cv) if cv > 0 else float("nan"),
        "joint_limit_violation_rate": float(np.mean(violations)),
        "table_penetration_rate": float(np.mean(penetrations)),
        "ground_truth_table_penetration_rate": float(np.mean(truth_pen)),
        "inference_k8_s": _inference_seconds(model, held.window(0, -1)),
        "model_network": mode,
    }  # fmt: skip
    if figure:
        kinds = [k for k in FIGURE_KINDS if k in shown] or ["first"]  # none of them: the first clip
        out["figure"] = forecast_figure([shown[k] for k in kinds])
    return out
