"""Gaussian-splat files: INRIA 3DGS ``.ply`` (read/write), gsplat/nerfstudio exports, ``.splat`` (read).

The INRIA layout stores, per vertex, ``x y z [nx ny nz] f_dc_0..2 f_rest_0..(3K-4) opacity
scale_0..2 rot_0..3`` as float32 with raw log-scales, logit-opacities, w-first quaternions and
channel-major ``f_rest`` (all red coefficients, then green, then blue). Properties are found by
name, never by position. Binary files are memory-mapped, so large scenes do not load twice.

Files are checked when read, and every error names the file (:class:`PlyError`):

- ``object_id`` must hold whole numbers in ``0..MAX_OBJECT_ID`` (65535): renderers allocate per id,
  so one absurd id would allocate gigabytes later.
- finite values no trained Gaussian has (``|position| > 1e9``, ``|log-scale| > 50``,
  ``|opacity logit| > 100``, ``|SH coefficient| > 1e6``, quaternion norm outside ``1e-8..1e8``)
  mean a misread file, typically the wrong byte order: the file is refused, naming the first such
  row and, when the data reads plausibly in the other byte order, the header's format line.
- rows holding NaN/Inf or a zero quaternion are dropped with a warning, unless they are more than
  half of the file: then it is refused as corrupt.
- a binary file shorter than its header's vertex count needs is refused, naming both counts.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_path
from .gaussians import SH_C0, GaussianScene

__all__ = ["MAX_OBJECT_ID", "PlyError", "read_ply", "read_scene", "read_splat", "write_ply"]

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_MAX_HEADER_BYTES = 1 << 16
_MAX_VERTICES = 2_000_000_000
_REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]  # fmt: skip
#: the largest ``object_id`` a file may hold (renderers allocate per id)
MAX_OBJECT_ID = 65535
#: (what, |value| bound) past which a finite value is no trained Gaussian's but a misread file's
_BOUNDS = (("position", 1e9), ("log-scale", 50.0), ("opacity logit", 100.0), ("SH coefficient", 1e6))
_QUAT_NORM = (1e-8, 1e8)
_HINT_ROWS = 10_000  # rows read in the other byte order for the hint


class PlyError(ValueError):
    """A ``.ply`` / ``.splat`` file that cannot be read as a Gaussian splat; the message says why."""


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Re-raise any other ``ValueError`` raised while reading ``path`` as a :class:`PlyError` naming it."""
    try:
        yield
    except PlyError:
        raise
    except ValueError as exc:
        raise PlyError(f"{path}: {exc}") from exc


@dataclass
class _Element:
    name: str
    count: int
    properties: list[tuple[str, str]]  # (name, numpy type code without byte order)
    has_list: bool


def _parse_header(path: Path) -> tuple[str, list[_Element], int]:
    """Return (format, elements, header byte length)."""
    with open(path, "rb") as f:
        head = f.read(_MAX_HEADER_BYTES)
    if not head.startswith(b"ply"):
        raise PlyError(f"{path}: not a PLY file (it does not start with 'ply', got {head[:16]!r})")
    end = re.search(rb"end_header\r?\n", head)
    if end is None:
        raise PlyError(f"{path}: no 'end_header' within the first {_MAX_HEADER_BYTES} bytes: header missing or corrupt")
    try:
        lines = head[: end.start()].decode("ascii").splitlines()
    except UnicodeDecodeError as exc:
        raise PlyError(f"{path}: the PLY header is not ASCII text") from exc
    fmt = ""
    elements: list[_Element] = []
    for lineno, raw in enumerate(lines[1:], start=2):
        parts = raw.split()
        if not parts or parts[0] in ("comment", "obj_info"):
            continue
        if parts[0] == "format":
            if len(parts) < 2:
                raise PlyError(f"{path}: line {lineno}: malformed format line {raw!r}")
            fmt = parts[1]
        elif parts[0] == "element":
            if len(parts) != 3 or not re.fullmatch(r"-?\d+", parts[2]):
                raise PlyError(f"{path}: line {lineno}: malformed element line {raw!r}")
            count = int(parts[2])
            if count < 0 or count > _MAX_VERTICES:
                raise PlyError(f"{path}: element '{parts[1]}' declares an absurd count {count}")
            elements.append(_Element(parts[1], count, [], False))
        elif parts[0] == "property":
            if len(parts) < 2:
                raise PlyError(f"{path}: line {lineno}: malformed property line {raw!r}")
            if not elements:
                raise PlyError(f"{path}: line {lineno}: property before any element")
            if parts[1] == "list":
                elements[-1].has_list = True
                continue
            if len(parts) != 3 or parts[1] not in _PLY_TYPES:
                raise PlyError(f"{path}: line {lineno}: unknown property type in {raw!r}")
            elements[-1].properties.append((parts[2], _PLY_TYPES[parts[1]]))
        else:
            raise PlyError(f"{path}: line {lineno}: unexpected header line {raw!r}")
    if fmt not in ("binary_little_endian", "binary_big_endian", "ascii"):
        raise PlyError(f"{path}: unsupported or missing PLY format {fmt!r}")
    return fmt, elements, end.end()


