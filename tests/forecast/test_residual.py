"""The residual forecaster: from a retrieved future (another clip's), it samples the correction to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dexsim.forecast import FORECAST_CONFIGS, ForecastClips, HandForecaster, encode_states
from dexsim.training.forecast import ForecastData

from .conftest import fit


def _trained_stats(clips: Path) -> tuple[HandForecaster, ForecastData]:
    torch.manual_seed(0)
    model = HandForecaster(**FORECAST_CONFIGS["tiny-residual"])
    data = ForecastData([clips], model, progress=False)
    model.set_statistics(data.states())
    model.set_residual_statistics(data.residual_states(windows=128))
    return model, data


def test_residual_needs_a_bridge_and_is_scaled_by_its_corrections(clips: Path) -> None:
    with pytest.raises(ValueError, match="bridge=True"):
        HandForecaster(**(FORECAST_CONFIGS["tiny"] | {"bridge_residual": True}))
    with pytest.raises(ValueError, match="bridge_residual"):
        HandForecaster(**FORECAST_CONFIGS["tiny-bridge"]).set_residual_statistics(torch.zeros(4, 119))
    model, data = _trained_stats(clips)
    residuals = data.residual_states(windows=128)
    assert residuals.shape[1] == model.state_std.shape[0] and residuals.shape[0] > 64
    want = residuals.std(0).clamp(min=0.05 * model.state_std, max=model.state_std)
    assert torch.allclose(model.residual_std, want)  # the same windows (fixed seed), clamped to the states' scale
    assert float(model.residual_std.min()) > 0


def test_untrained_residual_returns_the_start_plus_scaled_noise(clips: Path) -> None:
    model, _ = _trained_stats(clips)
    data = ForecastClips([clips], 16, model.config.history, model.config.horizon, progress=False)
    batch = data.window(1, 3, goal=False)
    D = model.state_mean.shape[0]
    init = torch.randn(1, 3, model.config.horizon, D)
    noise = torch.randn(1, 3, model.config.horizon, D)
    out = model.sample(batch, k=3, steps=4, init=init, noise=noise, source="retrieval")
    # zero velocity at initialisation: the noise is not moved, only scaled into the corrections' units
    assert torch.allclose(out, init + noise * model.residual_std, atol=1e-5)


def test_residual_learns_to_correct_its_starts(clips: Path) -> None:
    model, data = _trained_stats(clips)
    batch = data.clips.sample(8, np.random.default_rng(0), plan_prob=0.0, bank=data.bank(), bridge_prob=1.0)
    truth = encode_states(batch.future, batch.future_visible, batch.future_camera)
    m = batch.future_mask[..., None].float()

    def error(x: torch.Tensor) -> float:  # mean |x - truth| over valid frames, in the states' std units
        return float((((x - truth) / model.state_std).abs() * m).sum() / (m.sum() * x.shape[-1]))

    def draw() -> torch.Tensor:
        return model.sample(batch, k=1, steps=8, init=batch.start[:, None], source="retrieval",
                            generator=torch.Generator().manual_seed(0))[:, 0]  # fmt: skip

    before = error(draw())  # untrained: the start plus noise of the corrections' size
    losses = fit(model, batch, 150)
    assert model.anchor_in.weight.abs().sum() > 0  # the retrieved future is read as a condition
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10]), (losses[:3], losses[-3:])
    after = error(draw())
    assert after < error(batch.start) and after < 0.7 * before, (after, error(batch.start), before)


def test_bench_forecast_runs_the_residual_from_retrieval(clips: Path) -> None:
    from dexsim.bench.forecast import bench_forecast

    model, data = _trained_stats(clips)
    model.bank = data.bank()
    model.residual_std.fill_(1e-7)  # corrections of no size: the retrieved futures come back
    r = bench_forecast(model, [clips], progress=False, start="retrieval")
    for key in ("ade_k5", "fde_k5"):
        assert abs(r["model"][key] - r["nearest_neighbour"][key]) < 2e-3


def test_validation_reads_a_residual_from_its_retrieved_futures(clips: Path) -> None:
    from dexsim.training.forecast import _VALIDATION, validate_forecaster

    model, data = _trained_stats(clips)
    model.residual_std.fill_(1e-7)
    _VALIDATION.clear()
    v = validate_forecaster(model, str(clips), clips=4, bank=data.bank_for_validation())
    assert set(v) == {"val_fde_k5", "val_fde_k5_retrieval", "val_fde_k5_retrieved"}
    # corrections of no size: the forecast from the retrieved futures is those futures
    assert abs(v["val_fde_k5_retrieval"] - v["val_fde_k5_retrieved"]) < 2e-3
    plain = HandForecaster(**FORECAST_CONFIGS["tiny"])
    assert ForecastData([clips], plain, progress=False).bank_for_validation() is None


def test_forecast_starts_a_residual_from_its_bank(clips: Path) -> None:
    from dexsim.forecast import forecast

    model, data = _trained_stats(clips)
    model.bank = data.bank()
    model.residual_std.fill_(1e-7)  # corrections of no size: the forecasts are the retrieved futures
    c = data.clips.clips[1]
    hist = {"params": c.params[:4], "visible": c.visible[:4], "camera": c.camera[:4]}
    frame = np.ascontiguousarray(c.frames[3].transpose(1, 2, 0))  # (H, W, 3) uint8
    f = forecast(model, frame, c.camera[3], c.K, hist, text=c.text, k=3, horizon=8)
    # the clip is in the bank, so its own future is the nearest: sample 0 is the truth
    seen = c.visible[4:12]
    assert np.allclose(f.visible[0], seen)
    assert np.allclose(f.params[0][..., 48:51][seen], c.params[4:12][..., 48:51][seen], atol=1e-3)
    noisy = forecast(model, frame, c.camera[3], c.K, hist, text=c.text, k=3, horizon=8, start="noise",
                     generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert not np.allclose(noisy.params[0][..., 48:51][seen], c.params[4:12][..., 48:51][seen], atol=1e-3)
    with pytest.raises(ValueError, match="start"):
        forecast(model, frame, c.camera[3], c.K, hist, start="sideways")
    with pytest.raises(ValueError, match="nearest-neighbour bank"):
        forecast(HandForecaster(**FORECAST_CONFIGS["tiny"]), frame, c.camera[3], c.K, hist, start="retrieval")
    with pytest.raises(ValueError, match="nearest-neighbour bank"):
        forecast(model, frame, c.camera[3], c.K, None, start="retrieval")  # nothing observed to match


def test_a_forecaster_folder_carries_its_residual_corrector(tiny_forecaster_dir: Path, clips: Path,
                                                          tmp_path: Path) -> None:  # fmt: skip
    import shutil

    from dexsim.bench.forecast import bench_forecast
    from dexsim.forecast import forecast, load_forecaster, retrieval_forecaster

    folder = tmp_path / "fc"
    shutil.copytree(tiny_forecaster_dir, folder)
    plain = load_forecaster(folder)
    assert plain.corrector is None and retrieval_forecaster(plain) is None
    diverse = bench_forecast(plain, [clips], progress=False, start="retrieval")  # no corrector: the bank's own
    assert diverse["model_network"] == "bank" and "network_from_noise" in diverse
    corrector, _ = _trained_stats(clips)
    corrector.residual_std.fill_(1e-7)  # corrections of no size: the retrieved futures come back
    corrector.save_pretrained(str(folder / "corrector"))
    model = load_forecaster(folder)
    assert retrieval_forecaster(model) is model.corrector and model.corrector.bank is model.bank
    r = bench_forecast(model, [clips], progress=False, start="retrieval")
    assert r["model_network"] == "corrector"
    for key in ("ade_k5", "fde_k5"):
        assert abs(r["model"][key] - r["nearest_neighbour"][key]) < 2e-3
    c = ForecastClips([clips], 16, 8, 16, progress=False).clips[2]
    hist = {"params": c.params[:4], "visible": c.visible[:4], "camera": c.camera[:4]}
    frame = np.ascontiguousarray(c.frames[3].transpose(1, 2, 0))
    f = forecast(model, frame, c.camera[3], c.K, hist, text=c.text, k=2, horizon=8)  # auto: the corrector
    seen = c.visible[4:12]
    assert np.allclose(f.params[0][..., 48:51][seen], c.params[4:12][..., 48:51][seen], atol=1e-3)
    HandForecaster(**FORECAST_CONFIGS["tiny"]).save_pretrained(str(folder / "corrector"))
    with pytest.raises(ValueError, match="not a residual forecaster"):
        load_forecaster(folder)


def test_observed_windows_train_a_corrector_from_retrieved_starts(clips: Path) -> None:
    from dexsim.training import TrainConfig

    model = HandForecaster(**FORECAST_CONFIGS["tiny-residual"])
    data = ForecastData([clips], model, progress=False, windows="observed")
    batch = data.next_batch(16)
    assert batch.has_start is not None and bool(batch.has_start.all())  # no planning window, every one retrieved
    mixed = ForecastData([clips], model, progress=False).next_batch(16)
    assert mixed.has_start is None or not bool(mixed.has_start.all())
    with pytest.raises(ValueError, match="forecast_windows"):
        TrainConfig(preset="forecast-flow-matching", data=[str(clips)], out=str(clips.parent / "x"),
                    forecast_windows="sideways")  # fmt: skip
