""".ply / .splat files are checked when read: object ids bounded, implausible data (wrong byte order)
refused, truncation refused, and every error names the file."""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dexsim.scene import GaussianScene, PlyError, read_ply, read_scene, write_ply
from dexsim.scene.ply import MAX_OBJECT_ID

from .test_render import random_scene

EXAMPLES = int(os.environ.get("DEXSIM_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def split(data: bytes) -> tuple[bytes, bytes]:
    """(header, vertex data) of a PLY file's bytes."""
    end = data.index(b"end_header\n") + len(b"end_header\n")
    return data[:end], data[end:]


def with_ids(n: int, ids: list[int], seed: int = 0) -> GaussianScene:
    return dataclasses.replace(random_scene(n, seed), object_ids=torch.tensor(ids, dtype=torch.long))


@FUZZ
@given(st.lists(st.integers(0, MAX_OBJECT_ID), min_size=1, max_size=40), st.integers(0, 1000))
def test_ids_in_range_round_trip(tmp_path: Path, ids: list[int], seed: int) -> None:
    scene = with_ids(len(ids), ids, seed)
    back = read_scene(write_ply(scene, tmp_path / "ids.ply"))
    assert back.object_ids is not None and back.object_ids.tolist() == ids
    assert torch.equal(back.means, scene.means) and back.num_objects == max(ids)


@FUZZ
@given(
    st.integers(1, 30), st.data(),
    st.one_of(st.integers(MAX_OBJECT_ID + 1, 2**31 - 1), st.integers(-(2**31), -1)),
)  # fmt: skip
def test_ids_out_of_range_are_refused_naming_file_row_and_value(
    tmp_path: Path, n: int, data: st.DataObject, value: int
) -> None:
    row = data.draw(st.integers(0, n - 1))
    head, body = split(write_ply(with_ids(n, [1] * n), tmp_path / "ok.ply").read_bytes())
    table = np.frombuffer(body, dtype=np.dtype([("rest", "V", len(body) // n - 4), ("object_id", "<i4")])).copy()
    table["object_id"][row] = value
    path = tmp_path / "ids.ply"
    path.write_bytes(head + table.tobytes())
    message = rf"^{re.escape(str(path))}: object_id {value} at row {row} is outside 0\.\.65535"
    with pytest.raises(PlyError, match=message):
        read_scene(path)


def test_float_and_unsigned_ids(tmp_path: Path) -> None:
    scene = random_scene(4, 0)
    cols = {k: np.asarray(v) for k, v in read_ply(write_ply(scene, tmp_path / "a.ply", normals=False)).items()}

    def write(name: str, ply_type: str, code: str, ids: list[float]) -> Path:
        table = np.empty(4, dtype=[*((k, "<f4") for k in cols), ("object_id", code)])
        for k in cols:
            table[k] = cols[k]
        table["object_id"] = ids
        head = "ply\nformat binary_little_endian 1.0\nelement vertex 4\n"
        head += "".join(f"property float {k}\n" for k in cols) + f"property {ply_type} object_id\nend_header\n"
        (tmp_path / name).write_bytes(head.encode() + table.tobytes())
        return tmp_path / name

    assert read_scene(write("f.ply", "float", "<f4", [0, 3, 2, 65535])).object_ids.tolist() == [0, 3, 2, 65535]
    with pytest.raises(PlyError, match=r"half\.ply: object_id must be a whole number, got 2\.5 at row 1"):
        read_scene(write("half.ply", "float", "<f4", [0, 2.5, 2, 1]))
    with pytest.raises(PlyError, match=r"huge\.ply: object_id 1e\+300 at row 3 is outside"):
        read_scene(write("huge.ply", "double", "<f8", [0, 1, 2, 1e300]))
    with pytest.raises(PlyError, match=r"uint\.ply: object_id 4294967295 at row 2 is outside 0\.\.65535 \(2 of 4"):
        read_scene(write("uint.ply", "uint", "<u4", [0, 1, 2**32 - 1, 70000]))


def test_ascii_integers_are_not_wrapped(tmp_path: Path) -> None:
    cols = read_ply(write_ply(random_scene(2, 1), tmp_path / "a.ply", normals=False))
    lines = ["ply", "format ascii 1.0", "element vertex 2", *(f"property float {k}" for k in cols)]
    lines += ["property int object_id", "end_header"]
    lines += [" ".join(repr(float(cols[k][i])) for k in cols) + f" {v}" for i, v in enumerate(["1", "4294967297"])]
    (tmp_path / "a.ply").write_text("\n".join(lines) + "\n")
    with pytest.raises(PlyError, match=r"a\.ply: vertex row 1: object_id = 4294967297\.0 does not fit its type int32"):
        read_scene(tmp_path / "a.ply")


def test_writer_refuses_ids_the_reader_would_refuse(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"w\.ply: object_id 65536 is above 65535"):
        write_ply(with_ids(3, [0, 65536, 1]), tmp_path / "w.ply")
    assert not (tmp_path / "w.ply").exists()


@FUZZ
@given(st.integers(2, 60), st.integers(0, 3), st.integers(0, 10_000), st.booleans())
def test_wrong_byte_order_is_named(tmp_path: Path, n: int, degree: int, seed: int, header_lies: bool) -> None:
    """A little-endian file labelled big-endian, or big-endian data under a little-endian header."""
    good = write_ply(random_scene(n, seed, sh_degree=degree), tmp_path / "good.ply").read_bytes()
    head, body = split(good)
    path = tmp_path / "swapped.ply"
    if header_lies:
        path.write_bytes(good.replace(b"binary_little_endian", b"binary_big_endian"))
        declared, other = "binary_big_endian", "little"
    else:
        path.write_bytes(head + np.frombuffer(body, dtype="<f4").astype(">f4").tobytes())
        declared, other = "binary_little_endian", "big"
    with pytest.raises(PlyError) as info:
        read_scene(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "zero quaternion" not in message
    assert f"read as {other}-endian the data is plausible: the header's 'format {declared}'" in message
    assert re.search(r"(implausible values for a Gaussian splat: row \d+ has|have NaN/Inf)", message)


def test_mostly_nan_file_is_refused_a_few_nan_rows_are_dropped(tmp_path: Path) -> None:
    cols = {k: np.array(v) for k, v in read_ply(write_ply(random_scene(30, 4), tmp_path / "s.ply")).items()}

    def write(rows: list[int]) -> Path:
        table = np.empty(30, dtype=[(k, "<f4") for k in cols])
        for k in cols:
            table[k] = cols[k]
        table["rot_2"][rows] = np.nan
        head = "ply\nformat binary_little_endian 1.0\nelement vertex 30\n"
        head += "".join(f"property float {k}\n" for k in cols) + "end_header\n"
        (tmp_path / "nan.ply").write_bytes(head.encode() + table.tobytes())
        return tmp_path / "nan.ply"

    with pytest.warns(UserWarning, match="dropped 15 of 30"):
        assert len(read_scene(write(list(range(15))))) == 15
    with pytest.raises(PlyError, match=r"nan\.ply: 16 of 30 Gaussians \(the first at row 2\) have NaN/Inf values"):
        read_scene(write(list(range(2, 18))))


@FUZZ
@given(st.integers(1, 50), st.data())
def test_truncated_files_name_the_counts(tmp_path: Path, n: int, data: st.DataObject) -> None:
    good = write_ply(random_scene(n, n, sh_degree=1), tmp_path / "g.ply").read_bytes()
    head, body = split(good)
    keep = data.draw(st.integers(0, len(body) - 1))
    path = tmp_path / "cut.ply"
    path.write_bytes(head + body[:keep])
    row = len(body) // n
    message = (rf"^{re.escape(str(path))}: truncated: the header declares {n} vertices \({len(body)} bytes\) "
               rf"but the file holds {keep} bytes after the header \({keep // row} complete vertices\)")  # fmt: skip
    with pytest.raises(PlyError, match=message):
        read_scene(path)


@FUZZ
@given(st.data())
def test_every_error_names_the_file(tmp_path: Path, data: st.DataObject) -> None:
    """Random corruptions of valid .ply and .splat files either load or raise a PlyError naming the file."""
    suffix = data.draw(st.sampled_from([".ply", ".splat"]))
    if suffix == ".ply":
        blob = bytearray(write_ply(random_scene(6, 2, sh_degree=1, with_objects=True), tmp_path / "g.ply").read_bytes())
    else:
        blob = bytearray(np.random.default_rng(0).uniform(0.01, 1, 6 * 8).astype("<f4").tobytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if op == "flip":
            blob[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            blob[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del blob[i]
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(bytes(blob))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scene = read_scene(path)
    except PlyError as exc:
        assert str(exc).startswith(f"{path}: "), str(exc)
        return
    assert torch.isfinite(scene.means).all() and torch.isfinite(scene.log_scales).all()
    ids = scene.object_ids
    assert ids is None or ids.numel() == 0 or int(ids.max()) <= MAX_OBJECT_ID


def test_errors_from_building_the_scene_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_ply(random_scene(3, 0), tmp_path / "s.ply")

    def refuse(*args: object) -> None:
        raise ValueError("`quats` must be non-zero, got a zero quaternion at row 0")

    monkeypatch.setattr("dexsim.scene.ply.GaussianScene", refuse)
    with pytest.raises(PlyError, match=rf"^{re.escape(str(path))}: `quats` must be non-zero"):
        read_scene(path)


def test_splat_with_absurd_scales_is_refused(tmp_path: Path) -> None:
    rec = np.zeros(4, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    rec["scale"] = 0.05
    rec["rot"] = [255, 128, 128, 128]
    rec["scale"][2, 1] = 1e-30  # log-scale -69
    (tmp_path / "a.splat").write_bytes(rec.tobytes())
    with pytest.raises(PlyError, match=r"a\.splat: implausible values .* row 2 has a log-scale of -69\.0776"):
        read_scene(tmp_path / "a.splat")


def test_cli_reports_bad_scene_files_in_one_line(tmp_path: Path) -> None:
    from dexsim.cli import main

    good = write_ply(random_scene(10, 3), tmp_path / "good.ply").read_bytes()
    (tmp_path / "swapped.ply").write_bytes(good.replace(b"binary_little_endian", b"binary_big_endian"))
    result = CliRunner().invoke(main, ["scene", "inspect", str(tmp_path / "swapped.ply")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"dexsim: error: {tmp_path / 'swapped.ply'}: " in result.output and "probably wrong" in result.output
    head, body = split(write_ply(with_ids(10, [1] * 10), tmp_path / "ids.ply").read_bytes())
    path = tmp_path / "ids.ply"
    path.write_bytes(head + body[:-4] + np.int32(2**31 - 1).tobytes())
    result = CliRunner().invoke(main, ["render", "--scene", str(path), "--out", str(tmp_path / "v.mp4")])
    assert result.exit_code == 2 and f"{path}: object_id 2147483647 at row 9 is outside 0..65535" in result.output
