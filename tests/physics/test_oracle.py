from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dexsim.physics import builtin_scene
from dexsim.physics.actions import make_action
from dexsim.physics.oracle import Oracle


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    return Oracle(builtin_scene("tabletop"), 64, 64, fov_y=55.0, density_scale=0.3)


def test_push_ground_truth(oracle: Oracle) -> None:
    action = make_action(oracle.spec, "push", np.random.default_rng(1), 8, target="red_box", camera="static")
    clip = oracle.run(action.trajectory)
    assert clip.static.shape == clip.prompt.shape == clip.interaction.shape == (8, 64, 64, 3)
    # the static video does not change (static camera), the ground truth does
    assert np.abs(clip.static.astype(int) - clip.static[0]).max() == 0
    assert np.abs(clip.interaction[-1].astype(int) - clip.static[-1]).max() > 40
    # the prompt is DWM-style (black background, a green or red hand), the ground truth hand is skin
    hand = clip.object_masks < -1
    assert hand.any() and (clip.prompt.reshape(-1, 3).max(-1) == 0).mean() > 0.8
    skin = clip.interaction[hand].astype(int)
    assert (skin[:, 0] > skin[:, 2]).mean() > 0.9  # warm skin tones, not the prompt's flat green/red
    # the pushed object's mask moved with it
    k = oracle.spec.object_index("red_box")
    first, last = (np.argwhere(clip.object_masks[t] == k).mean(0) for t in (0, -1))
    assert np.linalg.norm(first - last) > 2.0
    assert clip.sim.contacts[:, :, k - 1].any()
    # every prompt kind, on the same hand (the skeleton drawn over the mesh's silhouette)
    sil = {kind: v.any(-1) for kind, v in clip.prompts.items()}
    assert set(sil) == {"mesh", "skeleton", "depth", "mask"}
    assert np.array_equal(sil["mesh"], sil["depth"]) and np.array_equal(sil["mesh"], sil["mask"])
    assert sil["skeleton"].sum() > 0 and (sil["skeleton"] & sil["mesh"]).sum() > 0.3 * sil["skeleton"].sum()


def test_oracle_needs_camera_and_params(oracle: Oracle) -> None:
    action = make_action(oracle.spec, "wave", np.random.default_rng(0), 4)
    no_cam = dataclasses.replace(action.trajectory, camera=None)
    with pytest.raises(ValueError, match="needs a trajectory with a `camera`"):
        oracle.run(no_cam)
