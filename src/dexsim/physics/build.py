"""Build a :class:`SceneSpec` into a MuJoCo model (MJCF) and into a Gaussian splat."""

from __future__ import annotations

import math
from xml.sax.saxutils import quoteattr

import numpy as np

from ..hands.skeleton import BONES
from ..scene.builders import Primitive, from_primitives
from ..scene.gaussians import GaussianScene
from ..world import DENSITY_SCALE, World
from .spec import SceneSpec

__all__ = [
    "HAND_BONES",
    "build_gaussians",
    "build_mjcf",
    "chest_boxes",
    "drawer_boxes",
    "scene_world",
    "spec_workspace",
    "table_boxes",
    "world_for_spec",
]  # fmt: skip

# capsules per hand: the phalanges (finger bones beyond the palm); the palm is a box
HAND_BONES = [(a, b) for a, b in BONES if a != 0]
FINGER_RADIUS = 0.0085
THUMB_RADIUS = 0.0095
# skin: softer and grippier than the objects, with rolling friction, so that a pinch holds without
# squeezing objects out
HAND_CONTACT = 'friction="2 0.02 0.002" condim="6" solref="0.005 1" solimp="0.9 0.95 0.001" contype="2" conaffinity="1"'
#: where hidden hands wait (far from everything, above the floor)
HAND_PARK_X = 50.0
Box = tuple[str, tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]


def _f(*v: float) -> str:
    return " ".join(f"{x:.6g}" for x in v)


def table_boxes(spec: SceneSpec) -> list[Box]:
    """(name, centre, full size, colour) of the table top and legs."""
    cx, cy = spec.table_center
    sx, sy = spec.table_size
    h = spec.table_height
    boxes: list[Box] = [("table_top", (cx, cy, h - 0.02), (sx, sy, 0.04), spec.table_color)]
    leg = tuple(c * 0.75 for c in spec.table_color)
    for i, (ux, uy) in enumerate(((-1, -1), (1, -1), (-1, 1), (1, 1))):
        boxes.append(
            (
                f"table_leg{i}",
                (cx + ux * (sx / 2 - 0.05), cy + uy * (sy / 2 - 0.05), (h - 0.04) / 2),
                (0.05, 0.05, h - 0.04),
                leg,
            )
        )  # type: ignore[arg-type]
    return boxes


def chest_boxes(spec: SceneSpec) -> list[Box]:
    """The chest's fixed walls (open at the front, -y)."""
    d = spec.drawer
    if d is None:
        return []
    (x, y), (w, dep, hh), t = d.position, d.size, 0.012
    z0 = spec.table_height
    return [
        ("chest_bottom", (x, y, z0 + t / 2), (w, dep, t), d.color),
        ("chest_top", (x, y, z0 + hh - t / 2), (w, dep, t), d.color),
        ("chest_left", (x - w / 2 + t / 2, y, z0 + hh / 2), (t, dep, hh), d.color),
        ("chest_right", (x + w / 2 - t / 2, y, z0 + hh / 2), (t, dep, hh), d.color),
        ("chest_back", (x, y + dep / 2 - t / 2, z0 + hh / 2), (w, t, hh), d.color),
    ]


def drawer_boxes(spec: SceneSpec) -> list[Box]:
    """The drawer's parts at its closed position (front plate flush with the chest's front), and
    its handle bar (the last box)."""
    d = spec.drawer
    if d is None:
        return []
    (x, y), (w, dep, hh), t = d.position, d.size, 0.012
    z0 = spec.table_height + t + 0.004
    iw, idep, ih = w - 2 * t - 0.008, dep - t - 0.01, hh - 2 * t - 0.012
    front_y = y - dep / 2 + t / 2
    cy = front_y + idep / 2
    return [
        ("drawer_front", (x, front_y, z0 + ih / 2), (w - 2 * t - 0.004, t, ih), d.front_color),
        ("drawer_bottom", (x, cy, z0 + t / 4), (iw, idep, t / 2), d.color),
        ("drawer_left", (x - iw / 2 + t / 4, cy, z0 + ih / 2 - 0.01), (t / 2, idep, ih - 0.02), d.color),
        ("drawer_right", (x + iw / 2 - t / 4, cy, z0 + ih / 2 - 0.01), (t / 2, idep, ih - 0.02), d.color),
        ("drawer_back", (x, front_y + idep, z0 + ih / 2 - 0.01), (iw, t / 2, ih - 0.02), d.color),
        ("drawer_handle", (x, front_y - t / 2 - 0.025, z0 + ih / 2), (0.12, 0.014, 0.014), d.handle_color),
        ("drawer_standoff0", (x - 0.05, front_y - t / 2 - 0.0125, z0 + ih / 2), (0.012, 0.025, 0.012), d.handle_color),
        ("drawer_standoff1", (x + 0.05, front_y - t / 2 - 0.0125, z0 + ih / 2), (0.012, 0.025, 0.012), d.handle_color),
    ]


