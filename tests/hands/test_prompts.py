from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dexsim.geometry import PinholeIntrinsics, look_at
from dexsim.hands import HandModel
from dexsim.hands.prompts import DWM_LEFT_RGB, DWM_RIGHT_RGB, render_prompt, vertex_normals

PALM_DOWN = torch.tensor([1.0, 1.0, 1.0]) / math.sqrt(3) * (2 * math.pi / 3)  # fingers +y, back of hand +z


def two_hands(z: float = 0.0):
    L, R = HandModel("left"), HandModel("right")
    hp = torch.zeros(45)
    left = L(PALM_DOWN, hp, torch.tensor([-0.12, 0.25, z]))
    right = R(PALM_DOWN, hp, torch.tensor([0.12, 0.25, z]))
    joints = torch.stack([left.joints, right.joints])[None].double()
    verts = torch.stack([left.vertices, right.vertices])[None].double()
    return joints, verts, (L.faces, R.faces)


def camera(w: int = 160, h: int = 120):
    vm = look_at(torch.tensor([0.0, -0.05, 0.45]), torch.tensor([0.0, 0.33, 0.0]))[None]
    return vm, PinholeIntrinsics.from_fov(70.0, w, h).K()


def render(kind: str, **kw):
    joints, verts, faces = two_hands(kw.pop("z", 0.0))
    vm, K = camera()
    vis = kw.pop("visible", torch.ones(1, 2, dtype=torch.bool))
    return render_prompt(kind, vm, K, 160, 120, joints, vis, verts, faces, **kw)  # type: ignore[arg-type]


def test_mesh_prompt_follows_the_dwm_convention() -> None:
    p = render("mesh")
    rgb = p.rgb[0].astype(int)
    left, right = p.mask[0, 0], p.mask[0, 1]
    assert left.sum() > 100 and right.sum() > 100
    assert (rgb[~(left | right)] == 0).all()  # black background
    # left hand green and on the left of the image, right hand red on the right
    assert np.median(np.nonzero(left)[1]) < 80 < np.median(np.nonzero(right)[1])
    g, r = rgb[left].mean(0), rgb[right].mean(0)
    assert g[1] > g[0] + 40 and g[1] > g[2] + 40 and r[0] > r[1] + 60
    # lit by a headlight: the back of a flat hand facing the camera is near full brightness
    assert np.abs(np.percentile(rgb[left], 90, axis=0) - DWM_LEFT_RGB).max() < 30
    assert np.abs(np.percentile(rgb[right], 90, axis=0) - DWM_RIGHT_RGB).max() < 30


def test_all_kinds_agree_on_the_silhouette() -> None:
    mesh, depth, mask = render("mesh"), render("depth"), render("mask")
    sil = mesh.rgb[0].any(-1)
    assert np.array_equal(sil, depth.rgb[0].any(-1)) and np.array_equal(sil, mask.rgb[0].any(-1))
    assert set(map(tuple, mask.rgb[0][sil].tolist())) == {(0, 255, 0), (255, 0, 0)}
    # depth: metres where there is a hand, brighter is nearer
    d = mesh.depth[0]
    assert ((d > 0.2) & (d < 0.8))[sil].all() and (d[~sil] == 0).all()
    near, far = np.unravel_index(np.argmin(np.where(sil, d, 9)), d.shape), np.unravel_index(np.argmax(d), d.shape)
    assert depth.rgb[0][near][0] > depth.rgb[0][far][0]


def test_scene_depth_occludes_hands() -> None:
    free = render("mesh")
    wall_behind = render("mesh", scene_depth=np.full((1, 120, 160), 5.0, np.float32))
    wall_in_front = render("mesh", scene_depth=np.full((1, 120, 160), 0.1, np.float32))
    assert np.array_equal(free.rgb, wall_behind.rgb)
    assert wall_in_front.rgb.max() == 0
    half = np.full((1, 120, 160), 5.0, np.float32)
    half[:, :, 80:] = 0.1  # something in front of the right half of the image
    p = render("mesh", scene_depth=half)
    assert p.mask[0, 0].sum() == free.mask[0, 0].sum() and p.mask[0, 1].sum() == 0
    sk = render("skeleton", scene_depth=half)
    assert sk.rgb[0, :, 80:].max() == 0 and sk.rgb[0, :, :80].max() > 0


def test_hidden_and_behind_camera_hands_draw_nothing() -> None:
    vis = torch.tensor([[True, False]])
    p = render("mesh", visible=vis)
    assert p.mask[0, 0].any() and not p.mask[0, 1].any()
    behind = render("mesh", z=1.0)  # hands above the camera's eye, i.e. partly behind it
    joints, verts, faces = two_hands()
    vm = look_at(torch.tensor([0.0, 1.0, 0.2]), torch.tensor([0.0, 2.0, 0.2]))[None]  # looking away
    away = render_prompt("mesh", vm, camera()[1], 160, 120, joints, torch.ones(1, 2, dtype=torch.bool), verts, faces)
    assert away.rgb.max() == 0
    sk = render_prompt("skeleton", vm, camera()[1], 160, 120, joints, torch.ones(1, 2, dtype=torch.bool))
    assert sk.rgb.max() == 0
    assert behind.rgb.shape == (1, 120, 160, 3)


def test_skeleton_colours_and_invalid_joints() -> None:
    sk = render("skeleton")
    colours = {tuple(c) for c in sk.rgb[0].reshape(-1, 3).tolist()}
    assert (255, 220, 0) in colours and (255, 96, 64) in colours  # index yellow, thumb orange
    valid = torch.ones(1, 2, 21, dtype=torch.bool)
    valid[:, :, [2, 3, 17]] = False  # no index PIP, DIP, tip
    without = render("skeleton", joint_valid=valid)
    n_yellow = lambda img: int((img == np.array([255, 220, 0])).all(-1).sum())  # noqa: E731
    assert n_yellow(without.rgb[0]) < n_yellow(sk.rgb[0]) * 0.8


def test_errors() -> None:
    joints, verts, faces = two_hands()
    vm, K = camera()
    with pytest.raises(ValueError, match="`kind` must be one of"):
        render_prompt("hologram", vm, K, 160, 120, joints, torch.ones(1, 2, dtype=torch.bool))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs hand `vertices`"):
        render_prompt("mesh", vm, K, 160, 120, joints, torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="`scene_depth` must have shape"):
        render_prompt("mesh", vm, K, 160, 120, joints, torch.ones(1, 2, dtype=torch.bool), verts, faces,
                      scene_depth=np.zeros((1, 10, 10)))  # fmt: skip


def test_vertex_normals_kernel_matches_torch() -> None:
    """The numba path (CPU float64, no gradient) gives the torch path's unit normals; a flat square's normals are
    its plane's normal, whatever the batch shape."""
    rng = np.random.default_rng(0)
    verts = torch.from_numpy(rng.normal(size=(2, 3, 40, 3)))
    faces = torch.from_numpy(rng.integers(0, 40, (70, 3)))
    fast = vertex_normals(verts, faces)
    slow = vertex_normals(verts.clone().requires_grad_(True), faces).detach()
    assert fast.shape == (2, 3, 40, 3)
    assert torch.allclose(fast, slow, atol=1e-12)
    square = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=torch.float64)
    n = vertex_normals(square, torch.tensor([[0, 1, 2], [0, 2, 3]]))
    assert torch.allclose(n, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(4, 3))
    with pytest.raises(ValueError, match="faces"):
        vertex_normals(square, torch.tensor([[0, 1, 4]]))
