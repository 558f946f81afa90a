"""``dexsim bench soak``: memory sampled every chunk of a long rollout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dexsim.cli import main
from dexsim.worldmodel import DiffusionWorldModel, compact_pipeline


@pytest.mark.slow
def test_soak_samples_memory_every_chunk(tmp_path) -> None:
    model = tmp_path / "m"
    DiffusionWorldModel(compact_pipeline("tiny"), 16, 16, window=9, context_frames=1, num_steps=1).save_pretrained(
        model
    )
    out = tmp_path / "soak.json"
    r = CliRunner().invoke(main, ["bench", "soak", "--model", str(model), "--chunks", "30", "--json", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert len(d["rss_mb"]) == 30 and min(d["rss_mb"]) > 50  # a torch process holds well over 50 MiB
    ref, last = float(np.mean(d["rss_mb"][10:20])), float(np.mean(d["rss_mb"][-10:]))
    assert abs(d["rss_reference_mb"] - ref) < 1e-9 and abs(d["growth"] - (last - ref) / ref) < 1e-9
    assert d["flat"] == (abs(d["growth"]) <= 0.05)
    assert d["flat"]  # 30 chunks of a tiny model do not leak
    r = CliRunner().invoke(main, ["bench", "soak", "--chunks", "10"])
    assert r.exit_code == 2 and "--chunks" in r.output
