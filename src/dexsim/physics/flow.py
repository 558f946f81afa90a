"""Ground-truth backward flow of a simulated clip: where each pixel of the interaction video was in
the static video of the same camera.

A pixel of frame t that shows object k (its id in the clip's object masks) lies on that object moved
by its rigid motion since rest, ``M_t = (R_t, c_t)``; the same surface point at rest projects, in
the same camera, to ``p0``, and the backward flow is ``p0 - p`` (what :func:`dexsim.worldmodel.compact.warp`
reads: output pixel p takes the static frame at ``p + flow(p)``). The depth along the pixel's ray is
that of the object's centre (objects are a few centimetres across, seen from about half a metre: the
flow's error from this is a few percent of its length). Room, table and chest do not move (flow 0);
hand pixels have no rest counterpart and are marked invalid.
"""

from __future__ import annotations

import numpy as np
import torch

from ..geometry.rotations import quat_to_matrix
from .build import drawer_boxes
from .spec import SceneSpec

__all__ = ["MIN_REST_DEPTH", "backward_flow", "clip_backward_flow", "object_motions"]

#: a moved pixel whose rest point lies nearer the camera plane than this (metres) or behind it, or projects more than
#: a frame beyond the frame's border, has no backward flow: marked invalid rather than given thousands of pixels
MIN_REST_DEPTH = 0.01


def object_motions(object_poses: np.ndarray, drawer: np.ndarray | None, n_objects: int,
                   has_drawer: bool) -> torch.Tensor:  # fmt: skip
    """Per-frame rigid motions (T, K, 4, 4) float64 of the splat's movable parts from their built placement:
    the rigid objects from their frame-0 pose, the drawer (last; the splat holds it closed) by its absolute
    opening along -y. ``object_poses`` (T, K, 7) ``[x, y, z, qw, qx, qy, qz]``, ``drawer`` (T,) metres."""
    p = torch.from_numpy(np.asarray(object_poses, np.float64))
    n = p.shape[0]
    out = torch.eye(4, dtype=torch.float64).repeat(n, n_objects + int(has_drawer), 1, 1)
    if n_objects:
        R = quat_to_matrix(p[..., 3:])
        R0, t0 = R[0], p[0, :, :3]
        Rm = R @ R0.transpose(-1, -2)
        out[:, :n_objects, :3, :3] = Rm
        out[:, :n_objects, :3, 3] = p[..., :3] - (Rm @ t0[..., None])[..., 0]
    if has_drawer:
        out[:, -1, 1, 3] = -torch.from_numpy(np.asarray(drawer, np.float64))
    return out


def _centres(spec: SceneSpec, object_poses: np.ndarray, drawer: np.ndarray | None) -> np.ndarray:
    """World centres (T, K', 3) of what each object id shows: a rigid object's centre, the drawer's front."""
    cents = [np.asarray(object_poses, np.float64)[..., :3]]
    if spec.drawer is not None:
        front = next(
            np.asarray(centre, np.float64) for name, centre, _, _ in drawer_boxes(spec) if name == "drawer_front"
        )
        opening = np.asarray(drawer, np.float64)
        c = np.tile(front, (len(opening), 1))
        c[:, 1] -= opening
        cents.append(c[:, None])
    return np.concatenate(cents, axis=1)


