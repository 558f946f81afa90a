from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dexsim.geometry import axis_angle_to_matrix, look_at, make_se3, pose7_to_viewmat, transform_points
from dexsim.scene import Primitive, from_primitives, render
from dexsim.scene.camera_path import default_path, load_camera_path
from dexsim.scene.metadata import estimate_metadata, read_metadata, sidecar_path, write_metadata


def tilted_room(rotation: torch.Tensor, scale: float):
    """A floor with boxes, expressed in a capture frame: rotated, scaled (units != metres)."""
    prims = [Primitive("plane", (3.0, 3.0, 1.0), color=(0.5, 0.5, 0.5), density=3000)]
    prims += [Primitive("box", (0.3, 0.3, 0.3), (x, y, 0.15, 1, 0, 0, 0), density=3000) for x, y in ((0, 0), (1, 0.5))]
    scene = from_primitives(prims, light_dir=None)
    T = make_se3(rotation, torch.tensor([0.3, -0.2, 1.0]))
    return dataclasses.replace(scene, means=(transform_points(T.double(), scene.means.double()) / scale).float())


def test_estimates_up_axis_and_ground_of_a_y_down_capture(tmp_path: Path) -> None:
    # COLMAP-style: world +z becomes file -y (rotation about x by +90 degrees maps z to -y)
    rot = axis_angle_to_matrix(torch.tensor([math.pi / 2, 0.0, 0.0], dtype=torch.float64))
    scene = tilted_room(rot, scale=0.5)  # file units are half-metres
    meta = estimate_metadata(scene, metric_scale=0.5)
    assert np.allclose(meta.up_file, [0.0, -1.0, 0.0], atol=1e-3)
    wf = torch.tensor(meta.world_from_file, dtype=torch.float64)
    world = transform_points(wf, scene.means.double())
    floor = world[:, 2].abs() < 0.01
    assert floor.float().mean() > 0.5  # the floor maps to z = 0 (in metres)
    assert world[:, 2].max().item() == pytest.approx(0.3, abs=0.02)  # the boxes are 0.3 m tall
    assert meta.workspace_max[2] > 0.2
    path = write_metadata(meta, sidecar_path(tmp_path / "room.ply"))
    assert path.name == "room.dexsim.json"
    assert read_metadata(path) == meta
    bad = json.loads(path.read_text())
    bad["metric_scle"] = 1.0
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="unknown keys \\['metric_scle'\\]"):
        read_metadata(path)


def test_file_viewmat_renders_the_same_picture() -> None:
    rot = axis_angle_to_matrix(torch.tensor([0.4, -0.3, 1.1], dtype=torch.float64))
    file_scene = tilted_room(rot, scale=2.0)
    meta = estimate_metadata(file_scene, metric_scale=2.0)
    world_scene = from_primitives(
        [Primitive("plane", (3.0, 3.0, 1.0), color=(0.5, 0.5, 0.5), density=3000)], light_dir=None
    )
    del world_scene
    # a camera in the world frame, converted to the file frame, sees the floor from above
    vm_world = look_at(
        torch.tensor([0.0, -2.0, 1.5], dtype=torch.float64), torch.tensor([0.3, 0.3, 0.0], dtype=torch.float64)
    )
    vm_file, depth_scale = meta.file_viewmat(vm_world)
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]])
    out = render(file_scene, vm_file.float(), K, 32, 32)
    assert out.alpha[0, 24:].mean() > 0.9  # floor in the lower half
    # depth in metres: the floor point at the image centre is about |eye - target| away
    d = out.depth[0, 16, 16].item() * depth_scale
    assert 1.5 < d < 4.0


def test_camera_path_files(tmp_path: Path) -> None:
    pose = np.array([[0.0, -2.0, 1.0, 1.0, 0.0, 0.0, 0.0]] * 3)
    np.savez(tmp_path / "a.npz", camera=pose, width=64, height=32)
    cams = load_camera_path(tmp_path / "a.npz")
    assert cams.viewmats.shape == (3, 4, 4) and (cams.width, cams.height) == (64, 32)
    assert torch.allclose(cams.viewmats[0], pose7_to_viewmat(torch.tensor(pose[0])).float())
    half = cams.resized(32, 16)
    assert half.Ks[0, 0, 0].item() == pytest.approx(cams.Ks[0, 0, 0].item() / 2)
    np.savez(tmp_path / "b.npz", nothing=np.zeros(3))
    with pytest.raises(ValueError, match="expected `camera` \\(T, 7\\) or `viewmats`"):
        load_camera_path(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", camera=np.zeros((3, 6)))
    with pytest.raises(ValueError, match="`camera` must have shape \\(T, 7\\), got \\(3, 6\\)"):
        load_camera_path(tmp_path / "c.npz")


def test_default_path_sees_the_scene() -> None:
    scene = from_primitives([Primitive("box", (1.0, 1.0, 0.5), density=2000)], light_dir=None)
    cams = default_path(scene, num_frames=4, width=24, height=24)
    out = render(scene, cams.viewmats, cams.Ks, 24, 24)
    assert (out.alpha.mean((1, 2)) > 0.05).all()
