from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dexsim.scene import GaussianScene, PlyError, read_ply, read_scene, read_splat, write_ply

from .test_render import random_scene

FUZZ_EXAMPLES = int(os.environ.get("DEXSIM_FUZZ_EXAMPLES", "150"))


def assert_bit_exact(a: GaussianScene, b: GaussianScene) -> None:
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == torch.float32
        assert torch.equal(x.view(torch.int32), y.view(torch.int32)), name


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("normals", [True, False])
def test_round_trip_bit_exact(tmp_path: Path, degree: int, normals: bool) -> None:
    scene = random_scene(257, degree, sh_degree=degree)
    path = write_ply(scene, tmp_path / "s.ply", normals=normals)
    back = read_scene(path)
    assert_bit_exact(scene, back)
    # and a second write of what was read gives the same bytes
    again = write_ply(back, tmp_path / "t.ply", normals=normals)
    assert again.read_bytes() == path.read_bytes()


def test_inria_layout_is_read_by_open3d(tmp_path: Path) -> None:
    o3d = pytest.importorskip("open3d")
    scene = random_scene(100, 3, sh_degree=3)
    path = write_ply(scene, tmp_path / "s.ply")
    header = path.read_bytes().split(b"end_header")[0].decode()
    names = [ln.split()[-1] for ln in header.splitlines() if ln.startswith("property")]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert names[54:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    pcd = o3d.t.io.read_point_cloud(str(path))
    assert np.array_equal(pcd.point.positions.numpy(), scene.means.numpy())
    assert np.array_equal(pcd.point.opacity.numpy()[:, 0], scene.opacity_logits.numpy())
    # open3d 0.20 returns activated scales (exp of the stored log-scales)
    assert np.allclose(pcd.point.scale.numpy(), np.exp(scene.log_scales.numpy()), rtol=1e-6)
    assert np.array_equal(pcd.point.rot.numpy(), scene.quats.numpy())
    # open3d gives f_rest as (N, K-1, 3) coefficient-major: the same numbers as our sh[:, 1:]
    assert np.array_equal(pcd.point.f_rest.numpy().reshape(100, 15, 3), scene.sh[:, 1:].numpy())


def test_properties_found_by_name_not_position(tmp_path: Path) -> None:
    scene = random_scene(20, 1, sh_degree=1)
    ref = write_ply(scene, tmp_path / "a.ply")
    cols = read_ply(ref)
    names = list(cols)[::-1]  # reversed order, plus an unknown extra property
    table = np.empty(20, dtype=[(n, "<f4") for n in names] + [("confidence", "<f8")])
    for n in names:
        table[n] = cols[n]
    table["confidence"] = 1.0
    head = "ply\nformat binary_little_endian 1.0\nelement vertex 20\n"
    head += "".join(f"property float {n}\n" for n in names) + "property double confidence\nend_header\n"
    (tmp_path / "b.ply").write_bytes(head.encode() + table.tobytes())
    assert_bit_exact(scene, read_scene(tmp_path / "b.ply"))


def test_ascii_ply_is_read(tmp_path: Path) -> None:
    scene = random_scene(5, 2, sh_degree=0)
    cols = read_ply(write_ply(scene, tmp_path / "a.ply", normals=False))
    names = list(cols)
    lines = ["ply", "format ascii 1.0", "element vertex 5"] + [f"property float {n}" for n in names] + ["end_header"]
    lines += [" ".join(repr(float(cols[n][i])) for n in names) for i in range(5)]
    (tmp_path / "ascii.ply").write_text("\n".join(lines) + "\n")
    assert_bit_exact(scene, read_scene(tmp_path / "ascii.ply"))


def test_malformed_files_are_refused(tmp_path: Path) -> None:
    good = write_ply(random_scene(50, 0), tmp_path / "good.ply").read_bytes()
    cases = {
        "truncated": (good[:-100], "truncated: the header declares 50 vertices"),
        "trailing": (good + b"\0" * 64, "64 bytes of trailing data"),
        "not_ply": (b"hello world, not a ply" * 10, "not a PLY file"),
        "no_end": (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n", "no 'end_header'"),
        "absurd": (good.replace(b"element vertex 50", b"element vertex 99999999999"), "absurd count"),
        "negative": (good.replace(b"element vertex 50", b"element vertex -5"), "absurd count"),
        "bad_type": (good.replace(b"property float opacity", b"property quad opacity"), "unknown property type"),
    }
    for name, (data, message) in cases.items():
        p = tmp_path / f"{name}.ply"
        p.write_bytes(data)
        with pytest.raises(PlyError, match=message):
            read_scene(p)
    missing = good.replace(b"property float opacity", b"property float opacitx")
    (tmp_path / "missing.ply").write_bytes(missing)
    with pytest.raises(PlyError, match=r"missing properties \['opacity'\]"):
        read_scene(tmp_path / "missing.ply")
    with pytest.raises(FileNotFoundError):
        read_scene(tmp_path / "nope.ply")


def test_plain_point_cloud_gets_a_hint(tmp_path: Path) -> None:
    head = b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
    head += b"property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    (tmp_path / "pc.ply").write_bytes(head + struct.pack("<fffBBB", 1, 2, 3, 4, 5, 6))
    with pytest.raises(PlyError, match="from_point_cloud"):
        read_scene(tmp_path / "pc.ply")


def test_nan_rows_dropped_with_count(tmp_path: Path) -> None:
    scene = random_scene(30, 4)
    path = write_ply(scene, tmp_path / "s.ply")
    cols = {k: np.array(v) for k, v in read_ply(path).items()}
    cols["x"][3] = np.nan
    cols["scale_1"][7] = np.inf
    table = np.empty(30, dtype=[(n, "<f4") for n in cols])
    for n in cols:
        table[n] = cols[n]
    head = "ply\nformat binary_little_endian 1.0\nelement vertex 30\n" + "".join(f"property float {n}\n" for n in cols)
    (tmp_path / "nan.ply").write_bytes((head + "end_header\n").encode() + table.tobytes())
    with pytest.warns(UserWarning, match="dropped 2 of 30"):
        back = read_scene(tmp_path / "nan.ply")
    assert len(back) == 28
    keep = [i for i in range(30) if i not in (3, 7)]
    assert torch.equal(back.means, scene.means[keep])


def test_object_ids_round_trip(tmp_path: Path) -> None:
    scene = random_scene(40, 2, with_objects=True)
    back = read_scene(write_ply(scene, tmp_path / "o.ply"))
    assert back.object_ids is not None and torch.equal(back.object_ids, scene.object_ids)


def test_splat_format(tmp_path: Path) -> None:
    n = 10
    rng = np.random.default_rng(0)
    rec = np.zeros(n, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    rec["pos"] = rng.normal(size=(n, 3))
    rec["scale"] = rng.uniform(0.01, 0.1, size=(n, 3))
    rec["rgba"] = rng.integers(0, 256, size=(n, 4))
    rec["rgba"][:, 3] = 128
    rec["rot"] = [255, 128, 128, 128]  # identity, w first
    (tmp_path / "a.splat").write_bytes(rec.tobytes())
    scene = read_splat(tmp_path / "a.splat")
    assert torch.allclose(scene.means, torch.from_numpy(rec["pos"]))
    assert torch.allclose(scene.scales, torch.from_numpy(rec["scale"]), rtol=1e-6)
    assert torch.allclose(scene.opacities, torch.full((n,), 128 / 255), atol=1e-6)
    rgb = scene.sh[:, 0] * 0.28209479177387814 + 0.5
    assert torch.allclose(rgb, torch.from_numpy(rec["rgba"][:, :3] / 255.0).float(), atol=1e-6)
    assert torch.allclose(scene.quats[:, 0], torch.full((n,), 127 / 128))
    (tmp_path / "bad.splat").write_bytes(rec.tobytes()[:-5])
    with pytest.raises(PlyError, match="not a multiple of 32"):
        read_scene(tmp_path / "bad.splat")


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_parser_fuzz_never_crashes_or_passes_garbage(tmp_path: Path, data: st.DataObject) -> None:
    """Random corruptions of a valid file either read as a well-formed scene or raise PlyError."""
    good = bytearray(write_ply(random_scene(8, 1, sh_degree=1), tmp_path / "g.ply").read_bytes())
    op = data.draw(st.sampled_from(["truncate", "flip", "insert", "header"]))
    if op == "truncate":
        blob = good[: data.draw(st.integers(0, len(good) - 1))]
    elif op == "flip":
        i = data.draw(st.integers(0, len(good) - 1))
        good[i] = data.draw(st.integers(0, 255))
        blob = good
    elif op == "insert":
        i = data.draw(st.integers(0, len(good)))
        blob = good[:i] + bytes(data.draw(st.binary(min_size=1, max_size=16))) + good[i:]
    else:
        end = good.index(b"end_header")
        i = data.draw(st.integers(0, end))
        blob = good[:i] + data.draw(st.text(max_size=12)).encode("utf-8", "replace") + good[i:]
    p = tmp_path / "fuzz.ply"
    p.write_bytes(bytes(blob))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scene = read_scene(p)
    except PlyError:
        return
    assert torch.isfinite(scene.means).all() and torch.isfinite(scene.sh).all()
    assert scene.means.shape[0] == scene.sh.shape[0] <= 8


def test_reads_what_open3d_writes(tmp_path: Path) -> None:
    """open3d 0.20 writes 3DGS point clouds in the INRIA layout: dexsim reads them back exactly."""
    o3d = pytest.importorskip("open3d")
    scene = random_scene(64, 5, sh_degree=2)
    pcd = o3d.t.io.read_point_cloud(str(write_ply(scene, tmp_path / "ours.ply")))
    assert o3d.t.io.write_point_cloud(str(tmp_path / "theirs.ply"), pcd)
    back = read_scene(tmp_path / "theirs.ply")
    assert torch.equal(back.means, scene.means)
    assert torch.equal(back.sh, scene.sh)
    assert torch.equal(back.opacity_logits, scene.opacity_logits)
    assert torch.allclose(back.log_scales, scene.log_scales, atol=1e-6)  # open3d re-logs its exp'd scales
    assert torch.allclose(back.quats, scene.quats)
