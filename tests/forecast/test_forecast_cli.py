"""``dexsim bench forecast``, ``dexsim plan --proposals forecast`` and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from dexsim.cli import main


def test_bench_forecast_writes_the_protocols_json(tiny_forecaster_dir: Path, clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.json"
    r = CliRunner().invoke(main, ["bench", "forecast", "--data", str(clips), "--forecaster", str(tiny_forecaster_dir),
                                  "--clips", "2", "--refine", "0.2", "--json", str(out)],
                           catch_exceptions=False)  # fmt: skip
    assert r.exit_code == 0, r.output
    got = json.loads(out.read_text())
    assert got["refine"] == 0.2
    for key in ("model", "still", "constant_velocity", "nearest_neighbour"):
        assert set(got[key]) == {"ade_k1", "fde_k1", "ade_k5", "fde_k5"}
    assert got["clips"] == 2 and got["train_data"] == "shipped bank" and "constant_velocity" in r.output


def test_plan_with_forecast_proposals_draws_them(tiny_forecaster_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    r = CliRunner().invoke(main, ["plan", "--model", "oracle", "--candidates", "2", "--seed", "1", "--proposals",
                                  "forecast", "--forecaster", str(tiny_forecaster_dir), "--refine", "0.5", "--out",
                                  str(out), "--json",
                                  str(tmp_path / "p.json")], catch_exceptions=False)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (out / "proposals.png").stat().st_size > 0 and "forecast:" in r.output
    got = json.loads((tmp_path / "p.json").read_text())
    assert got["proposals"] == "forecast" and len(got["candidate_texts"]) == 2


def test_forecast_commands_refuse_bad_input_in_one_line(clips: Path, tmp_path: Path) -> None:
    for args in (["bench", "forecast", "--data", str(clips), "--forecaster", str(tmp_path / "none")],
                 ["plan", "--proposals", "forecast", "--forecaster", str(tmp_path / "none")],
                 ["train", "--preset", "forecast-flow-matching", "--data", str(clips), "--out", str(tmp_path / "o"),
                  "--model", "huge"]):  # fmt: skip
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert ("none" in r.output and "config.json" in r.output) or "'huge'" in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1, r.output
    r = CliRunner().invoke(main, ["plan", "--proposals", "forecast", "--refine", "1.5"])
    assert r.exit_code == 2 and "1.5" in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_bench_forecast_start_retrieval_needs_something_to_retrieve_with(tiny_forecaster_dir: Path, clips: Path,
                                                                         tmp_path: Path) -> None:  # fmt: skip
    import shutil

    folder = tmp_path / "no-bank"
    shutil.copytree(tiny_forecaster_dir, folder)
    for name in ("nn_bank.safetensors", "nn_bank.json"):
        (folder / name).unlink()
    r = CliRunner().invoke(main, ["bench", "forecast", "--data", str(clips), "--forecaster", str(folder),
                                  "--train-data", str(clips), "--start", "retrieval"])  # fmt: skip
    assert r.exit_code == 2 and "needs a bridge forecaster" in r.output and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1, r.output


def test_bench_forecast_draws_its_figure(tiny_forecaster_dir: Path, clips: Path, tmp_path: Path) -> None:
    from PIL import Image

    from dexsim.bench.forecast import FIGURE_SCALE, bench_forecast
    from dexsim.forecast import load_forecaster

    r = CliRunner().invoke(main, ["bench", "forecast", "--data", str(clips), "--forecaster", str(tiny_forecaster_dir),
                                  "--figure", str(tmp_path / "f.png"), "--json", str(tmp_path / "f.json")])  # fmt: skip
    assert r.exit_code == 0, r.output
    image = np.asarray(Image.open(tmp_path / "f.png"))
    size = 16 * FIGURE_SCALE  # the tiny forecaster's 16 x 16 frames, upscaled
    assert image.shape[1] == 3 * size and image.shape[0] == 14 + size  # truth | retrieval | model; one row (a push)
    assert "figure" not in json.loads((tmp_path / "f.json").read_text())
    truth, nn, model = (image[-size:, i * size : (i + 1) * size] for i in range(3))
    assert not np.array_equal(truth, nn) or not np.array_equal(truth, model)  # paths drawn over the same frame
    direct = bench_forecast(load_forecaster(tiny_forecaster_dir), [clips], progress=False, figure=True)["figure"]
    assert direct.dtype == np.uint8 and direct.shape == image.shape
    bad = CliRunner().invoke(main, ["bench", "forecast", "--data", str(clips), "--forecaster", str(tiny_forecaster_dir),
                                    "--figure", str(tmp_path / "f.txt")])  # fmt: skip
    assert bad.exit_code == 2 and "--figure" in bad.output and "Traceback" not in bad.output, bad.output
