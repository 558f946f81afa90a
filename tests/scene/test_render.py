from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dexsim.geometry import PinholeIntrinsics, axis_angle_to_matrix, look_at, make_se3, random_quat
from dexsim.scene import GaussianScene, render

from .reference_renderer import reference_render

BACKENDS = ["cpu", "torch"]


def random_scene(n: int, seed: int, sh_degree: int = 0, with_objects: bool = False) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([1.0, 1.0, 0.6])
    quats = random_quat(n, g)
    scales = torch.exp(torch.rand(n, 3, generator=g) * 2.0 - 4.0)  # 0.018 .. 0.14
    opac = torch.rand(n, generator=g) * 0.9 + 0.05
    sh = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.5
    ids = torch.randint(0, 3, (n,), generator=g) if with_objects else None
    return GaussianScene.from_activated(means, quats, scales, opac, sh=sh, object_ids=ids)


def camera(eye: tuple[float, float, float], size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    intr = PinholeIntrinsics.from_fov(60.0, size, size)
    return look_at(torch.tensor(eye), torch.tensor([0.0, 0.0, 0.0])), intr.K()


def ref(scene: GaussianScene, vm: torch.Tensor, K: torch.Tensor, size: int, **kw: object):
    ids = None if scene.object_ids is None else scene.object_ids.numpy()
    return reference_render(
        scene.means.double().numpy(), scene.quats.double().numpy(), scene.scales.double().numpy(),
        scene.opacities.double().numpy(), scene.sh.double().numpy(), vm.double().numpy(), K.double().numpy(),
        size, size, object_ids=ids, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("seed", "sh_degree", "antialiased"), [(0, 0, False), (1, 1, False), (2, 3, False), (3, 2, True), (4, 3, True)]
)
def test_matches_reference(backend: str, seed: int, sh_degree: int, antialiased: bool) -> None:
    scene = random_scene(40, seed, sh_degree)
    vm, K = camera((0.4, -1.5, 0.8))
    bg = (0.1, 0.2, 0.3)
    out = render(scene, vm, K, 16, 16, backend=backend, antialiased=antialiased, background=bg)
    rgb, depth, alpha = ref(scene, vm, K, 16, antialiased=antialiased, background=bg)
    assert out.alpha.max() > 0.5  # the scene is in view: the comparison is not vacuous
    assert np.abs(out.rgb[0].double().numpy() - rgb).max() <= 1e-4
    assert np.abs(out.alpha[0].double().numpy() - alpha).max() <= 1e-4
    assert np.abs(out.depth[0].double().numpy() - depth).max() <= 1e-4


@pytest.mark.parametrize("backend", BACKENDS)
def test_object_poses_match_reference(backend: str) -> None:
    scene = random_scene(40, 7, sh_degree=2, with_objects=True)
    poses = torch.stack([
        make_se3(axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.7])), torch.tensor([0.1, 0.0, 0.05])),
        make_se3(axis_angle_to_matrix(torch.tensor([0.3, -0.2, 0.0])), torch.tensor([-0.1, 0.1, 0.0])),
    ])  # fmt: skip
    vm, K = camera((0.3, -1.4, 0.9))
    out = render(scene, vm, K, 16, 16, backend=backend, object_poses=poses)
    rgb, depth, _ = ref(scene, vm, K, 16, object_poses=poses.double().numpy())
    still = render(scene, vm, K, 16, 16, backend=backend)
    assert (out.rgb - still.rgb).abs().max() > 0.05  # the motion changes the image
    assert np.abs(out.rgb[0].double().numpy() - rgb).max() <= 1e-4
    assert np.abs(out.depth[0].double().numpy() - depth).max() <= 1e-4


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_gaussian_analytic(backend: str) -> None:
    # an isotropic Gaussian of std s at depth z on the optical axis, projected at a pixel centre
    s, z, opac, color = 0.05, 2.0, 0.8, torch.tensor([0.9, 0.4, 0.1])
    scene = GaussianScene.from_activated(
        torch.tensor([[0.0, 0.0, z]]), torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.full((1, 3), s),
        torch.tensor([opac]), colors=color[None],
    )  # fmt: skip
    f, size = 100.0, 33
    K = torch.tensor([[f, 0, 16.5], [0, f, 16.5], [0, 0, 1.0]])
    out = render(scene, torch.eye(4), K, size, size, backend=backend)
    assert out.alpha[0, 16, 16].item() == pytest.approx(opac, abs=1e-5)
    assert torch.allclose(out.rgb[0, 16, 16], opac * color, atol=1e-5)
    assert out.depth[0, 16, 16].item() == pytest.approx(z, abs=1e-5)
    # 2D std in pixels: f s / z, plus the 0.3 px^2 blur
    var = (f * s / z) ** 2 + 0.3
    for d in (1, 2, 4):
        assert out.alpha[0, 16, 16 + d].item() == pytest.approx(opac * math.exp(-0.5 * d * d / var), abs=1e-5)
    assert out.alpha[0, 0, 0].item() == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_front_to_back_and_order_independent(backend: str) -> None:
    means = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 3.0]])
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    o1, o2 = 0.6, 0.7
    kw = dict(
        quats=torch.tensor([[1.0, 0, 0, 0]] * 2), scales=torch.full((2, 3), 0.2), opacities=torch.tensor([o1, o2])
    )
    K = torch.tensor([[50.0, 0, 8.5], [0, 50.0, 8.5], [0, 0, 1.0]])
    a = render(GaussianScene.from_activated(means, colors=colors, **kw), torch.eye(4), K, 17, 17, backend=backend)
    flipped = dict(quats=kw["quats"], scales=kw["scales"], opacities=kw["opacities"].flip(0))
    b = render(GaussianScene.from_activated(means.flip(0), colors=colors.flip(0), **flipped), torch.eye(4), K, 17, 17,
               backend=backend)  # fmt: skip
    assert torch.allclose(a.rgb, b.rgb, atol=1e-6)
    centre = a.rgb[0, 8, 8]
    assert torch.allclose(centre, torch.tensor([o1, 0.0, (1 - o1) * o2]), atol=1e-5)
    assert a.alpha[0, 8, 8].item() == pytest.approx(1 - (1 - o1) * (1 - o2), abs=1e-5)
    expected_depth = (o1 * 2.0 + (1 - o1) * o2 * 3.0) / (1 - (1 - o1) * (1 - o2))
    assert a.depth[0, 8, 8].item() == pytest.approx(expected_depth, abs=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_cameras_and_culling(backend: str) -> None:
    scene = random_scene(60, 11, sh_degree=1)
    vms = torch.stack([camera((0.4, -1.5, 0.8))[0], camera((-1.2, 0.6, 0.5))[0], camera((0.5, 0.3, -3.0))[0]])
    K = camera((0.0, 1.0, 0.0))[1]
    out = render(scene, vms, K, 16, 16, backend=backend)
    assert out.rgb.shape == (3, 16, 16, 3) and out.depth.shape == (3, 16, 16) and out.alpha.shape == (3, 16, 16)
    for i in range(3):
        single = render(scene, vms[i], K, 16, 16, backend=backend)
        assert torch.allclose(single.rgb[0], out.rgb[i], atol=1e-6)
    # a camera looking away from the scene sees nothing
    away = look_at(torch.tensor([0.0, -3.0, 0.0]), torch.tensor([0.0, -6.0, 0.0]))
    empty = render(scene, away, K, 16, 16, backend=backend)
    assert empty.alpha.max().item() == 0.0 and empty.depth.max().item() == 0.0


def test_cpu_and_torch_agree_on_larger_scene() -> None:
    scene = random_scene(3000, 5, sh_degree=3)
    vm, K = camera((0.5, -1.2, 0.9), size=64)
    K = PinholeIntrinsics.from_fov(60.0, 64, 48).K()
    a = render(scene, vm, K, 64, 48, backend="cpu")
    b = render(scene, vm, K, 64, 48, backend="torch")
    assert a.alpha.mean() > 0.3
    assert (a.rgb - b.rgb).abs().max() <= 2e-4
    assert (a.alpha - b.alpha).abs().max() <= 1e-4


def test_render_errors_name_the_value() -> None:
    scene = random_scene(5, 0)
    vm, K = camera((0.0, -2.0, 0.0))
    with pytest.raises(ValueError, match="`width` must be an int in \\[1, 16384\\], got 0"):
        render(scene, vm, K, 0, 16)
    with pytest.raises(ValueError, match="`backend` must be 'auto', 'cpu', 'torch' or 'gsplat', got 'vulkan'"):
        render(scene, vm, K, 16, 16, backend="vulkan")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`viewmats` must be finite"):
        render(scene, torch.full((4, 4), float("nan")), K, 16, 16)
    with pytest.raises(ValueError, match="must agree"):
        render(scene, torch.stack([vm, vm]), torch.stack([K, K, K]), 16, 16)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_masked_depth_is_the_subset_rendered_alone(backend: str) -> None:
    """``depth_mask``: the subset's depth from the same pass equals rendering the subset by itself."""
    scene = random_scene(400, 3)
    mask = torch.rand(scene.num_gaussians, generator=torch.Generator().manual_seed(0)) < 0.6
    vm, K = camera((0.5, -1.2, 0.9), size=32)
    out = render(scene, vm, K, 32, 32, backend=backend, depth_mask=mask)
    alone = render(scene.subset(mask), vm, K, 32, 32, backend=backend)
    whole = render(scene, vm, K, 32, 32, backend=backend)
    assert out.masked_depth is not None and torch.allclose(out.masked_depth, alone.depth, atol=1e-5)
    assert torch.equal(out.rgb, whole.rgb) and torch.equal(out.depth, whole.depth)
    assert not torch.allclose(out.masked_depth, whole.depth, atol=1e-3)  # the subset sees behind the rest
    with pytest.raises(ValueError, match="depth_mask"):
        render(scene, vm, K, 32, 32, backend=backend, depth_mask=mask[:-1])


def test_cpu_tile_binning_and_thread_balance() -> None:
    """Parallel binning gives every tile exactly the Gaussians touching it, in depth (index) order, for any number
    of runs; the balanced tile order is a permutation that splits the work evenly between the threads."""
    from dexsim.scene import _cpu_kernels as kern

    rng = np.random.default_rng(0)
    m, w, h = 500, 70, 50
    xy = rng.uniform(-10, 80, (m, 2)).astype(np.float32)
    radii = rng.integers(0, 20, (m, 2)).astype(np.int32)
    tw, th = -(-w // kern.TILE_W), -(-h // kern.TILE_H)
    expected: list[list[int]] = [[] for _ in range(tw * th)]
    for j in range(m):
        x0, x1 = max(0, math.ceil(xy[j, 0] - radii[j, 0] - 0.5)), min(w - 1, math.floor(xy[j, 0] + radii[j, 0] - 0.5))
        y0, y1 = max(0, math.ceil(xy[j, 1] - radii[j, 1] - 0.5)), min(h - 1, math.floor(xy[j, 1] + radii[j, 1] - 0.5))
        for ty in range(y0 // kern.TILE_H, y1 // kern.TILE_H + 1) if y1 >= y0 and x1 >= x0 else ():
            for tx in range(x0 // kern.TILE_W, x1 // kern.TILE_W + 1):
                expected[ty * tw + tx].append(j)
    for chunks in (1, 2, 3):
        offsets, lists = kern.bin_tiles(xy, radii, w, h, chunks)
        got = [lists[offsets[t] : offsets[t + 1]].tolist() for t in range(tw * th)]
        assert got == expected, f"{chunks} runs"
    costs = np.diff(offsets)
    order = kern.balanced_tile_order(offsets, 2)
    assert sorted(order.tolist()) == list(range(tw * th))
    half = len(order) // 2 + len(order) % 2
    first, second = costs[order[:half]].sum(), costs[order[half:]].sum()
    assert abs(first - second) <= costs.max()  # snake dealing of sorted costs: within one tile of even


def test_cpu_depth_sort_is_stable() -> None:
    """The radix sort orders like a stable argsort (ties keep index order), skipped passes included."""
    from dexsim.scene import _cpu_kernels as kern

    rng = np.random.default_rng(1)
    wide = rng.choice(np.linspace(0.1, 50.0, 300), 5000).astype(np.float32)  # many ties, every pass used
    narrow = np.float32(1.0) + rng.integers(0, 64, 5000).astype(np.float32) * np.float32(2.0**-23)  # low digit only
    for keys in (wide, narrow, wide[:1], wide[:0]):
        got = kern._radix_argsort_positive(keys)
        assert np.array_equal(got, np.argsort(keys, kind="stable")), len(keys)


@pytest.mark.parametrize(("antialiased", "stretched"), [(False, False), (True, False), (False, True)])
def test_cpu_cull_keeps_gaussians_reaching_in_from_outside(antialiased: bool, stretched: bool) -> None:
    """The projection's early screen-bounds cull drops only Gaussians that cannot reach the image: large, elongated
    Gaussians centred outside the view still paint their tails in, exactly as the reference renders them; also
    with antialiasing, and with an object pose that scales (not rigid: the cull's bound grows with it)."""
    g = torch.Generator().manual_seed(5)
    n = 300
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([4.0, 4.0, 0.6])
    scales = torch.exp(torch.rand(n, 3, generator=g) * 3.0 - 4.5) * torch.tensor([6.0, 1.0, 1.0])  # up to 0.9 long
    ids = (torch.arange(n) % 2) if stretched else None
    scene = GaussianScene.from_activated(means, random_quat(n, g), scales, torch.rand(n, generator=g) * 0.9 + 0.05,
                                         sh=torch.randn(n, 1, 3, generator=g) * 0.5, object_ids=ids)  # fmt: skip
    poses = None
    if stretched:  # object 1 grown 3x about the origin: its Gaussians' tails reach 3x further
        poses = torch.eye(4)[None].clone()
        poses[0, :3, :3] *= 3.0
    vm, K = camera((0.3, -1.2, 0.9), size=24)
    cam = (vm.double() @ torch.cat((means.double(), torch.ones(n, 1, dtype=torch.float64)), 1).T).T[:, :3]
    uv = (K.double() @ cam.T).T
    outside = (cam[:, 2] > 0) & ((uv[:, :2] / uv[:, 2:]).lt(0).any(1) | (uv[:, :2] / uv[:, 2:]).ge(24).any(1))
    off = GaussianScene.from_activated(means[outside], scene.quats[outside], scales[outside], scene.opacities[outside],
                                       sh=scene.sh[outside])  # fmt: skip
    tails = render(off, vm, K, 24, 24, backend="torch")
    assert tails.alpha.max() > 0.3  # Gaussians centred off-screen do reach in: the comparison is not vacuous
    out = render(scene, vm, K, 24, 24, backend="cpu", antialiased=antialiased, object_poses=poses)
    kw = {} if poses is None else {"object_poses": poses.double().numpy()}
    rgb, depth, alpha = ref(scene, vm, K, 24, antialiased=antialiased, **kw)
    assert np.abs(out.rgb[0].double().numpy() - rgb).max() <= 1e-4
    assert np.abs(out.alpha[0].double().numpy() - alpha).max() <= 1e-4
    assert np.abs(out.depth[0].double().numpy() - depth).max() <= 1e-4


def test_cpu_compositor_counts_finished_pixels_in_every_column() -> None:
    """The tile stops only when every pixel is finished: pixels finished in columns 0-7 and one in column 8, then a
    half-opaque red Gaussian over the whole tile must still reach every unfinished pixel (a popcount that weighted
    column 8 by 257 once stopped this tile early), and the bit count is exact for every column."""
    from dexsim.scene import _cpu_kernels as kern

    rng = np.random.default_rng(0)
    for x in [0, 1, 0xFF, 0x100, 0xFFFFFFFF, *rng.integers(0, 2**32, 200).tolist()]:
        assert int(kern._popcount(np.uint32(x))) == bin(x).count("1")

    def row(mx: float, my: float, o: float, colour: tuple[int, int, int]) -> list[float]:
        return [mx, my, 1e-6, 0.0, 1e-6, o, math.log(o * 255.0), 1.0, *colour]

    w, h = 16, 32
    rows, radii = [], []
    for mx, my, r in ((4.0, 15.5, (4, 15)), (3.5, 31.5, (3, 0)), (8.5, 0.5, (0, 0))):  # cols 0-7 / 0-6 / 8
        for _ in range(2):  # two opaque layers finish these pixels
            rows.append(row(mx, my, 1.0, (0, 0, 1)))
            radii.append(r)
    rows.append(row(8.0, 16.0, 0.5, (1, 0, 0)))
    radii.append((8, 16))
    g, rad = np.asarray(rows, np.float32), np.asarray(radii, np.int32)
    rgb, depth, alpha = np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    evals = np.zeros(1, np.int64)
    kern.composite(np.array([0, len(g)]), np.arange(len(g), dtype=np.int32), g, rad, np.zeros(1, np.int64), w, h,
                   np.zeros(3, np.float32), rgb, depth, alpha, evals)  # fmt: skip
    untouched = alpha < 0.9  # not covered by the opaque layers
    assert untouched.sum() == w * h - (8 * 31 + 7 + 1)
    np.testing.assert_allclose(alpha[untouched], 0.5, atol=1e-3)
    np.testing.assert_allclose(rgb[untouched][:, 0], 0.5, atol=1e-3)
