"""One renderer of conditions: what `dexsim datagen` writes is what the env feeds a world model."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from dexsim.data.generate import DatagenConfig, make_clip
from dexsim.envs import DexWorldEnv
from dexsim.geometry.camera import look_at
from dexsim.geometry.se3 import viewmat_to_pose7
from dexsim.hands.controllers import initial_state
from dexsim.physics import randomized_scene, world_for_spec
from dexsim.world import BACKGROUND, HandStates, World
from dexsim.worldmodel import Generation

SIZE = 32


class RecordingModel:
    """A world model that records what it is fed and returns the static video."""

    width = height = SIZE
    window, context_frames, fps = 4, 0, 8.0

    def __init__(self) -> None:
        self.static: list[np.ndarray] = []
        self.prompt: list[np.ndarray] = []

    def generate(self, static, prompt, context=None, text=None, generator=None, num_steps=None, hands=None):
        self.static.append(np.array(static[0]))
        self.prompt.append(np.array(prompt[0]))
        return Generation(np.array(static))


@pytest.mark.parametrize("index", [0, 3])
def test_datagen_conditions_equal_what_the_env_feeds_the_model(tmp_path, index: int) -> None:
    cfg = DatagenConfig(out=str(tmp_path), clips=4, width=SIZE, height=SIZE, frames=8)
    clip = make_clip(cfg, index)
    traj = np.load(io.BytesIO(clip.actions))
    spec = randomized_scene(cfg.scene, clip.meta["scene_seed"])
    world = world_for_spec(spec, seed=clip.meta["scene_seed"], width=SIZE, height=SIZE)
    model = RecordingModel()
    env = DexWorldEnv(scene=world, world_model=model, action_mode="mano", width=SIZE, height=SIZE, chunk=4,
                      clamp="silent")  # fmt: skip
    env.reset(seed=0)
    for s in range(0, 8, 4):
        env.step({"camera": traj["camera"][s : s + 4], "params": traj["params"][s : s + 4],
                  "visible": traj["visible"][s : s + 4]})  # fmt: skip
    assert np.array_equal(np.concatenate(model.static), clip.static)  # bit for bit, before video encoding
    assert np.array_equal(np.concatenate(model.prompt), clip.prompt)
    assert clip.prompt.any()  # the hands are in view: the comparison is not of two black videos


def test_render_conditions_kinds_share_one_hand_render() -> None:
    spec = randomized_scene("tabletop", 3)
    world = world_for_spec(spec, width=SIZE, height=SIZE)
    cam = viewmat_to_pose7(look_at(torch.tensor([0.0, -0.25, 1.2]), torch.tensor([0.0, 0.35, 0.75]))).numpy()
    cams = np.tile(cam, (2, 1))
    state = initial_state(world.table, None, np.random.default_rng(0))
    params = np.repeat(state.params[None], 2, 0)
    hands = HandStates(params, np.array([[True, True], [False, True]]))
    cond = world.render_conditions(cams, hands, kinds=("mesh", "mask", "depth", "skeleton"))
    assert set(cond.prompts) == {"mesh", "mask", "depth", "skeleton"}
    assert cond.static.shape == (2, SIZE, SIZE, 3) and cond.depth.shape == (2, SIZE, SIZE)
    # the still camera renders the same static frame twice; the left hand leaves the second frame
    assert np.array_equal(cond.static[0], cond.static[1])
    assert cond.hand_masks[0, 0].any() and not cond.hand_masks[1, 0].any() and cond.hand_masks[1, 1].any()
    green = (cond.prompts["mask"][..., 1] == 255) & (cond.prompts["mask"][..., 0] == 0)
    assert np.array_equal(green, cond.hand_masks[:, 0])
    # where nothing covers a pixel the static video shows the background colour
    empty = cond.alpha < 1e-4
    if empty.any():
        assert np.allclose(cond.static[empty] / 255.0, BACKGROUND, atol=1 / 255)
    with pytest.raises(ValueError, match="prompt kinds"):
        world.render_conditions(cams, hands, kinds=("normals",))
    with pytest.raises(ValueError, match="2 hand frames for 3 cameras"):
        world.render_conditions(np.concatenate((cams, cams[:1])), hands)


def test_world_checks_its_camera_model() -> None:
    spec = randomized_scene("tabletop", 0)
    world = world_for_spec(spec, width=SIZE, height=SIZE)
    with pytest.raises(ValueError, match="width"):
        world.at(0, SIZE)
    with pytest.raises(ValueError, match="fov_y"):
        World(world.scene, fov_y=0.0)
    with pytest.raises(ValueError, match="cameras"):
        world.render_static(np.zeros((2, 6)))


def test_occluder_depth_from_the_fused_pass_equals_the_occluder_alone() -> None:
    """The drawer scene (rest motions: an open drawer) with a held camera (frames deduplicated): the occluder depth
    from the static render's pass is the fixed part rendered by itself; a wrong mask is refused by name."""
    from dexsim.physics.build import world_for_spec
    from dexsim.physics.spec import randomized_scene
    from dexsim.scene import render
    from dexsim.world import World

    spec = randomized_scene("drawer", 3)
    world = world_for_spec(spec, seed=0, density_scale=0.2, width=32, height=32)
    from dexsim.hands.controllers import initial_state

    state = initial_state(world.table, world.start_camera, np.random.default_rng(0))
    cams = np.repeat(state.camera[None], 3, 0)
    fused = world.occluder_depth(cams, world.render_scene(cams, with_occluder=True))
    vms = world.viewmats(cams).float()
    alone = render(world.scene.subset(world.occluder_mask), vms, world.K.float(), 32, 32).depth.numpy()
    assert np.allclose(fused, alone, atol=1e-5) and (fused > 0).mean() > 0.5
    with pytest.raises(ValueError, match="occluder_mask"):
        World(world.scene, "x", world.scene)
