"""Static scenes (layer 1): Gaussian splats, their files, builders and renderers."""

from .builders import Primitive, from_mesh, from_mesh_file, from_point_cloud, from_primitives
from .gaussians import SH_C0, GaussianScene, num_sh_bases, rgb_to_sh0, sh0_to_rgb
from .ply import PlyError, read_ply, read_scene, read_splat, write_ply
from .render import RenderOutput, project_gaussians, rasterize, render

__all__ = [
    "SH_C0",
    "GaussianScene",
    "PlyError",
    "Primitive",
    "RenderOutput",
    "from_mesh",
    "from_mesh_file",
    "from_point_cloud",
    "from_primitives",
    "num_sh_bases",
    "project_gaussians",
    "rasterize",
    "read_ply",
    "read_scene",
    "read_splat",
    "render",
    "rgb_to_sh0",
    "sh0_to_rgb",
    "write_ply",
]
