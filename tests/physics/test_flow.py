"""Ground-truth backward flow: exact on a synthetic translation, and it moves the static video onto the
interaction video on real oracle clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dexsim.physics.flow import backward_flow, clip_backward_flow
from dexsim.physics.spec import builtin_scene


def _identity_camera(t: int) -> np.ndarray:
    return np.tile(np.array([0, 0, 0, 1, 0, 0, 0], np.float64), (t, 1))  # at the origin, looking along +z


def test_translation_gives_the_projected_shift() -> None:
    spec = builtin_scene("tabletop")
    k = len(spec.objects)
    poses = np.zeros((2, k, 7))
    poses[..., 3] = 1.0
    poses[:, :, 2] = 1.0  # every object 1 m in front of the camera
    poses[1, 0, 0] = 0.1  # object id 1 moves 10 cm along +x by frame 1
    masks = np.full((2, 8, 8), -1, np.int8)
    masks[1, 2:5, 2:5] = 1
    masks[1, 6, 6] = -3  # a right-hand pixel
    K = np.array([[50.0, 0, 4], [0, 50.0, 4], [0, 0, 1]])
    flow, valid = backward_flow(spec, poses, None, masks, _identity_camera(2), K)
    assert flow.shape == (2, 8, 8, 2) and valid.shape == (2, 8, 8)
    assert np.allclose(flow[1, 2:5, 2:5, 0], -5.0, atol=1e-4)  # fx * 0.1 m / 1 m, backwards
    assert np.allclose(flow[1, 2:5, 2:5, 1], 0.0, atol=1e-4)
    assert np.abs(flow[0]).max() == 0 and np.abs(flow[1, 5:]).max() == 0  # still and background pixels
    assert not valid[1, 6, 6] and valid[1, 2, 2]


def test_a_rest_point_behind_the_camera_has_no_flow() -> None:
    spec = builtin_scene("tabletop")
    k = len(spec.objects)
    poses = np.zeros((2, k, 7))
    poses[..., 3] = 1.0
    poses[:, :, 2] = 1.0
    poses[0, 0, 2] = -0.5  # object id 1 rested behind the camera, is 1 m in front of it at frame 1
    masks = np.full((2, 8, 8), -1, np.int8)
    masks[1, 2:5, 2:5] = 1
    K = np.array([[50.0, 0, 4], [0, 50.0, 4], [0, 0, 1]])
    flow, valid = backward_flow(spec, poses, None, masks, _identity_camera(2), K)
    assert np.isfinite(flow).all() and np.abs(flow).max() < 1e3  # not a projection through the camera plane
    assert not valid[1, 2:5, 2:5].any() and valid[1, 0, 0]
    poses[0, 0, 2] = 0.02  # 2 cm in front of the camera plane: it would project about 70 px (9 frames) away
    flow, valid = backward_flow(spec, poses, None, masks, _identity_camera(2), K)
    assert not valid[1, 2:5, 2:5].any() and np.abs(flow).max() == 0


def test_bad_shapes_are_named() -> None:
    spec = builtin_scene("tabletop")
    with pytest.raises(ValueError, match="object_poses"):
        backward_flow(spec, np.zeros((2, 1, 7)), None, np.zeros((2, 4, 4), np.int8), _identity_camera(2), np.eye(3))
    assert clip_backward_flow(None, None, None, None) is None


@pytest.fixture(scope="module")
def push_clip(tmp_path_factory):
    from dexsim.data.dataset import read_clip
    from dexsim.data.generate import DatagenConfig, generate

    root = tmp_path_factory.mktemp("flow") / "clips"
    generate(DatagenConfig(out=str(root), clips=1, width=64, height=64, frames=8, density_scale=0.2,
                           kinds=["push"]), progress=False)  # fmt: skip
    return read_clip(root, "train_000000")


def test_flow_warps_the_static_video_onto_the_moved_object(push_clip) -> None:
    from dexsim.worldmodel.compact import warp

    c = push_clip
    flow, valid = clip_backward_flow(c.meta, c.physics, c.masks, c.trajectory.camera)
    moving = valid & (np.abs(flow).sum(-1) > 0.5)
    assert moving.sum() > 20, "the pushed object should move on screen"
    static = torch.from_numpy(c.static).permute(0, 3, 1, 2).float()
    warped = warp(static, torch.from_numpy(flow).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    truth = c.interaction.astype(np.float64)
    err_static = np.abs(c.static - truth)[moving].mean()
    err_warped = np.abs(warped - truth)[moving].mean()
    assert err_warped < 0.6 * err_static
