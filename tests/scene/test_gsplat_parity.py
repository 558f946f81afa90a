from __future__ import annotations

import importlib.util

import pytest
import torch

from dexsim.geometry import axis_angle_to_matrix, make_se3
from dexsim.scene import render

from .test_render import camera, random_scene

pytestmark = pytest.mark.gpu

# the CPU side of the comparison: the numba renderer, or the torch one where numba is absent
# (both are checked against the float64 reference renderer in test_render.py)
CPU_BACKEND = "cpu" if importlib.util.find_spec("numba") is not None else "torch"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize(("sh_degree", "antialiased"), [(0, False), (3, False), (3, True)])
def test_gsplat_matches_cpu(sh_degree: int, antialiased: bool) -> None:
    pytest.importorskip("gsplat")
    scene = random_scene(4000, 3, sh_degree=sh_degree)
    vm, K = camera((0.5, -1.3, 0.8), size=96)
    cpu = render(scene, vm, K, 96, 96, backend=CPU_BACKEND, antialiased=antialiased, background=(0.2, 0.3, 0.4))
    gpu = render(scene.to("cuda"), vm, K, 96, 96, backend="gsplat", antialiased=antialiased, background=(0.2, 0.3, 0.4))
    assert gpu.backend == "gsplat"
    assert psnr(cpu.rgb, gpu.rgb.cpu()) >= 40.0
    assert (cpu.alpha - gpu.alpha.cpu()).abs().max() < 1e-2
    mask = cpu.alpha > 0.5
    assert (cpu.depth[mask] - gpu.depth.cpu()[mask]).abs().max() < 1e-2


def test_gsplat_object_poses_match_cpu() -> None:
    pytest.importorskip("gsplat")
    scene = random_scene(2000, 9, sh_degree=2, with_objects=True)
    poses = torch.stack([
        make_se3(axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.7])), torch.tensor([0.1, 0.0, 0.05])),
        make_se3(axis_angle_to_matrix(torch.tensor([0.3, -0.2, 0.0])), torch.tensor([-0.1, 0.1, 0.0])),
    ])  # fmt: skip
    vm, K = camera((0.5, -1.3, 0.8), size=64)
    cpu = render(scene, vm, K, 64, 64, backend=CPU_BACKEND, object_poses=poses)
    gpu = render(scene.to("cuda"), vm, K, 64, 64, backend="gsplat", object_poses=poses)
    assert psnr(cpu.rgb, gpu.rgb.cpu()) >= 40.0


def test_auto_picks_gsplat_on_cuda() -> None:
    pytest.importorskip("gsplat")
    scene = random_scene(50, 1).to("cuda")
    vm, K = camera((0.5, -1.3, 0.8))
    assert render(scene, vm, K, 16, 16).backend == "gsplat"
