"""The physics oracle behind the world-model protocol."""

from __future__ import annotations

import numpy as np
import pytest

from dexsim.physics.actions import make_action
from dexsim.worldmodel import OracleWorldModel, WorldModel, rollout


def test_oracle_world_model_chunked_equals_one_simulation() -> None:
    wm = OracleWorldModel("tabletop", 32, 32, window=5, context_frames=1, density_scale=0.2)
    assert isinstance(wm, WorldModel)
    a = make_action(wm.spec, "push", np.random.default_rng(1), 12, target="red_box", camera="static")
    whole = wm.oracle.run(a.trajectory)
    prompt = whole.prompt[None]
    out = rollout(wm, whole.static[None], prompt, hands=[a.trajectory])
    assert np.array_equal(out[0], whole.interaction)
    assert not np.array_equal(out[0, -1], whole.static[-1])  # the push moved something
    with pytest.raises(ValueError, match="needs `hands`"):
        wm.generate(whole.static[None, :5], prompt[:, :5])
