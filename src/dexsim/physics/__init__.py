"""Physics (layer 2): task scene specs, MuJoCo models with kinematic hands, simulation."""

from .build import build_gaussians, build_mjcf, scene_world, world_for_spec
from .sim import SimResult, Simulator
from .spec import BUILTIN_SCENES, DrawerSpec, ObjectSpec, SceneSpec, builtin_scene, randomized_scene

__all__ = [
    "BUILTIN_SCENES",
    "DrawerSpec",
    "ObjectSpec",
    "SceneSpec",
    "SimResult",
    "Simulator",
    "build_gaussians",
    "build_mjcf",
    "builtin_scene",
    "randomized_scene",
    "scene_world",
    "world_for_spec",
]