def _box_geom(name: str, centre, size, color, extra: str = "") -> str:
    half = [s / 2 for s in size]
    return (
        f'<geom name={quoteattr(name)} type="box" pos="{_f(*centre)}" size="{_f(*half)}" '
        f'rgba="{_f(*color, 1)}" {extra}/>'
    )


def build_mjcf(spec: SceneSpec, timestep: float = 0.002) -> str:
    """The MJCF of ``spec``: static room and table, free rigid objects, the drawer on a slide joint,
    and two kinematic hands (mocap bodies: a palm box and 15 phalanx capsules each)."""
    parts = [
        f"<mujoco model={quoteattr(spec.name)}>",
        f'<option timestep="{timestep}" gravity="0 0 -9.81" cone="elliptic" impratio="10" integrator="implicitfast"/>',
        '<default><geom condim="4" friction="1 0.01 0.001" solref="0.004 1" solimp="0.95 0.99 0.001"/></default>',
        "<worldbody>",
        f'<light directional="true" dir="{_f(*(-c for c in spec.light_dir))}" diffuse="0.8 0.8 0.8"/>',
        f'<geom name="floor" type="plane" size="3 3 0.1" rgba="{_f(*spec.floor_color, 1)}"/>',
    ]
    parts += [_box_geom(n, c, s, col) for n, c, s, col in table_boxes(spec)]
    parts += [_box_geom(n, c, s, col) for n, c, s, col in chest_boxes(spec)]
    assets: list[str] = []
    for o in spec.objects:
        z = spec.table_height + o.height / 2 + 0.0005
        q = (math.cos(o.yaw / 2), 0, 0, math.sin(o.yaw / 2))
        if o.shape == "box":
            geom = f'type="box" size="{_f(*(s / 2 for s in o.size))}"'
        elif o.shape == "cylinder":
            geom = f'type="cylinder" size="{_f(o.size[0], o.size[2] / 2)}"'
        elif o.shape == "sphere":
            geom = f'type="sphere" size="{_f(o.size[0])}"'
        else:
            assets.append(
                f'<mesh name={quoteattr(o.name + "_mesh")} file={quoteattr(str(o.mesh_path))} scale="{_f(*o.size)}"/>'
            )
            geom = f'type="mesh" mesh={quoteattr(o.name + "_mesh")}'
        parts.append(
            f'<body name={quoteattr(o.name)} pos="{_f(o.position[0], o.position[1], z)}" quat="{_f(*q)}">'
            f'<freejoint/><geom name={quoteattr(o.name + "_geom")} {geom} mass="{o.mass:.6g}" '
            f'friction="{o.friction:.4g} 0.01 0.001" rgba="{_f(*o.color, 1)}"/></body>'
        )
    if spec.drawer is not None:
        d = spec.drawer
        boxes = drawer_boxes(spec)
        parts.append(
            f'<body name={quoteattr(d.name)} pos="0 0 0">'
            f'<joint name="drawer_slide" type="slide" axis="0 -1 0" range="0 {d.travel:.4g}" '
            f'damping="3" armature="0.05" limited="true"/>'
        )
        parts += [
            _box_geom(n, c, s, col, 'mass="0.05" solref="0.002 1" solmix="10"') for n, c, s, col in boxes
        ]  # stiff drawer: hooked fingers sink < 5 mm
        parts.append("</body>")
    welds = []
    for k, side in enumerate(("left", "right")):
        park = _f(HAND_PARK_X + 0.5 * k, 0.0, 1.0)
        # each hand part is a dynamic body (gravity compensated) welded to a kinematic mocap target:
        # contacts then see the part's real velocity, so friction can carry what the fingers hold
        parts.append(f'<body name="{side}_palm_target" mocap="true" pos="{park}"/>')
        parts.append(
            f'<body name="{side}_palm" pos="{park}" gravcomp="1"><freejoint/>'
            f'<geom name="{side}_palm_geom" type="box" size="0.045 0.012 0.04" mass="0.1" {HAND_CONTACT} '
            f'rgba="0.9 0.7 0.6 1"/></body>'
        )
        welds.append(f'<weld body1="{side}_palm" body2="{side}_palm_target" solref="0.004 1"/>')
        for a, b in HAND_BONES:
            r = THUMB_RADIUS if a >= 13 and a <= 15 else FINGER_RADIUS
            name = f"{side}_bone_{a}_{b}"
            parts.append(f'<body name="{name}_target" mocap="true" pos="{park}"/>')
            parts.append(
                f'<body name="{name}" pos="{park}" gravcomp="1"><freejoint/>'
                f'<geom name="{name}_geom" type="capsule" size="{r:.4g} 0.01" mass="0.02" '
                f'{HAND_CONTACT} rgba="0.9 0.7 0.6 1"/></body>'
            )
            welds.append(f'<weld body1="{name}" body2="{name}_target" solref="0.004 1"/>')
    parts += ["</worldbody>", "<equality>", *welds, "</equality>"]
    if assets:
        parts += ["<asset>", *assets, "</asset>"]
    parts.append("</mujoco>")
    return "\n".join(parts)


