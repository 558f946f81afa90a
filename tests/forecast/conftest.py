"""A tiny datagen dataset (16-frame clips at 32x32) and a tiny forecaster trained on it for a few steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dexsim.data import DatagenConfig, generate


@pytest.fixture(scope="session")
def forecast_cache(tmp_path_factory) -> Path:
    """The goal-render cache of these tests, away from the user's."""
    import os

    path = tmp_path_factory.mktemp("cache")
    os.environ["DEXSIM_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory, forecast_cache) -> Path:
    root = tmp_path_factory.mktemp("forecast") / "clips"
    generate(DatagenConfig(out=str(root), clips=4, width=32, height=32, frames=16, density_scale=0.2,
                           kinds=("push", "touch")), progress=False)  # fmt: skip
    return root


@pytest.fixture(scope="session")
def tiny_forecaster_dir(clips: Path, tmp_path_factory) -> Path:
    """The folder of a tiny forecaster trained by the trainer's preset for a few steps."""
    from dexsim.training import preset, train

    out = tmp_path_factory.mktemp("fc-run")
    cfg = preset("forecast-flow-matching", data=[str(clips)], out=str(out), model="tiny", steps=6, batch_size=4,
                 checkpoint_every=3, validate_every=6)  # fmt: skip
    torch.manual_seed(0)
    result = train(cfg, progress=False)
    assert result["finished"]
    return out / "model"


@pytest.fixture(scope="session")
def tiny_forecaster(tiny_forecaster_dir: Path):
    """The tiny forecaster, loaded back from its folder."""
    from dexsim.forecast import load_forecaster

    return load_forecaster(tiny_forecaster_dir)


def fit(model: torch.nn.Module, batch: object, steps: int, lr: float = 3e-3) -> list[float]:
    """Adam on one batch's flow-matching loss for ``steps`` steps (seeded noise); the losses."""
    opt = torch.optim.Adam(model.parameters(), lr)
    losses = []
    for step in range(steps):
        loss = model.loss(batch, torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
