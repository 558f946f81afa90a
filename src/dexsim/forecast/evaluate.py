"""HandWorld's forecasting protocol and its baselines.

Best-of-K average (ADE) and final (FDE) displacement, in metres, of the 12 keypoints (both wrists and
the ten fingertips) over the future frames where the ground-truth hand is visible. Baselines: the hands
held still, constant velocity from the last two observed frames, and nearest-neighbour retrieval from a
bank of training trajectories (the K nearest observed histories among windows with the same text when
there are enough of them, their futures moved to start where the query's hands are).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .state import KEYPOINTS

__all__ = [
    "DIVERSE_CAP",
    "DIVERSE_POOL",
    "NeighbourBank",
    "constant_velocity",
    "displacements",
    "held_still",
    "table_penetration",
]

#: diverse retrieval chooses among this many nearest histories ...
DIVERSE_POOL = 10
#: ... futures whose final keypoints lie this far apart (m, root-mean-square over the 12) count as fully distinct
DIVERSE_CAP = 0.04


def displacements(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """Best-of-K (ADE, FDE) in metres: ``pred`` (K, F, 12, 3), ``truth`` (F, 12, 3), ``valid`` (F, 12).
    ADE averages over valid frames and keypoints, FDE over the valid keypoints of the last frame with any;
    each takes the best of the K samples. NaN when nothing is valid."""
    err = np.linalg.norm(pred - truth[None], axis=-1)  # (K, F, 12)
    if not valid.any():
        return float("nan"), float("nan")
    ade = (err * valid).sum((1, 2)) / valid.sum()
    last = int(np.nonzero(valid.any(-1))[0][-1])
    fde = (err[:, last] * valid[last]).sum(-1) / valid[last].sum()
    return float(ade.min()), float(fde.min())


def held_still(history: np.ndarray, horizon: int) -> np.ndarray:
    """(H, 12, 3) observed keypoints -> (1, horizon, 12, 3): the last frame repeated."""
    return np.repeat(history[-1:][None], horizon, 1)


def constant_velocity(history: np.ndarray, horizon: int) -> np.ndarray:
    """(H, 12, 3) -> (1, horizon, 12, 3): the last frame-to-frame motion continued."""
    v = history[-1] - history[-2] if len(history) > 1 else np.zeros_like(history[-1])
    return (history[-1][None] + np.arange(1, horizon + 1)[:, None, None] * v[None])[None]


def keypoint_visibility(visible: np.ndarray) -> np.ndarray:
    """(..., 2) hand visibility -> (..., 12) keypoint visibility."""
    return np.repeat(visible, len(KEYPOINTS), -1)


def table_penetration(joints: np.ndarray, visible: np.ndarray, table_height: float, tolerance: float = 0.01,
                      table_xy: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
    """Per sample: does any joint of a visible hand go more than ``tolerance`` below the table top?
    ``joints`` (K, F, 2, 21, 3), ``visible`` (K, F, 2); ``table_xy`` (lo, hi) limits the check to the table."""
    z = joints[..., 2]
    below = z < table_height - tolerance
    if table_xy is not None:
        lo, hi = table_xy
        xy = joints[..., :2]
        below &= ((xy >= lo) & (xy <= hi)).all(-1)
    return (below.any(-1) & visible).any((1, 2))


@dataclass
class NeighbourBank:
    """Training trajectories for retrieval: ``keypoints`` (N, T, 12, 3), ``visible`` (N, T, 2), ``texts`` (N,),
    and optionally the hands' ``params`` (N, T, 2, 51) (what retrieval-started forecasts refine)."""

    keypoints: np.ndarray
    visible: np.ndarray
    texts: list[str]
    params: np.ndarray | None = None

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"keypoints": self.keypoints.astype(np.float16), "visible": self.visible.astype(np.uint8)}
        if self.params is not None:
            arrays["params"] = self.params.astype(np.float16)
        save_file(arrays, str(folder / "nn_bank.safetensors"))
        (folder / "nn_bank.json").write_text(json.dumps({"texts": self.texts}))

    @classmethod
    def load(cls, folder: str | Path) -> NeighbourBank:
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / "nn_bank.safetensors").is_file():
            raise FileNotFoundError(f"no nearest-neighbour bank (nn_bank.safetensors) in {folder}; pass --train-data")
        arrays = load_file(str(folder / "nn_bank.safetensors"))
        texts = json.loads((folder / "nn_bank.json").read_text())["texts"]
        params = arrays["params"].astype(np.float32) if "params" in arrays else None
        return cls(arrays["keypoints"].astype(np.float32), arrays["visible"].astype(bool), list(texts), params)

    def retrieve(self, history: np.ndarray, history_visible: np.ndarray, horizon: int, k: int,
                 text: str | None = None, diverse: bool = False) -> np.ndarray:  # fmt: skip
        """(k, horizon, 12, 3) futures of the ``k`` bank windows whose last ``len(history)`` observed frames
        are nearest to ``history`` (H, 12, 3) with visibility ``history_visible`` (H, 2), each moved so
        that its last observed frame sits on the query's (per hand); ``diverse``: chosen by
        :meth:`nearest_diverse` instead."""
        pick = self.nearest_diverse if diverse else self.nearest
        best, shift = pick(history, history_visible, horizon, k, text)
        H = len(history)
        fut = self.keypoints[best, H : H + horizon]  # (k, F, 12, 3)
        return fut + np.repeat(shift, len(KEYPOINTS), 1).reshape(len(best), 1, 12, 3)

    def retrieve_params(self, history: np.ndarray, history_visible: np.ndarray, horizon: int, k: int,
                        text: str | None = None, exclude: int | None = None,
                        diverse: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The same ``k`` futures as :meth:`retrieve` as hand parameters: ``params`` (k, horizon, 2, 51), wrists
        moved alike, and ``visible`` (k, horizon, 2) (``exclude``: see :meth:`nearest`)."""
        if self.params is None:
            raise ValueError("this bank holds no hand parameters (an older bank); rebuild it with the trainer")
        pick = self.nearest_diverse if diverse else self.nearest
        best, shift = pick(history, history_visible, horizon, k, text, exclude)
        H = len(history)
        params = self.params[best, H : H + horizon].copy()
        visible = self.visible[best, H : H + horizon]
        params[..., 48:51] += shift[:, None, :, :] * visible[..., None]
        return params, visible

    def nearest(self, history: np.ndarray, history_visible: np.ndarray, horizon: int, k: int,
                text: str | None = None, exclude: int | None = None,
                text_min: int | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Indices (at most k,) of the nearest bank windows (see :meth:`retrieve`) and the per-hand shift (k, 2, 3)
        that moves each one's last observed wrist onto the query's (zero where a hand is not seen in both);
        ``exclude``: a bank index never returned (the query's own clip, when it is in the bank); ``text``: only
        windows of that text when at least ``text_min`` (default ``k``) have it."""
        H = len(history)
        T = self.keypoints.shape[1]
        if H + horizon > T:
            raise ValueError(f"the bank's clips have {T} frames: {H} observed + {horizon} future do not fit")
        keep = np.ones(len(self.texts), bool)
        if exclude is not None:
            keep[exclude] = False
        pool = np.flatnonzero(keep)
        if text is not None:
            same = np.array([t == text for t in self.texts]) & keep
            if same.sum() >= (k if text_min is None else text_min):
                pool = np.flatnonzero(same)
        past = self.keypoints[pool, :H]  # (P, H, 12, 3)
        vis = self.visible[pool, :H]
        kv = keypoint_visibility(history_visible)  # (H, 12)
        d = (np.linalg.norm(past - history[None], axis=-1) * kv[None]).sum((1, 2))
        d += 1.0 * (vis != history_visible[None]).sum((1, 2))  # a hand seen in one and not the other is far
        best = pool[np.argsort(d, kind="stable")[:k]]
        shift = history[-1][None] - self.keypoints[best, H - 1]  # (k, 12, 3)
        hand_shift = shift.reshape(len(best), 2, len(KEYPOINTS), 3)[:, :, 0]  # move each hand by its wrist
        both = history_visible[-1][None] & self.visible[best, H - 1]  # (k, 2): seen in both
        return best, hand_shift * both[:, :, None]

    def nearest_diverse(self, history: np.ndarray, history_visible: np.ndarray, horizon: int, k: int,
                        text: str | None = None, exclude: int | None = None, pool: int = DIVERSE_POOL,
                        cap: float = DIVERSE_CAP) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Like :meth:`nearest`, but ``k`` futures that cover the likely outcomes instead of ``k`` near copies of
        one: among the ``max(pool, k)`` nearest histories (of ``text``, when at least ``k`` windows have it, as
        :meth:`nearest` filters), the nearest first, then, one at a time, the one whose final future keypoints
        (moved onto the query) lie farthest from every one chosen so far (RMS distance over the 12 keypoints,
        counted up to ``cap`` m; ties go to the nearer history). Best-of-K figures reward this (a pick-and-place's
        drop point is a uniform draw the history does not reveal)."""
        best, shift = self.nearest(history, history_visible, horizon, max(pool, k), text, exclude, text_min=k)
        H = len(history)
        moved = self.keypoints[best, H + horizon - 1] + np.repeat(shift, len(KEYPOINTS), 1)  # (P, 12, 3)
        final = moved.reshape(len(best), -1)
        chosen = [0]
        while len(chosen) < min(k, len(best)):
            gap = np.linalg.norm(final[:, None] - final[chosen][None], axis=-1).min(1) / np.sqrt(len(final[0]) / 3)
            score = np.minimum(gap, cap)
            score[chosen] = -np.inf
            chosen.append(int(np.argmax(score)))  # argmax takes the first (nearest) of equal scores
        return best[chosen], shift[chosen]
