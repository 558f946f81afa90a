"""Scene builders: point clouds, triangle meshes and primitive shapes -> Gaussians (via open3d)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..geometry.rotations import matrix_to_quat
from .gaussians import GaussianScene

__all__ = [
    "Primitive",
    "from_mesh",
    "from_mesh_file",
    "from_point_cloud",
    "from_primitives",
    "knn_mean_distance",
    "primitive_mesh",
    "sample_surface",
]


def knn_mean_distance(points: np.ndarray, k: int = 3) -> np.ndarray:
    """Mean Euclidean distance (N,) from each point to its ``k`` nearest other points (open3d NNS)."""
    import open3d as o3d

    pts = np.ascontiguousarray(points, dtype=np.float32)
    if len(pts) <= k:
        raise ValueError(f"need more than k={k} points for nearest neighbours, got {len(pts)}")
    nns = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(pts))
    nns.knn_index()
    _, sq = nns.knn_search(o3d.core.Tensor(pts), k + 1)  # squared distances, self first
    d = np.sqrt(np.maximum(sq.numpy()[:, 1:].astype(np.float64), 0.0))
    return d.mean(1).astype(np.float32)


def from_point_cloud(
    points: np.ndarray | torch.Tensor,
    colors: np.ndarray | torch.Tensor,
    opacity: float = 0.5,
    max_scale: float | None = None,
    min_scale: float = 1e-7,
) -> GaussianScene:
    """Isotropic Gaussians at points (the usual 3DGS initialisation).

    Args:
        points: (N, 3) positions; rows with NaN/Inf are dropped (with their colours).
        colors: (N, 3) RGB, uint8 in [0, 255] or float in [0, 1].
        opacity: opacity of every Gaussian, in (0, 1).
        max_scale: cap on the scale (so that sparse outliers do not become screen-filling blobs).
        min_scale: floor on the scale (duplicated points have zero neighbour distance).
    Returns:
        scale = mean distance to the 3 nearest neighbours, clamped to ``[min_scale, max_scale]``.
    """
    pts = np.asarray(points, dtype=np.float32)
    cols = np.asarray(colors)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"`points` must have shape (N, 3), got {pts.shape}")
    if cols.shape != pts.shape:
        raise ValueError(f"`colors` must have shape {pts.shape}, got {cols.shape}")
    if not 0 < opacity < 1:
        raise ValueError(f"`opacity` must lie in (0, 1), got {opacity!r}")
    cols = cols.astype(np.float32) / 255.0 if cols.dtype == np.uint8 else cols.astype(np.float32)
    good = np.isfinite(pts).all(1) & np.isfinite(cols).all(1)
    pts, cols = pts[good], np.clip(cols[good], 0.0, 1.0)
    scale = knn_mean_distance(pts, 3)
    scale = np.clip(scale, min_scale, max_scale if max_scale is not None else np.inf)
    n = len(pts)
    quats = np.zeros((n, 4), dtype=np.float32)
    quats[:, 0] = 1.0
    return GaussianScene.from_activated(
        torch.from_numpy(pts), torch.from_numpy(quats), torch.from_numpy(np.repeat(scale[:, None], 3, 1)),
        torch.full((n,), float(opacity)), colors=torch.from_numpy(cols),
    )  # fmt: skip


def sample_surface(
    vertices: np.ndarray, triangles: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Area-weighted uniform samples on a triangle mesh.

    Returns ``(points (n, 3), normals (n, 3), triangle index (n,), barycentric (n, 3))``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    tri = np.asarray(triangles, dtype=np.int64)
    if tri.ndim != 2 or tri.shape[1] != 3 or len(tri) == 0:
        raise ValueError(f"`triangles` must have shape (T, 3) with T > 0, got {tri.shape}")
    a, b, c = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]
    cross = np.cross(b - a, c - a)
    area = 0.5 * np.linalg.norm(cross, axis=1)
    if area.sum() <= 0:
        raise ValueError("the mesh has zero surface area")
    face = rng.choice(len(tri), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    bary = np.stack((1 - s, s * (1 - r2), s * r2), axis=1)
    pts = bary[:, :1] * a[face] + bary[:, 1:2] * b[face] + bary[:, 2:] * c[face]
    nrm = cross[face] / np.maximum(np.linalg.norm(cross[face], axis=1, keepdims=True), 1e-30)
    return pts, nrm, face, bary


def _frames_from_normals(normals: np.ndarray) -> np.ndarray:
    """Rotation matrices (n, 3, 3) whose third column is the normal."""
    nrm = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    helper = np.where(np.abs(nrm[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    t1 = np.cross(helper, nrm)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(nrm, t1)
    return np.stack((t1, t2, nrm), axis=2)


def from_mesh(
    mesh: object,
    num_gaussians: int,
    seed: int = 0,
    color: tuple[float, float, float] | None = None,
    opacity: float = 0.95,
    thickness: float = 0.1,
    object_id: int = 0,
    light_dir: tuple[float, float, float] | None = None,
    ambient: float = 0.55,
) -> GaussianScene:
    """Flat Gaussians on the surface of an ``open3d.geometry.TriangleMesh``, oriented by normals.

    Colours come from ``color`` if given, else from the mesh's vertex colours (interpolated),
    else mid grey. Each Gaussian's in-plane scale is ~0.9x the mean sample spacing, and its
    scale along the normal is ``thickness`` times that. With ``light_dir`` (towards the light),
    colours are baked with Lambertian shading ``ambient + (1 - ambient) max(0, n . l)``.
    """
    v = np.asarray(mesh.vertices)  # type: ignore[attr-defined]
    tri = np.asarray(mesh.triangles)  # type: ignore[attr-defined]
    if num_gaussians <= 0:
        raise ValueError(f"`num_gaussians` must be > 0, got {num_gaussians!r}")
    rng = np.random.default_rng(seed)
    pts, nrm, face, bary = sample_surface(v, tri, num_gaussians, rng)
    if color is not None:
        cols = np.broadcast_to(np.asarray(color, dtype=np.float64), pts.shape)
    elif mesh.has_vertex_colors():  # type: ignore[attr-defined]
        vc = np.asarray(mesh.vertex_colors)  # type: ignore[attr-defined]
        cols = (bary[:, :, None] * vc[tri[face]]).sum(1)
    else:
        cols = np.full(pts.shape, 0.5)
    if light_dir is not None:
        light = np.asarray(light_dir, dtype=np.float64)
        light = light / np.linalg.norm(light)
        cols = cols * (ambient + (1 - ambient) * np.clip(nrm @ light, 0.0, 1.0))[:, None]
    if light_dir is not None:
        light = np.asarray(light_dir, dtype=np.float64)
        light = light / np.linalg.norm(light)
        cols = cols * (ambient + (1 - ambient) * np.clip(nrm @ light, 0.0, 1.0))[:, None]
    area = 0.5 * np.linalg.norm(np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]]), axis=1).sum()
    spacing = math.sqrt(area / num_gaussians)
    s = 0.9 * spacing
    scales = np.tile([s, s, max(s * thickness, 1e-6)], (num_gaussians, 1))
    quats = matrix_to_quat(torch.from_numpy(_frames_from_normals(nrm))).float()
    return GaussianScene.from_activated(
        torch.from_numpy(pts.astype(np.float32)), quats, torch.from_numpy(scales.astype(np.float32)),
        torch.full((num_gaussians,), float(opacity)), colors=torch.from_numpy(np.clip(cols, 0, 1).astype(np.float32)),
        object_ids=torch.full((num_gaussians,), int(object_id), dtype=torch.long),
    )  # fmt: skip


def from_mesh_file(path: str | os.PathLike[str], num_gaussians: int, **kwargs: object) -> GaussianScene:
    """Read a mesh file with open3d (``.obj``, ``.ply``, ``.stl``, ``.glb`` ...) and call :func:`from_mesh`."""
    import open3d as o3d

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such mesh file: {p}")
    mesh = o3d.io.read_triangle_mesh(str(p))
    if len(mesh.triangles) == 0:
        raise ValueError(f"{p}: open3d read no triangles (not a mesh, or an unsupported format)")
    return from_mesh(mesh, num_gaussians, **kwargs)  # type: ignore[arg-type]


PrimitiveKind = Literal["box", "sphere", "cylinder", "plane", "mesh"]


@dataclass
class Primitive:
    """A coloured shape placed in the world.

    Args:
        kind: "box" (``size`` = full extents x, y, z), "sphere" (``size[0]`` = radius), "cylinder"
            (``size[0]`` = radius, ``size[2]`` = height, axis z), "plane" (``size[:2]`` extents, normal z),
            or "mesh" (``mesh_path``, scaled by ``size``).
        pose: (7,) ``[tx, ty, tz, qw, qx, qy, qz]`` object-to-world placement (centre of the shape).
        color: RGB in [0, 1].
        object_id: 0 = static background, ``k >= 1`` = movable object ``k``.
        density: Gaussians per square metre of surface.
    """

    kind: PrimitiveKind
    size: tuple[float, float, float]
    pose: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    color: tuple[float, float, float] = (0.6, 0.6, 0.6)
    object_id: int = 0
    name: str = ""
    density: float = 40000.0
    mesh_path: str | None = None
    opacity: float = 0.95
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("box", "sphere", "cylinder", "plane", "mesh"):
            raise ValueError(f"`kind` must be box, sphere, cylinder, plane or mesh, got {self.kind!r}")
        if len(self.size) != 3 or any(not math.isfinite(s) or s <= 0 for s in self.size):
            raise ValueError(f"`size` must be three positive numbers, got {self.size!r}")
        if len(self.pose) != 7 or not all(math.isfinite(p) for p in self.pose):
            raise ValueError(f"`pose` must be 7 finite numbers [t, q], got {self.pose!r}")
        if self.kind == "mesh" and not self.mesh_path:
            raise ValueError("a 'mesh' primitive needs `mesh_path`")


def primitive_mesh(prim: Primitive) -> object:
    """The open3d triangle mesh of ``prim``, placed in the world."""
    import open3d as o3d

    sx, sy, sz = prim.size
    if prim.kind == "box":
        mesh = o3d.geometry.TriangleMesh.create_box(sx, sy, sz)
        mesh.translate((-sx / 2, -sy / 2, -sz / 2))
    elif prim.kind == "sphere":
        mesh = o3d.geometry.TriangleMesh.create_sphere(sx, resolution=24)
    elif prim.kind == "cylinder":
        mesh = o3d.geometry.TriangleMesh.create_cylinder(sx, sz, resolution=32, split=1)
    elif prim.kind == "plane":
        mesh = o3d.geometry.TriangleMesh()
        mesh.vertices = o3d.utility.Vector3dVector(
            np.array([[-sx / 2, -sy / 2, 0], [sx / 2, -sy / 2, 0], [sx / 2, sy / 2, 0], [-sx / 2, sy / 2, 0]])
        )
        mesh.triangles = o3d.utility.Vector3iVector(np.array([[0, 1, 2], [0, 2, 3]]))
    else:
        mesh = o3d.io.read_triangle_mesh(str(prim.mesh_path))
        if len(mesh.triangles) == 0:
            raise ValueError(f"{prim.mesh_path}: open3d read no triangles")
        mesh.scale(1.0, center=(0, 0, 0))
        mesh.vertices = o3d.utility.Vector3dVector(np.asarray(mesh.vertices) * np.asarray(prim.size))
    from ..geometry.se3 import pose7_to_matrix

    mesh.transform(pose7_to_matrix(torch.tensor(prim.pose, dtype=torch.float64)).numpy())
    return mesh


def from_primitives(
    primitives: list[Primitive],
    seed: int = 0,
    light_dir: tuple[float, float, float] | None = (0.3, -0.5, 1.0),
) -> GaussianScene:
    """One scene from several primitives, each with its object id; object names from ``name``.

    The number of Gaussians per primitive is its surface area times ``density``; colours are
    baked with Lambertian shading from ``light_dir`` (None: flat colours).
    """
    if not primitives:
        raise ValueError("`primitives` must not be empty")
    parts = []
    names: dict[int, str] = {}
    for i, prim in enumerate(primitives):
        mesh = primitive_mesh(prim)
        area = float(mesh.get_surface_area())  # type: ignore[attr-defined]
        n = max(16, int(round(area * prim.density)))
        parts.append(from_mesh(mesh, n, seed=seed * 100_003 + i, color=prim.color, opacity=prim.opacity,
                               object_id=prim.object_id, light_dir=light_dir))  # fmt: skip
        if prim.object_id > 0:
            names[prim.object_id] = prim.name or f"object_{prim.object_id}"
    scene = GaussianScene.concat(parts)
    max_id = max(names) if names else 0
    scene.object_names = [names.get(k, f"object_{k}") for k in range(1, max_id + 1)]
    return scene
