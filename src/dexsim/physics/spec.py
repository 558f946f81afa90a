"""Procedural task scenes: one spec builds both the MuJoCo model (MJCF) and the Gaussian splat.

A scene is a room corner (floor, back wall), a table, rigid objects on it (boxes, cylinders,
spheres) and optionally a small chest with a drawer. Object ids in the splat follow the spec:
rigid objects are ids ``1..K`` in order and the drawer (its moving part) is id ``K + 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["BUILTIN_SCENES", "DrawerSpec", "ObjectSpec", "SceneSpec", "builtin_scene", "randomized_scene"]

Shape = Literal["box", "cylinder", "sphere", "mesh"]


@dataclass
class ObjectSpec:
    """A rigid object resting on the table.

    Args:
        size: box: full extents (x, y, z); cylinder: (radius, radius, height); sphere: (r, r, r);
            mesh: scale factors of the mesh file's coordinates.
        position: (x, y) of its centre on the table; it rests on the top.
        yaw: rotation about z, radians.
        mesh_path: a triangle mesh (.obj or .stl) centred on its bounding box, for ``shape="mesh"``;
            MuJoCo collides with its convex hull.
    """

    name: str
    shape: Shape
    size: tuple[float, float, float]
    position: tuple[float, float]
    color: tuple[float, float, float]
    yaw: float = 0.0
    mass: float = 0.1
    friction: float = 1.0
    mesh_path: str | None = None

    def __post_init__(self) -> None:
        if self.shape not in ("box", "cylinder", "sphere", "mesh"):
            raise ValueError(f"`shape` must be box, cylinder, sphere or mesh, got {self.shape!r}")
        if len(self.size) != 3 or min(self.size) <= 0 or max(self.size) > (10.0 if self.shape == "mesh" else 0.5):
            raise ValueError(f"`size` of {self.name!r} must be three positive numbers (<= 0.5 m), got {self.size}")
        if self.mass <= 0:
            raise ValueError(f"`mass` of {self.name!r} must be > 0, got {self.mass}")
        if self.shape == "mesh":
            lo, hi = self._mesh_bounds()
            centre = 0.5 * (lo + hi)
            if np.abs(centre).max() > 0.005:
                raise ValueError(f"mesh {self.mesh_path} must be centred on its bounding box; its centre is {centre}")
            if (hi - lo).max() > 0.5:
                raise ValueError(f"mesh object {self.name!r} is {hi - lo} m large after scaling; keep it under 0.5 m")

    def _mesh_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        import open3d as o3d

        if not self.mesh_path or not Path(self.mesh_path).is_file():
            raise FileNotFoundError(f"mesh object {self.name!r}: no such mesh file {self.mesh_path!r}")
        mesh = o3d.io.read_triangle_mesh(str(self.mesh_path))
        v = np.asarray(mesh.vertices) * np.asarray(self.size)
        if len(v) == 0 or len(mesh.triangles) == 0:
            raise ValueError(f"{self.mesh_path}: open3d read no triangles")
        return v.min(0), v.max(0)

    @property
    def height(self) -> float:
        if self.shape == "mesh":
            lo, hi = self._mesh_bounds()
            return float(hi[2] - lo[2])
        return self.size[2] if self.shape != "sphere" else 2 * self.size[0]


@dataclass
class DrawerSpec:
    """A chest on the table with one drawer that slides out towards -y (towards the viewer).

    Args:
        position: (x, y) of the chest's centre; size: chest (width, depth, height);
        travel: how far the drawer slides out (m); initial_open: its opening at the start (m).
    """

    position: tuple[float, float] = (0.3, 0.42)
    size: tuple[float, float, float] = (0.26, 0.22, 0.14)
    travel: float = 0.14
    initial_open: float = 0.0
    color: tuple[float, float, float] = (0.78, 0.74, 0.62)
    front_color: tuple[float, float, float] = (0.55, 0.35, 0.2)
    handle_color: tuple[float, float, float] = (0.2, 0.2, 0.22)
    name: str = "drawer"


@dataclass
class SceneSpec:
    """A whole task scene. The table top is the rectangle ``table_size`` centred at ``table_center``."""

    name: str
    objects: list[ObjectSpec] = field(default_factory=list)
    drawer: DrawerSpec | None = None
    table_center: tuple[float, float] = (0.0, 0.35)
    table_size: tuple[float, float] = (1.1, 0.6)
    table_height: float = 0.75
    table_color: tuple[float, float, float] = (0.62, 0.44, 0.27)
    floor_color: tuple[float, float, float] = (0.52, 0.5, 0.47)
    wall_color: tuple[float, float, float] = (0.82, 0.8, 0.75)
    light_dir: tuple[float, float, float] = (0.3, -0.5, 1.0)

    def __post_init__(self) -> None:
        names = [o.name for o in self.objects]
        if len(set(names)) != len(names):
            raise ValueError(f"object names must be unique, got {names}")
        if self.drawer is not None and self.drawer.name in names:
            raise ValueError(f"the drawer's name {self.drawer.name!r} is also an object's name")

    @property
    def object_names(self) -> list[str]:
        """Names of the splat's object ids 1.. (rigid objects, then the drawer)."""
        return [o.name for o in self.objects] + ([self.drawer.name] if self.drawer else [])

    def object_index(self, name: str) -> int:
        """The object id (1-based) of ``name``."""
        names = self.object_names
        if name not in names:
            raise ValueError(f"no object {name!r} in scene {self.name!r}; it has {names}")
        return names.index(name) + 1


