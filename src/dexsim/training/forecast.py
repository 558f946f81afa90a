"""The forecaster's side of the Accelerate trainer: its data stream, validation and export."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import DataPosition

__all__ = [
    "FORECAST_PRESET", "ForecastData", "ForecastPipe", "export_forecaster", "init_forecaster", "validate_forecaster",
]  # fmt: skip

logger = logging.getLogger(__name__)

FORECAST_PRESET = "forecast-flow-matching"
#: the observation frame and horizon of HandWorld-style evaluation windows (4 frames seen, 12 predicted)
EVAL_OBSERVED, EVAL_HORIZON = 3, 12
#: the share of a bridge forecaster's observed training windows that start from a retrieved future (0.9 against 0.5:
#: best-of-5 FDE 0.029 against 0.032 m on the validation split)
BRIDGE_PROB = 0.9


class ForecastPipe:
    """Holds the forecaster where the trainer expects a pipeline's ``transformer``."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.transformer = model

    def to(self, device: Any) -> ForecastPipe:
        self.transformer.to(device)
        return self


def build_forecaster(model: str, seed: int) -> torch.nn.Module:
    """A fresh forecaster of a named size (:data:`~dexsim.forecast.FORECAST_CONFIGS`)."""
    from ..forecast import FORECAST_CONFIGS, HandForecaster

    if model not in FORECAST_CONFIGS:
        raise ValueError(f"unknown forecaster size {model!r}; choose one of {sorted(FORECAST_CONFIGS)}")
    torch.manual_seed(seed)
    return HandForecaster(**FORECAST_CONFIGS[model])


