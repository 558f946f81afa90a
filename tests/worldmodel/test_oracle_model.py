"""The physics oracle behind the world-model protocol."""

from __future__ import annotations

import numpy as np
import pytest

from dexsim.physics.actions import make_action
from dexsim.worldmodel import Generation, OracleWorldModel, WorldModel, rollout


def test_oracle_world_model_chunked_equals_one_simulation() -> None:
    wm = OracleWorldModel("tabletop", 32, 32, window=5, context_frames=1, density_scale=0.2)
    assert isinstance(wm, WorldModel)
    a = make_action(wm.spec, "push", np.random.default_rng(1), 12, target="red_box", camera="static")
    whole = wm.oracle.run(a.trajectory)
    prompt = whole.prompt[None]
    out = rollout(wm, whole.static[None], prompt, hands=[a.trajectory])
    assert np.array_equal(out[0], whole.interaction)
    assert not np.array_equal(out[0, -1], whole.static[-1])  # the push moved something
    # the generation carries the episode's physics record, up to the window's last frame
    gen = wm.generate(whole.static[None, -5:], prompt[:, -5:], hands=[a.trajectory])
    assert gen.has_physics and gen.object_poses[0].shape == (12, len(wm.spec.objects), 7)
    assert np.array_equal(gen.object_poses[0], whole.episode.object_poses)
    assert np.array_equal(gen.frames[0], whole.interaction[-5:])
    learned_like = Generation(gen.frames)
    assert not learned_like.has_physics
    with pytest.raises(ValueError, match="items for a batch"):
        Generation(gen.frames, [gen.object_poses[0]] * 2, None)
    with pytest.raises(ValueError, match="needs `hands`"):
        wm.generate(whole.static[None, :5], prompt[:, :5])