def _box_prim(name: str, centre, size, color, object_id: int = 0, density: float = 30000) -> Primitive:
    return Primitive(
        "box", tuple(size), (*centre, 1.0, 0.0, 0.0, 0.0), tuple(color), object_id=object_id, name=name, density=density
    )  # type: ignore[arg-type]


def build_gaussians(spec: SceneSpec, seed: int = 0, density_scale: float = 1.0) -> GaussianScene:
    """The splat of ``spec``: room and table (id 0), rigid objects (ids 1..K), the drawer (id K+1)."""
    cy = spec.table_center[1]
    wall_y = cy + spec.table_size[1] / 2 + 0.45
    s = density_scale
    prims = [
        Primitive("plane", (4.0, 4.0, 1.0), (0, cy, 0, 1, 0, 0, 0), spec.floor_color, density=3000 * s),
        Primitive(
            "plane",
            (4.0, 2.6, 1.0),
            (0, wall_y, 1.3, math.sqrt(0.5), math.sqrt(0.5), 0, 0),
            spec.wall_color,
            density=2500 * s,
        ),
    ]
    prims += [_box_prim(n, c, sz, col, density=30000 * s) for n, c, sz, col in table_boxes(spec)]
    prims += [_box_prim(n, c, sz, col, density=40000 * s) for n, c, sz, col in chest_boxes(spec)]
    for k, o in enumerate(spec.objects, start=1):
        z = spec.table_height + o.height / 2
        q = (math.cos(o.yaw / 2), 0.0, 0.0, math.sin(o.yaw / 2))
        prims.append(
            Primitive(
                o.shape,
                o.size,
                (o.position[0], o.position[1], z, *q),
                o.color,
                object_id=k,
                name=o.name,
                density=150000 * s,
                mesh_path=o.mesh_path,
            )
        )
    if spec.drawer is not None:
        k = len(spec.objects) + 1
        prims += [
            _box_prim(spec.drawer.name if i == 0 else n, c, sz, col, object_id=k, density=60000 * s)
            for i, (n, c, sz, col) in enumerate(drawer_boxes(spec))
        ]
    scene = from_primitives(prims, seed=seed, light_dir=spec.light_dir)
    scene.object_names = spec.object_names
    return scene


def world_for_spec(spec: SceneSpec, seed: int = 0, density_scale: float | None = None, width: int = 128,
                   height: int = 128, fov_y: float = 60.0, splat: GaussianScene | None = None) -> World:  # fmt: skip
    """The :class:`~dexsim.world.World` of a spec: its splat (``splat`` when already built with this
    spec, seed and density), the fixed part (room, table, chest: id 0) hiding the hands, the drawer
    at its initial opening, the working box above the table and the table's centre."""
    import torch

    density_scale = DENSITY_SCALE if density_scale is None else density_scale
    if splat is None:
        splat = build_gaussians(spec, seed=seed, density_scale=density_scale)
    k = len(spec.objects) + int(spec.drawer is not None)
    rest = torch.eye(4).repeat(k, 1, 1)
    if spec.drawer is not None:  # the splat holds the drawer closed
        rest[-1, 1, 3] = -spec.drawer.initial_open
    cx, cy = spec.table_center
    return World(splat, spec.name, splat.object_ids == 0, rest if k else None, spec_workspace(spec),
                 (cx, cy, spec.table_height), None, spec, width, height, fov_y)  # fmt: skip


def spec_workspace(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) corners of the box the wrists may move in: the table top, 30 cm more towards the
    viewer, up to 50 cm above it."""
    cx, cy = spec.table_center
    th = spec.table_height
    sx, sy = spec.table_size
    return np.array([cx - sx / 2, cy - sy / 2 - 0.3, th]), np.array([cx + sx / 2, cy + sy / 2, th + 0.5])


_BUILTIN: dict[tuple[str, float], World] = {}


def scene_world(scene: str, width: int = 128, height: int = 128, fov_y: float = 60.0,
                density_scale: float | None = None) -> World:  # fmt: skip
    """A built-in scene by name (``tabletop``, ``drawer``; its physics spec attached; built once per
    process) or a captured ``.ply`` path (no physics)."""
    from .spec import BUILTIN_SCENES, builtin_scene

    if scene not in BUILTIN_SCENES:
        return World.from_ply(scene, width, height, fov_y)
    key = (scene, DENSITY_SCALE if density_scale is None else density_scale)
    if key not in _BUILTIN:
        _BUILTIN[key] = world_for_spec(builtin_scene(scene), density_scale=key[1])
    return _BUILTIN[key].at(width, height, fov_y)