def read_ply(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the ``vertex`` element of a PLY file into ``{property name: (N,) array}``.

    Binary data is memory-mapped (no copy until used). Raises :class:`PlyError` on a file that
    is not a PLY, is truncated, has trailing data or wrong counts, or has no vertex element.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with _naming(path):
        return _read_vertices(path)


def _read_vertices(path: Path) -> dict[str, np.ndarray]:
    fmt, elements, header_len = _parse_header(path)
    if not elements or elements[0].name != "vertex":
        raise PlyError(f"{path}: the first element must be 'vertex', got {[e.name for e in elements]}")
    vertex = elements[0]
    if vertex.has_list:
        raise PlyError(f"{path}: the vertex element has list properties, which a Gaussian splat never has")
    names = [n for n, _ in vertex.properties]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise PlyError(f"{path}: duplicate vertex properties {sorted(dupes)}")
    size = path.stat().st_size
    if fmt == "ascii":
        return _read_ascii(path, vertex, header_len, size)
    order = "<" if fmt == "binary_little_endian" else ">"
    dtype = np.dtype([(n, order + t) for n, t in vertex.properties])
    need = vertex.count * dtype.itemsize
    have = size - header_len
    if have < need:
        raise PlyError(
            f"{path}: truncated: the header declares {vertex.count} vertices ({need} bytes) but the file "
            f"holds {have} bytes after the header ({have // max(dtype.itemsize, 1)} complete vertices)"
        )
    if have > need and len(elements) == 1:
        raise PlyError(
            f"{path}: {have - need} bytes of trailing data after {vertex.count} vertices: "
            "the vertex count in the header is wrong or the file is corrupt"
        )
    if vertex.count == 0:
        return {n: np.zeros(0, dtype=dtype[n]) for n in names}
    data = np.memmap(path, dtype=dtype, mode="r", offset=header_len, shape=(vertex.count,))
    return {n: data[n] for n in names}


def _read_ascii(path: Path, vertex: _Element, header_len: int, size: int) -> dict[str, np.ndarray]:
    if size > 512 * 1024 * 1024:
        raise PlyError(f"{path}: ASCII PLY of {size} bytes is too large to parse; convert it to binary")
    with open(path, "rb") as f:
        f.seek(header_len)
        lines = f.read().decode("ascii", errors="replace").splitlines()
    rows = [ln.split() for ln in lines[: vertex.count]]
    if len(rows) < vertex.count:
        raise PlyError(f"{path}: truncated: the header declares {vertex.count} vertices, the file has {len(rows)} rows")
    width = len(vertex.properties)
    for i, r in enumerate(rows):
        if len(r) != width:
            raise PlyError(f"{path}: vertex row {i} has {len(r)} values, expected {width}")
    try:
        table = np.asarray(rows, dtype=np.float64).reshape(vertex.count, width)
    except ValueError as exc:
        raise PlyError(f"{path}: non-numeric value in the vertex rows: {exc}") from exc
    for i, (name, t) in enumerate(vertex.properties):
        if t[0] in "iu":  # an integer property: whole numbers its type holds, not silently wrapped
            info = np.iinfo(t)
            bad = (table[:, i] != np.round(table[:, i])) | (table[:, i] < info.min) | (table[:, i] > info.max)
            if bad.any():
                row = int(np.argmax(bad))
                raise PlyError(f"{path}: vertex row {row}: {name} = {table[row, i].item()!r} does not fit its type "
                               f"{np.dtype(t)}")  # fmt: skip
    return {n: table[:, i].astype(t) for i, (n, t) in enumerate(vertex.properties)}


def _sh_from_columns(path: Path, cols: dict[str, np.ndarray], n: int) -> np.ndarray:
    odd = [k for k in cols if k.startswith("f_rest_") and not re.fullmatch(r"f_rest_\d+", k)]
    if odd:
        raise PlyError(f"{path}: malformed SH property names {odd[:3]}")
    rest = sorted((k for k in cols if k.startswith("f_rest_")), key=lambda k: int(k.split("_")[-1]))
    if rest and [int(k.split("_")[-1]) for k in rest] != list(range(len(rest))):
        raise PlyError(f"{path}: f_rest properties are not numbered 0..{len(rest) - 1}")
    k_rest = len(rest) // 3
    if len(rest) % 3 or (k_rest + 1) not in (1, 4, 9, 16):
        raise PlyError(f"{path}: {len(rest)} f_rest properties do not match SH degree 0-3 (0, 9, 24 or 45)")
    sh = np.empty((n, k_rest + 1, 3), dtype=np.float32)
    for c in range(3):
        sh[:, 0, c] = cols[f"f_dc_{c}"]
        for j in range(k_rest):  # channel-major: f_rest_{c * k_rest + j}
            sh[:, 1 + j, c] = cols[f"f_rest_{c * k_rest + j}"]
    return sh


def _object_ids(path: Path, raw: np.ndarray) -> np.ndarray:
    """``object_id`` as int64; refused (naming row and value) unless whole numbers in ``0..MAX_OBJECT_ID``."""
    raw = np.asarray(raw)
    if raw.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(raw) | (raw != np.round(raw))
        if bad.any():
            i = int(np.argmax(bad))
            raise PlyError(f"{path}: object_id must be a whole number, got {raw[i].item()!r} at row {i}")
    bad = (raw < 0) | (raw > MAX_OBJECT_ID)
    if bad.any():
        i = int(np.argmax(bad))
        raise PlyError(f"{path}: object_id {raw[i].item()!r} at row {i} is outside 0..{MAX_OBJECT_ID} "
                       f"({int(bad.sum())} of {len(raw)} rows; renderers allocate per object id)")  # fmt: skip
    return raw.astype(np.int64)


def _arrays(path: Path, cols: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """(means (N, 3), quats (N, 4), log-scales (N, 3), opacity logits (N,), sh (N, K, 3)) as float32."""

    def stack(names: list[str]) -> np.ndarray:
        return np.stack([np.asarray(cols[k], dtype=np.float32) for k in names], axis=-1)

    means, quats = stack(["x", "y", "z"]), stack(["rot_0", "rot_1", "rot_2", "rot_3"])
    opacity = np.array(cols["opacity"], dtype=np.float32)  # a copy: never a view of the read-only memory map
    return means, quats, stack(["scale_0", "scale_1", "scale_2"]), opacity, _sh_from_columns(path, cols, len(opacity))


def _unusable(means: np.ndarray, quats: np.ndarray, log_scales: np.ndarray, opacity: np.ndarray, sh: np.ndarray
              ) -> np.ndarray:  # fmt: skip
    """Rows holding NaN/Inf or a zero quaternion (dropped with a warning)."""
    finite = np.isfinite(means).all(1) & np.isfinite(quats).all(1) & np.isfinite(log_scales).all(1)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf in rows that are not finite anyway
        nonzero = np.abs(quats).sum(1) > 0
    return ~(finite & np.isfinite(opacity) & np.isfinite(sh).all((1, 2)) & nonzero)


def _absurd(means: np.ndarray, quats: np.ndarray, log_scales: np.ndarray, opacity: np.ndarray, sh: np.ndarray
            ) -> tuple[np.ndarray, str]:  # fmt: skip
    """Rows holding finite values no trained Gaussian has, and what the first such row holds (NaN/Inf are
    not absurd here: those rows are dropped)."""
    n = len(opacity)
    groups = (means, log_scales, opacity[:, None], sh.reshape(n, -1))
    magnitudes = [np.where(np.isfinite(v), np.abs(v), 0.0) for v in groups]
    flags = [(m > bound).any(1) for m, (_, bound) in zip(magnitudes, _BOUNDS, strict=True)]
    with np.errstate(invalid="ignore", over="ignore"):
        norm = np.linalg.norm(quats.astype(np.float64), axis=1)
    flags.append(np.isfinite(norm) & (norm > 0) & ((norm < _QUAT_NORM[0]) | (norm > _QUAT_NORM[1])))
    bad = np.logical_or.reduce(flags)
    if not bad.any():
        return bad, ""
    i = int(np.argmax(bad))
    for k, (what, bound) in enumerate(_BOUNDS):
        if flags[k][i]:
            value = groups[k][i][int(np.argmax(magnitudes[k][i]))]
            return bad, f"row {i} has a {what} of {float(value):.6g} (beyond +-{bound:g})"
    return bad, f"row {i} has a quaternion of norm {norm[i]:.6g} (outside {_QUAT_NORM[0]:g}..{_QUAT_NORM[1]:g})"


def _byte_order_hint(path: Path, cols: dict[str, np.ndarray]) -> str:
    """A hint when the data reads plausibly in the other byte order (binary files only)."""
    fmt = _parse_header(path)[0]
    if fmt == "ascii":
        return " (is the file corrupt?)"
    swapped = {k: np.asarray(v[:_HINT_ROWS]).byteswap() for k, v in cols.items()}
    arrays = _arrays(path, swapped)
    if _unusable(*arrays).mean() < 0.5 and not _absurd(*arrays)[0].any():
        other = "big" if fmt == "binary_little_endian" else "little"
        return (f"; read as {other}-endian the data is plausible: the header's 'format {fmt}' is probably wrong "
                f"(the file was written with the other byte order)")  # fmt: skip
    return " (is the file corrupt, or its byte order wrong?)"


def read_scene(path: str | os.PathLike[str]) -> GaussianScene:
    """Load a Gaussian splat from an INRIA/gsplat/nerfstudio ``.ply`` or an antimatter15 ``.splat``.

    Checked as the module docstring says: rows holding NaN or Inf are dropped with a warning that
    gives their count; absurd values and object ids are refused. Every error names the file.
    """
    path = Path(path)
    if path.suffix.lower() == ".splat":
        return read_splat(path)
    cols = read_ply(path)
    with _naming(path):
        return _scene_from_columns(path, cols)


def _scene_from_columns(path: Path, cols: dict[str, np.ndarray]) -> GaussianScene:
    missing = [k for k in _REQUIRED if k not in cols]
    if missing:
        hint = ""
        if {"red", "green", "blue"} <= cols.keys() or not ({"f_dc_0", "opacity"} & cols.keys()):
            hint = " (it looks like a plain point cloud: build Gaussians from it with scene.builders.from_point_cloud)"
        raise PlyError(f"{path}: not a Gaussian splat: missing properties {missing}{hint}")
    means, quats, log_scales, opacity, sh = arrays = _arrays(path, cols)
    n = len(opacity)
    ids = _object_ids(path, cols["object_id"]) if "object_id" in cols else None
    absurd, what = _absurd(*arrays)
    if absurd.any():
        raise PlyError(f"{path}: implausible values for a Gaussian splat: {what}; {int(absurd.sum())} of {n} rows "
                       f"are implausible{_byte_order_hint(path, cols)}")  # fmt: skip
    bad = _unusable(*arrays)
    dropped = int(bad.sum())
    if dropped > n / 2:
        raise PlyError(f"{path}: {dropped} of {n} Gaussians (the first at row {int(np.argmax(bad))}) have NaN/Inf "
                       f"values or a zero quaternion{_byte_order_hint(path, cols)}")  # fmt: skip
    if dropped:
        warnings.warn(f"{path}: dropped {dropped} of {n} Gaussians with NaN/Inf values or a zero quaternion",
                      stacklevel=3)  # fmt: skip
        good = ~bad
        means, quats, log_scales, opacity, sh = means[good], quats[good], log_scales[good], opacity[good], sh[good]
        ids = None if ids is None else ids[good]
    return GaussianScene(
        torch.from_numpy(np.ascontiguousarray(means)), torch.from_numpy(np.ascontiguousarray(quats)),
        torch.from_numpy(np.ascontiguousarray(log_scales)), torch.from_numpy(np.ascontiguousarray(opacity)),
        torch.from_numpy(np.ascontiguousarray(sh)), None if ids is None else torch.from_numpy(ids),
    )  # fmt: skip


def write_ply(
    scene: GaussianScene, path: str | os.PathLike[str], normals: bool = True, object_ids: bool | None = None
) -> Path:
    """Write ``scene`` in the INRIA layout (binary little-endian float32), atomically.

    Args:
        normals: write zero ``nx ny nz`` (the INRIA trainer's files have them; gsplat exports do not).
        object_ids: add an ``object_id`` int property (default: when the scene has ids). Other
            readers ignore unknown properties.
    """
    n, k = scene.num_gaussians, scene.sh.shape[1]
    with_ids = scene.object_ids is not None if object_ids is None else object_ids
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals else [])
    names += ["f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(3 * (k - 1))]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    fields = [(nm, "<f4") for nm in names] + ([("object_id", "<i4")] if with_ids else [])
    table = np.empty(n, dtype=np.dtype(fields))
    cpu = scene.to("cpu")
    for i, c in enumerate("xyz"):
        table[c] = cpu.means[:, i].numpy()
    if normals:
        for c in ("nx", "ny", "nz"):
            table[c] = 0.0
    sh = cpu.sh.numpy()
    for c in range(3):
        table[f"f_dc_{c}"] = sh[:, 0, c]
        for j in range(k - 1):
            table[f"f_rest_{c * (k - 1) + j}"] = sh[:, 1 + j, c]
    table["opacity"] = cpu.opacity_logits.numpy()
    for i in range(3):
        table[f"scale_{i}"] = cpu.log_scales[:, i].numpy()
    for i in range(4):
        table[f"rot_{i}"] = cpu.quats[:, i].numpy()
    if with_ids:
        ids = cpu.object_ids if cpu.object_ids is not None else torch.zeros(n, dtype=torch.long)
        if n and int(ids.max()) > MAX_OBJECT_ID:
            raise ValueError(f"{path}: object_id {int(ids.max())} is above {MAX_OBJECT_ID}, which read_scene refuses")
        table["object_id"] = ids.numpy().astype(np.int32)
    header = ["ply", "format binary_little_endian 1.0", "comment written by dexsim", f"element vertex {n}"]
    header += [f"property {'int' if t == '<i4' else 'float'} {nm}" for nm, t in fields] + ["end_header"]
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(table.tobytes())
    return Path(path)


def read_splat(path: str | os.PathLike[str]) -> GaussianScene:
    """Read the 32-byte-per-Gaussian ``.splat`` format: position (3 f32), linear scale (3 f32),
    RGBA (4 u8, opacity in A), rotation (4 u8, w-first, ``(q * 128 + 128)``). Checked as ``.ply``
    files are (absurd positions and scales refused); every error names the file."""
    path = Path(path)
    with _naming(path):
        return _read_splat(path)


def _read_splat(path: Path) -> GaussianScene:
    size = path.stat().st_size
    if size % 32:
        raise PlyError(f"{path}: a .splat file holds 32-byte records, but its size {size} is not a multiple of 32")
    dtype = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    data = np.fromfile(path, dtype=dtype)
    scales = data["scale"].astype(np.float32)
    good = np.isfinite(data["pos"]).all(1) & np.isfinite(scales).all(1) & (scales > 0).all(1)
    quats = (data["rot"].astype(np.float32) - 128.0) / 128.0
    good &= np.abs(quats).sum(1) > 0
    if (~good).any():
        warnings.warn(f"{path}: dropped {int((~good).sum())} of {len(data)} Gaussians with invalid values",
                      stacklevel=3)  # fmt: skip
        data, scales, quats = data[good], scales[good], quats[good]
    rgba = data["rgba"].astype(np.float32) / 255.0
    alpha = np.clip(rgba[:, 3], 1e-4, 1 - 1e-4)
    sh0 = (rgba[:, :3] - 0.5) / SH_C0
    arrays = (np.ascontiguousarray(data["pos"]), quats, np.log(scales), np.log(alpha / (1 - alpha)).astype(np.float32),
              sh0[:, None, :].astype(np.float32))  # fmt: skip
    absurd, what = _absurd(*arrays)
    if absurd.any():
        raise PlyError(f"{path}: implausible values for a Gaussian splat: {what}; {int(absurd.sum())} of "
                       f"{len(absurd)} rows are implausible (is the file corrupt?)")  # fmt: skip
    return GaussianScene(*(torch.from_numpy(a) for a in arrays))
