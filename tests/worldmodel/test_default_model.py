"""The shipped default world model: it loads offline from the package and runs at its size."""

from __future__ import annotations

import numpy as np
import torch

from dexsim.worldmodel import load
from dexsim.worldmodel.models import default_model_dir


def test_default_model_ships_loads_and_generates() -> None:
    d = default_model_dir()
    files = [p for p in d.rglob("*") if p.is_file()]
    assert (d / "model_index.json").is_file() and (d / "MODEL_CARD.md").is_file()
    assert sum(p.stat().st_size for p in files) < 50 * 2**20  # well under the 50 MB budget
    wm = load("default")
    from dexsim.physics.actions import make_action
    from dexsim.physics.oracle import Oracle
    from dexsim.physics.spec import builtin_scene

    spec = builtin_scene("tabletop")
    action = make_action(spec, "wave", np.random.default_rng(0), wm.window, camera="static")
    static = Oracle(spec, wm.width, wm.height, density_scale=0.35).run(action.trajectory, masks=False).static[None]
    prompt = np.zeros_like(static)
    out = wm.generate(static, prompt, num_steps=2, generator=torch.Generator().manual_seed(0)).frames
    assert out.shape == static.shape
    # with no hands in view nothing should move: the output stays close to the static scene
    assert np.abs(out.astype(int) - static).mean() < 20
