"""The bridge forecaster: a flow from retrieved futures (other clips) to the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dexsim.forecast import FORECAST_CONFIGS, ForecastClips, HandForecaster, NeighbourBank
from dexsim.training.forecast import ForecastData

from .conftest import fit


def test_neighbour_bank_leaves_the_query_clip_out() -> None:
    rng = np.random.default_rng(1)
    kp = rng.normal(size=(6, 16, 12, 3)).astype(np.float32)
    vis = np.ones((6, 16, 2), bool)
    bank = NeighbourBank(kp, vis, ["a", "b", "a", "b", "a", "b"])
    assert bank.nearest(kp[2, :4], vis[2, :4], 12, k=1)[0][0] == 2  # itself first
    best, _ = bank.nearest(kp[2, :4], vis[2, :4], 12, k=2, text="a", exclude=2)
    assert sorted(best.tolist()) == [0, 4]  # the other clips of its text, never itself
    best, _ = bank.nearest(kp[2, :4], vis[2, :4], 12, k=5, exclude=2)
    assert 2 not in best and len(best) == 5


def test_training_windows_carry_starts_from_other_clips(clips: Path) -> None:
    model = HandForecaster(**FORECAST_CONFIGS["tiny-bridge"])
    data = ForecastData([clips], model, progress=False)
    assert data.bridge
    bank = data.bank()
    batch = data.clips.sample(12, np.random.default_rng(0), plan_prob=0.0, bank=bank, bridge_prob=1.0)
    assert batch.has_start is not None and bool(batch.has_start.all())
    assert batch.start.shape == (12, model.config.horizon, batch.start.shape[-1])
    # no window starts from its own clip's future: the start differs from the truth
    from dexsim.forecast import encode_states

    own = encode_states(batch.future, batch.future_visible, batch.future_camera)
    differs = ((batch.start - own).abs() * batch.future_mask[..., None]).amax((1, 2)) > 1e-4
    assert bool(differs.all())
    plain = data.clips.sample(12, np.random.default_rng(0), plan_prob=1.0, bank=bank, bridge_prob=1.0)
    assert plain.start is None  # planning windows observe nothing to retrieve with


def test_bridge_flow_starts_from_the_retrieved_future(clips: Path) -> None:
    torch.manual_seed(0)
    model = HandForecaster(**(FORECAST_CONFIGS["tiny-bridge"] | {"bridge_noise": 0.0}))
    data = ForecastClips([clips], 16, model.config.history, model.config.horizon, progress=False)
    batch = data.window(1, 3, goal=False)
    init = torch.randn(1, 3, model.config.horizon, model.state_mean.shape[0]) * 0.1
    # an untrained bridge predicts zero velocity: the retrieved start comes back unchanged
    out = model.sample(batch, k=3, steps=4, init=init, source="retrieval")
    assert torch.allclose(out, init, atol=1e-5)
    with pytest.raises(ValueError, match="bridge"):
        HandForecaster(**FORECAST_CONFIGS["tiny"]).sample(batch, k=3, init=init, source="retrieval")
    with pytest.raises(ValueError, match="bridge"):
        model.sample(batch, k=3, source="retrieval")  # no start given


def test_bridge_learns_to_correct_its_starts(clips: Path) -> None:
    torch.manual_seed(0)
    model = HandForecaster(**FORECAST_CONFIGS["tiny-bridge"])
    data = ForecastData([clips], model, progress=False)
    model.set_statistics(data.states())
    batch = data.clips.sample(8, np.random.default_rng(0), plan_prob=0.0, bank=data.bank(), bridge_prob=1.0)
    losses = fit(model, batch, 120)
    assert model.source_embed.abs().sum() > 0  # the source embedding is trained
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10]), (losses[:3], losses[-3:])


def test_bench_forecast_runs_the_bridge_from_retrieval(clips: Path, tmp_path: Path) -> None:
    from dexsim.bench.forecast import bench_forecast

    torch.manual_seed(0)
    model = HandForecaster(**(FORECAST_CONFIGS["tiny-bridge"] | {"bridge_noise": 0.0}))
    data = ForecastData([clips], model, progress=False)
    model.set_statistics(data.states())
    model.bank = data.bank()
    # untrained (zero velocity) and noiseless: the bridge returns the retrieved futures, so retrieval's figures
    r = bench_forecast(model, [clips], progress=False, start="retrieval")
    assert r["start"] == "retrieval"
    for key in ("ade_k5", "fde_k5"):
        assert abs(r["model"][key] - r["nearest_neighbour"][key]) < 2e-3
    with pytest.raises(ValueError, match="refine"):
        bench_forecast(model, [clips], progress=False, start="retrieval", refine=0.5)


def test_a_bridge_starts_from_a_saved_forecaster(tiny_forecaster_dir: Path, tmp_path: Path) -> None:
    from dexsim.forecast import load_forecaster
    from dexsim.training.forecast import build_forecaster, init_forecaster

    net = build_forecaster("tiny-bridge", 0)
    report = init_forecaster(net, tiny_forecaster_dir)
    assert report["skipped"] == ["source_embed"]
    saved = load_forecaster(tiny_forecaster_dir).state_dict()
    own = net.state_dict()
    assert all(torch.equal(own[k], v) for k, v in saved.items())  # every saved tensor copied
    assert not net.source_embed.any()  # the new source embedding starts at zero
    with pytest.raises(FileNotFoundError, match="no forecaster weights"):
        init_forecaster(build_forecaster("tiny-bridge", 0), tmp_path)