def init_forecaster(net: torch.nn.Module, folder: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Copy into ``net`` the tensors of a saved forecaster folder (``"default"``: the shipped one) whose name and
    shape match (``{"copied", "skipped"}``, see :func:`~dexsim.training._weights.copy_matching_tensors`)."""
    from safetensors.torch import load_file

    from ..forecast import default_forecaster_dir
    from ._weights import copy_matching_tensors

    root = default_forecaster_dir() if str(folder) == "default" else Path(folder)
    weights = root / "diffusion_pytorch_model.safetensors"  # the network only, not the banks beside it
    if not weights.is_file():
        raise FileNotFoundError(f"`init_from`: no forecaster weights ({weights.name}) in {root}")
    return copy_matching_tensors(net, load_file(str(weights)), root)


class ForecastData:
    """Random training windows (:meth:`ForecastClips.sample`); batch ``n`` of a process depends only on
    (seed, rank, n), so a resumed run draws the batches it would have drawn."""

    def __init__(self, roots: list[str | os.PathLike[str]], model: torch.nn.Module, seed: int = 0, rank: int = 0,
                 progress: bool = True, windows: str = "mixed") -> None:  # fmt: skip
        from ..forecast.data import ForecastClips

        c = model.config
        self.clips = ForecastClips(roots, c.image_size, c.history, c.horizon, progress=progress)
        self.roots = [str(r) for r in roots]
        self.seed, self.rank = seed, rank
        self.position = DataPosition()
        self.bridge = bool(getattr(c, "bridge", False))
        if windows not in ("mixed", "observed"):
            raise ValueError(f"`windows` must be 'mixed' or 'observed', got {windows!r}")
        self.windows = windows
        self._bank: Any = None

    def restore(self, position: DataPosition) -> None:
        self.position = position

    def next_batch(self, batch_size: int) -> Any:
        rng = np.random.default_rng([self.seed, self.rank, self.position.index])
        self.position = DataPosition(0, self.position.index + 1, None)
        plan_prob = 0.0 if self.windows == "observed" else 0.5
        if not self.bridge:
            return self.clips.sample(batch_size, rng, plan_prob=plan_prob)
        bridge_prob = 1.0 if self.windows == "observed" else BRIDGE_PROB  # starts retrieved from the training clips
        return self.clips.sample(batch_size, rng, plan_prob=plan_prob, bank=self.cached_bank(), bridge_prob=bridge_prob)

    def states(self) -> torch.Tensor:
        """Every frame of every clip as (N, STATE_DIM) states (the normalisation statistics)."""
        from ..forecast.state import encode_states

        p = torch.from_numpy(np.concatenate([c.params for c in self.clips.clips]))
        v = torch.from_numpy(np.concatenate([c.visible for c in self.clips.clips]))
        cam = torch.from_numpy(np.concatenate([c.camera for c in self.clips.clips]))
        return encode_states(p, v, cam)

    def residual_states(self, windows: int = 2048, seed: int = 12345) -> torch.Tensor:
        """(N, STATE_DIM) corrections of observed training windows to their retrieved futures (truth minus retrieved,
        valid frames only): a residual forecaster's scale. Drawn with a fixed seed, so a resumed run gets the same."""
        from ..forecast.state import encode_states

        rng = np.random.default_rng(seed)
        out = []
        for _ in range(max(1, windows // 64)):
            b = self.clips.sample(64, rng, plan_prob=0.0, bank=self.cached_bank(), bridge_prob=1.0)
            truth = encode_states(b.future, b.future_visible, b.future_camera)
            out.append((truth - b.start)[b.future_mask & b.has_start[:, None]])
        return torch.cat(out)

    def bank_for_validation(self) -> Any:
        """The training clips' bank when this forecaster starts from retrieved futures (a bridge), else None."""
        return self.cached_bank() if self.bridge else None

    def cached_bank(self) -> Any:
        """:meth:`bank`, built once."""
        if self._bank is None:
            self._bank = self.bank()
        return self._bank

    def bank(self) -> Any:
        """The nearest-neighbour bank of these clips (shipped beside the weights)."""
        from ..forecast.evaluate import NeighbourBank
        from ..forecast.state import KEYPOINTS

        n = min(len(c.params) for c in self.clips.clips)
        kp = np.stack([c.joints[:n][:, :, list(KEYPOINTS)].reshape(n, -1, 3) for c in self.clips.clips])
        vis = np.stack([c.visible[:n] for c in self.clips.clips])
        params = np.stack([c.params[:n] for c in self.clips.clips])
        return NeighbourBank(kp, vis, [c.text for c in self.clips.clips], params)


_VALIDATION: dict[str, Any] = {}


def validate_forecaster(model: torch.nn.Module, root: str, clips: int = 16, bank: Any = None) -> dict[str, float]:
    """Best-of-5 final displacement (m) on the first ``clips`` clips of ``root`` (4 frames seen, 12 predicted);
    with a ``bank`` (a bridge forecaster's training clips), also from its 5 retrieved futures (``val_fde_k5_retrieval``)
    and for those futures themselves (``val_fde_k5_retrieved``)."""
    from ..forecast.data import ForecastClips
    from ..forecast.evaluate import displacements, keypoint_visibility
    from ..forecast.predict import retrieved_states
    from ..forecast.state import forecast_keypoints

    c = model.config
    if root not in _VALIDATION:
        data = ForecastClips([root], c.image_size, c.history, c.horizon, progress=False)
        data.clips = data.clips[:clips]
        _VALIDATION[root] = data
    data = _VALIDATION[root]
    rows: dict[str, list[float]] = {"val_fde_k5": [], "val_fde_k5_retrieval": [], "val_fde_k5_retrieved": []}
    for i, clip in enumerate(data.clips):
        batch = data.window(i, EVAL_OBSERVED, goal=False, text=True)
        fut = slice(EVAL_OBSERVED + 1, EVAL_OBSERVED + 1 + EVAL_HORIZON)
        truth = forecast_keypoints(clip.joints[fut]).numpy()
        valid = keypoint_visibility(clip.visible[fut])
        f = model.forecast_batch(batch, 5, EVAL_HORIZON, generator=torch.Generator().manual_seed(i))[0]
        rows["val_fde_k5"].append(displacements(forecast_keypoints(f.joints).numpy(), truth, valid)[1])
        if bank is None:
            continue
        seen = forecast_keypoints(clip.joints[: EVAL_OBSERVED + 1]).numpy()
        init = retrieved_states(bank, seen, clip.visible[: EVAL_OBSERVED + 1], clip.camera[EVAL_OBSERVED], clip.text, 5,
                                EVAL_HORIZON, c.horizon)[None]  # fmt: skip
        f = model.forecast_batch(batch, 5, EVAL_HORIZON, generator=torch.Generator().manual_seed(i), init=init,
                                 source="retrieval")[0]  # fmt: skip
        rows["val_fde_k5_retrieval"].append(displacements(forecast_keypoints(f.joints).numpy(), truth, valid)[1])
        retrieved = bank.retrieve(seen, clip.visible[: EVAL_OBSERVED + 1], EVAL_HORIZON, 5, clip.text)
        rows["val_fde_k5_retrieved"].append(displacements(retrieved, truth, valid)[1])
    return {k: float(np.nanmean(v)) for k, v in rows.items() if v}


def export_forecaster(model: torch.nn.Module, data: ForecastData, path: Path) -> Path:
    """Save the forecaster (``save_pretrained``: config.json + safetensors), its nearest-neighbour bank and,
    when the data holds actions that move something, the action bank of grounded proposals."""
    from ..forecast.ground import ActionBank

    model.save_pretrained(str(path))
    data.bank().save(path)
    try:
        ActionBank.build(data.roots, progress=True).save(path)
    except ValueError as e:  # no push, pick-and-place or drawer pull in the data: proposals stay ungrounded
        logger.info("no action bank saved: %s", e)
    return path
