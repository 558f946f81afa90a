from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dexsim.geometry import PinholeIntrinsics, look_at, quat_rotate
from dexsim.scene import Primitive, from_mesh_file, from_point_cloud, from_primitives, render, write_ply
from dexsim.scene.builders import knn_mean_distance, sample_surface


def test_point_cloud_scales_are_knn_distance() -> None:
    # points on a 3D grid with spacing 0.1: the 3 nearest neighbours are all 0.1 away
    g = np.stack(np.meshgrid(*[np.arange(6) * 0.1] * 3, indexing="ij"), -1).reshape(-1, 3)
    colors = np.full(g.shape, 200, np.uint8)
    scene = from_point_cloud(g, colors, opacity=0.5)
    assert torch.allclose(scene.scales, torch.full_like(scene.scales, 0.1), atol=1e-6)
    assert torch.allclose(scene.opacities, torch.full((len(g),), 0.5), atol=1e-6)
    assert torch.allclose(scene.sh[:, 0] * 0.28209479177387814 + 0.5, torch.full((len(g), 3), 200 / 255), atol=1e-6)
    capped = from_point_cloud(g, colors, opacity=0.5, max_scale=0.05)
    assert torch.allclose(capped.scales, torch.full_like(capped.scales, 0.05))


def test_point_cloud_drops_nan_and_validates() -> None:
    pts = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    pts[4] = np.nan
    scene = from_point_cloud(pts, np.zeros((50, 3), np.uint8))
    assert len(scene) == 49
    with pytest.raises(ValueError, match=r"`colors` must have shape \(50, 3\), got \(49, 3\)"):
        from_point_cloud(pts, np.zeros((49, 3)))
    with pytest.raises(ValueError, match=r"`opacity` must lie in \(0, 1\), got 1\.5"):
        from_point_cloud(pts, np.zeros((50, 3)), opacity=1.5)


def test_knn_matches_brute_force() -> None:
    pts = np.random.default_rng(1).uniform(size=(300, 3)).astype(np.float32)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    brute = np.sort(d, axis=1)[:, :3].mean(1)
    assert np.allclose(knn_mean_distance(pts, 3), brute, atol=1e-5)


def test_surface_samples_lie_on_the_mesh_and_are_seeded() -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    tri = np.array([[0, 2, 1], [0, 1, 3]])
    a = sample_surface(v, tri, 2000, np.random.default_rng(0))
    b = sample_surface(v, tri, 2000, np.random.default_rng(0))
    assert np.array_equal(a[0], b[0])
    pts, nrm, face = a[0], a[1], a[2]
    on_z0 = face == 0
    assert np.allclose(pts[on_z0, 2], 0) and np.allclose(pts[~on_z0, 1], 0)
    # equal areas: about half of the samples on each triangle
    assert 0.45 < on_z0.mean() < 0.55
    assert np.allclose(np.abs(nrm[on_z0]), [0, 0, 1])


def test_primitives_are_flat_and_oriented() -> None:
    box = Primitive("box", (0.2, 0.2, 0.2), (0.0, 0.0, 0.1, 1, 0, 0, 0), (1.0, 0.0, 0.0), object_id=1, name="cube")
    scene = from_primitives([box], seed=3, light_dir=None)
    assert scene.object_names == ["cube"] and scene.num_objects == 1
    # each Gaussian's thin axis (local z) is the face normal: the mean lies on that face
    normal = quat_rotate(scene.quats, torch.tensor([0.0, 0.0, 1.0]).expand(len(scene), 3))
    centre = torch.tensor([0.0, 0.0, 0.1])
    offset = ((scene.means - centre) * normal).sum(-1).abs()
    assert torch.allclose(offset, torch.full_like(offset, 0.1), atol=1e-4)
    assert (scene.scales[:, 2] < 0.2 * scene.scales[:, 0]).all()
    assert torch.allclose(scene.sh[:, 0, 0] * 0.28209479177387814 + 0.5, torch.ones(len(scene)), atol=1e-5)
    # same seed, same scene
    again = from_primitives([box], seed=3, light_dir=None)
    assert torch.equal(again.means, scene.means)


def test_primitive_scene_renders_opaque_surfaces() -> None:
    floor = Primitive("plane", (2.0, 2.0, 1.0), color=(0.2, 0.8, 0.2), density=20000)
    ball = Primitive("sphere", (0.2, 0.2, 0.2), (0, 0, 0.2, 1, 0, 0, 0), (0.9, 0.1, 0.1), object_id=1, density=40000)
    scene = from_primitives([floor, ball], light_dir=None)
    vm = look_at(torch.tensor([0.0, -1.2, 0.9]), torch.tensor([0.0, 0.0, 0.1]))
    out = render(scene, vm, PinholeIntrinsics.from_fov(50.0, 48, 48).K(), 48, 48)
    # the floor fills the lower image and is opaque; the ball sits in the middle, red
    assert out.alpha[0, 36:, :].min() > 0.95
    centre = out.rgb[0, 20:28, 20:28].mean((0, 1))
    assert centre[0] > 0.6 and centre[1] < 0.3


def test_mesh_file_builder(tmp_path: Path) -> None:
    o3d = pytest.importorskip("open3d")
    mesh = o3d.geometry.TriangleMesh.create_sphere(0.5)
    mesh.paint_uniform_color([0.1, 0.2, 0.9])
    path = tmp_path / "ball.ply"
    o3d.io.write_triangle_mesh(str(path), mesh)
    scene = from_mesh_file(path, 3000, object_id=2)
    r = scene.means.norm(dim=-1)
    assert (r < 0.5 + 1e-4).all() and (r > 0.5 * math.cos(math.pi / 20) - 1e-3).all()
    assert torch.allclose(scene.sh[:, 0] * 0.28209479177387814 + 0.5, torch.tensor([0.1, 0.2, 0.9]).expand(3000, 3),
                          atol=3e-3)  # vertex colours pass through 8 bits in the file  # fmt: skip
    assert (scene.object_ids == 2).all()
    (tmp_path / "junk.obj").write_text("not a mesh")
    with pytest.raises(ValueError, match="read no triangles"):
        from_mesh_file(tmp_path / "junk.obj", 10)
    write_ply(scene, tmp_path / "out.ply")  # a built scene saves like any other


def test_primitive_validation() -> None:
    with pytest.raises(ValueError, match="`kind` must be box, sphere, cylinder, plane or mesh, got 'cone'"):
        Primitive("cone", (1, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`size` must be three positive numbers, got \\(1, -1, 1\\)"):
        Primitive("box", (1, -1, 1))


def test_real_garden_points_render_a_garden() -> None:
    from dexsim.bench.render import load_points_benchmark

    from ..conftest import shared_file

    scene, cams = load_points_benchmark(shared_file("gsplat_garden/test_garden.npz"))
    assert len(scene) == 138_766
    assert float(scene.scales.max()) <= 0.05 + 1e-6  # the outlier cap
    cams = cams.resized(64, 42)
    out = render(scene, cams.viewmats, cams.Ks, 64, 42)
    assert out.alpha.mean() > 0.9
    mean_rgb = out.rgb.mean((0, 1, 2))
    assert mean_rgb[1] > mean_rgb[2]  # grass and foliage: more green than blue
    assert (out.depth[out.alpha > 0.5] > 0).all()