def backward_flow(spec: SceneSpec, object_poses: np.ndarray, drawer: np.ndarray | None, masks: np.ndarray,
                  cameras: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Backward flow of a clip and where it is known.

    Args:
        spec: the clip's scene spec (object order and the drawer's geometry).
        object_poses: (T, K, 7) simulated object poses ``[x, y, z, qw, qx, qy, qz]``, frame 0 at rest.
        drawer: (T,) drawer opening in metres (ignored without a drawer).
        masks: (T, H, W) int8 object ids seen at each pixel (``>= 1`` objects, -1 nothing, -2/-3 hands).
        cameras: (T, 7) camera-to-world poses ``[t, q]``; K: (3, 3) intrinsics at the masks' size.

    Returns:
        ``flow`` (T, H, W, 2) float32 in pixels (x, y), ``valid`` (T, H, W) bool (False on hands, where the
        rest point is behind the camera (:data:`MIN_REST_DEPTH`) and where it lies over a frame beyond the border).
    """
    masks = np.asarray(masks)
    t_count, h, w = masks.shape
    n_obj = len(spec.objects)
    n_drawer = int(spec.drawer is not None)
    if np.asarray(object_poses).shape[:2] != (t_count, n_obj):
        raise ValueError(f"`object_poses` must be ({t_count}, {n_obj}, 7), got {np.asarray(object_poses).shape}")
    if np.asarray(cameras).shape != (t_count, 7):
        raise ValueError(f"`cameras` must be ({t_count}, 7), got {np.asarray(cameras).shape}")
    motions = object_motions(object_poses, drawer, n_obj, bool(n_drawer)).numpy()
    rel = motions @ np.linalg.inv(motions[:1])  # from the rest frame (the drawer may start open) to frame t
    rot, trans = rel[..., :3, :3], rel[..., :3, 3]
    centres = _centres(spec, object_poses, drawer)
    from ..geometry.se3 import pose7_to_matrix

    c2w = pose7_to_matrix(torch.from_numpy(np.asarray(cameras, np.float64))).numpy()  # (T, 4, 4)
    K = np.asarray(K, np.float64)
    k_inv = np.linalg.inv(K)
    flow = np.zeros((t_count, h, w, 2), np.float32)
    valid = masks > -2
    ys, xs = np.mgrid[0:h, 0:w]
    for t in range(t_count):
        r_c, c_pos = c2w[t, :3, :3], c2w[t, :3, 3]
        for obj in np.unique(masks[t]):
            if obj < 1:
                continue
            i = int(obj) - 1
            if np.allclose(rot[t, i], np.eye(3)) and np.allclose(trans[t, i], 0.0):
                continue
            sel = masks[t] == obj
            pix = np.stack([xs[sel] + 0.5, ys[sel] + 0.5, np.ones(sel.sum())], axis=-1)
            depth = (r_c.T @ (centres[t, i] - c_pos))[2]
            if depth <= 1e-3:
                continue
            x_t = (r_c @ (depth * (pix @ k_inv.T)).T).T + c_pos  # points on the moved object
            x_0 = (x_t - trans[t, i]) @ rot[t, i]  # the same points at rest: R^T (x - c)
            cam = (x_0 - c_pos) @ r_c
            proj = cam @ K.T
            p0 = proj[:, :2] / np.maximum(proj[:, 2:3], 1e-6)
            flow[t, sel] = (p0 - pix[:, :2]).astype(np.float32)
            # no flow where the rest point is not in front of the camera or projects more than a frame beyond its border
            behind = cam[:, 2] < MIN_REST_DEPTH
            behind |= (p0[:, 0] < -w) | (p0[:, 0] > 2 * w) | (p0[:, 1] < -h) | (p0[:, 1] > 2 * h)
            if behind.any():
                rows, cols = np.nonzero(sel)
                flow[t, rows[behind], cols[behind]] = 0.0
                valid[t, rows[behind], cols[behind]] = False
    return flow, valid


def clip_backward_flow(meta: dict | None, physics: dict | None, masks: np.ndarray | None,
                       cameras: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """:func:`backward_flow` of a clip as ``dexsim datagen`` writes it (its ``meta/*.json`` dict, ``meta/*.npz``
    arrays, ``masks`` and the trajectory's camera path); None for clips without these (DWM's own data)."""
    if meta is None or physics is None or masks is None or cameras is None or "scene_seed" not in meta:
        return None
    from ..geometry.camera import PinholeIntrinsics
    from .spec import randomized_scene

    base, _, suffix = str(meta["scene"]).rpartition("-")
    spec = randomized_scene(base if suffix.isdigit() else str(meta["scene"]), int(meta["scene_seed"]))
    h, w = np.asarray(masks).shape[1:]
    K = PinholeIntrinsics.from_fov(float(meta.get("fov_y", 60.0)), w, h).K(torch.float64).numpy()
    return backward_flow(spec, physics["object_poses"], physics.get("drawer"), masks, cameras, K)
