"""Geometry (layer 0): rotations, SE(3), pinhole cameras, projection, rays and trajectories.

Conventions: metres and radians; world frame right-handed with z up; cameras OpenCV
(x right, y down, z forward); quaternions w-first; a camera pose is camera-to-world
``[tx, ty, tz, qw, qx, qy, qz]`` and a ``viewmat`` is world-to-camera 4x4.
"""

from .camera import (
    PinholeIntrinsics,
    in_frustum,
    look_at,
    pixel_rays,
    plucker_rays,
    project_points,
    unproject_depth,
)
from .rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quat,
    matrix_to_axis_angle,
    matrix_to_quat,
    matrix_to_rotation_6d,
    quat_canonical,
    quat_conjugate,
    quat_multiply,
    quat_normalize,
    quat_rotate,
    quat_slerp,
    quat_to_axis_angle,
    quat_to_matrix,
    random_quat,
    rotation_6d_to_matrix,
)
from .se3 import (
    make_se3,
    matrix_to_pose7,
    pose7_to_matrix,
    pose7_to_viewmat,
    se3_inverse,
    transform_points,
    viewmat_to_pose7,
)
from .trajectory import (
    interpolate_poses,
    orbit_viewmats,
    resample_indices,
    resample_keep_ends,
    resample_poses,
    resample_to_fps,
)

__all__ = [
    "PinholeIntrinsics",
    "axis_angle_to_matrix",
    "axis_angle_to_quat",
    "in_frustum",
    "interpolate_poses",
    "look_at",
    "make_se3",
    "matrix_to_axis_angle",
    "matrix_to_pose7",
    "matrix_to_quat",
    "matrix_to_rotation_6d",
    "orbit_viewmats",
    "pixel_rays",
    "plucker_rays",
    "pose7_to_matrix",
    "pose7_to_viewmat",
    "project_points",
    "quat_canonical",
    "quat_conjugate",
    "quat_multiply",
    "quat_normalize",
    "quat_rotate",
    "quat_slerp",
    "quat_to_axis_angle",
    "quat_to_matrix",
    "random_quat",
    "resample_indices",
    "resample_keep_ends",
    "resample_poses",
    "resample_to_fps",
    "rotation_6d_to_matrix",
    "se3_inverse",
    "transform_points",
    "unproject_depth",
    "viewmat_to_pose7",
]