def _tabletop_objects() -> list[ObjectSpec]:
    return [
        ObjectSpec("red_box", "box", (0.06, 0.06, 0.06), (-0.22, 0.28), (0.85, 0.15, 0.12), yaw=0.3),
        ObjectSpec("green_can", "cylinder", (0.032, 0.032, 0.11), (0.05, 0.36), (0.15, 0.65, 0.25), mass=0.15),
        ObjectSpec("blue_ball", "sphere", (0.035, 0.035, 0.035), (0.22, 0.22), (0.15, 0.3, 0.85), mass=0.06),
        ObjectSpec("yellow_block", "box", (0.1, 0.04, 0.04), (-0.05, 0.2), (0.92, 0.8, 0.15), yaw=-0.4, mass=0.08),
    ]


BUILTIN_SCENES = ("tabletop", "drawer")


def builtin_scene(name: str) -> SceneSpec:
    """A built-in scene by name: "tabletop" (four objects) or "drawer" (objects and a chest)."""
    if name == "tabletop":
        return SceneSpec("tabletop", _tabletop_objects())
    if name == "drawer":
        objs = [o for o in _tabletop_objects() if o.name in ("red_box", "green_can")]
        objs = [replace(objs[0], position=(-0.25, 0.3)), replace(objs[1], position=(-0.05, 0.38))]
        return SceneSpec("drawer", objs, DrawerSpec())
    raise ValueError(f"unknown built-in scene {name!r}; choose one of {BUILTIN_SCENES}")


def randomized_scene(name: str, seed: int) -> SceneSpec:
    """A variant of a built-in scene: object sizes, colours, masses, positions and yaw jittered
    from ``seed`` (objects kept apart and on the table)."""
    base = builtin_scene(name)
    rng = np.random.default_rng(seed)
    placed: list[tuple[float, float, float]] = []
    if base.drawer is not None:
        dx, dy = base.drawer.position
        placed.append((dx, dy, 0.2))
    objects = []
    for o in base.objects:
        scale = float(rng.uniform(0.85, 1.2))
        size = (o.size[0] * scale, o.size[1] * scale, o.size[2] * scale)
        radius = 0.5 * math.hypot(size[0], size[1]) + 0.03
        for _ in range(200):
            x = float(rng.uniform(-0.4, 0.25 if base.drawer else 0.4))
            y = float(rng.uniform(0.15, 0.5))
            if all(math.hypot(x - px, y - py) > radius + pr for px, py, pr in placed):
                break
        placed.append((x, y, radius))
        color = tuple(float(c) for c in np.clip(np.asarray(o.color) + rng.normal(0, 0.08, 3), 0.05, 0.95))
        objects.append(replace(o, size=size, position=(x, y), yaw=float(rng.uniform(-math.pi, math.pi)),
                               color=color, mass=o.mass * float(rng.uniform(0.7, 1.4))))  # type: ignore[arg-type]  # fmt: skip
    drawer = base.drawer
    if drawer is not None:  # half of the variants start with the drawer open
        drawer = replace(drawer, initial_open=float(rng.choice([0.0, rng.uniform(0.08, 0.12)])))
    return replace(base, name=f"{name}-{seed}", objects=objects, drawer=drawer,
                   table_color=tuple(float(c) for c in np.clip(np.asarray(base.table_color) + rng.normal(0, 0.05, 3),
                                                                 0.1, 0.9)))  # type: ignore[arg-type]  # fmt: skip
