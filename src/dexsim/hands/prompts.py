"""Visual action prompts: hand videos pixel-aligned with a scene camera.

Kinds:
    ``mesh``      shaded hand meshes on black, left hand green and right hand red: the DWM
                  convention (base colours measured on DWM's released hand videos).
    ``skeleton``  coloured bones per finger and joint dots (LOME / "visual action prompts").
    ``depth``     the hands' camera depth, near = bright, over a fixed metric range (PAM).
    ``mask``      flat left green / right red silhouettes.

Every kind is occluded by an optional scene depth map (the static render's expected depth) and
drops geometry behind the camera instead of wrapping it around.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .._validate import tensor_arg
from .skeleton import BONES, FINGER_CHAINS

__all__ = [
    "DWM_LEFT_RGB",
    "DWM_RIGHT_RGB",
    "PROMPT_KINDS",
    "HandPrompt",
    "depth_picture",
    "mask_picture",
    "render_prompt",
    "vertex_normals",
]

PromptKind = Literal["mesh", "skeleton", "depth", "mask"]
PROMPT_KINDS: tuple[str, ...] = ("mesh", "skeleton", "depth", "mask")
#: fully lit mesh colours of DWM's hand renders (90th percentile of their hue-selected pixels)
DWM_LEFT_RGB = (160, 253, 161)
DWM_RIGHT_RGB = (253, 128, 130)
MASK_RGB = ((0, 255, 0), (255, 0, 0))
FINGER_RGB = {
    "thumb": (255, 96, 64), "index": (255, 220, 0), "middle": (64, 224, 96),
    "ring": (32, 160, 255), "pinky": (200, 96, 255),
}  # fmt: skip
NEAR = 0.01


@dataclass
class HandPrompt:
    """A rendered prompt: ``rgb`` (T, H, W, 3) uint8, hand ``depth`` (T, H, W) float32 metres (0 =
    no hand), per-hand visible ``mask`` (T, 2, H, W) bool (left, right)."""

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray


def mask_picture(mask: np.ndarray) -> np.ndarray:
    """The ``mask`` prompt (T, H, W, 3) uint8 of per-hand masks (T, 2, H, W): left green, right red."""
    rgb = np.zeros((*mask.shape[:1], *mask.shape[2:], 3), np.uint8)
    for h in range(2):
        rgb[mask[:, h]] = MASK_RGB[h]
    return rgb


def depth_picture(depth: np.ndarray, depth_range: tuple[float, float] = (0.1, 1.5)) -> np.ndarray:
    """The ``depth`` prompt (T, H, W, 3) uint8 of hand depth (T, H, W) in metres (0 = no hand):
    ``depth_range`` mapped to 255..1, near = bright."""
    near, far = depth_range
    hit = depth > 0
    g = np.clip((far - depth) / (far - near), 0.0, 1.0) * 254 + 1
    rgb = np.zeros((*depth.shape, 3), np.uint8)
    rgb[hit] = g[hit, None].astype(np.uint8)
    return rgb


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (..., V, 3) of triangle meshes (..., V, 3) / (F, 3). CPU float64 tensors
    without gradients take a numba kernel (the same sums; index_add alone cost 0.7 ms per hand and chunk)."""
    lo, hi, nv = (int(faces.min()), int(faces.max()), vertices.shape[-2]) if faces.numel() else (0, -1, 0)
    if lo < 0 or hi >= nv:
        raise ValueError(f"`faces` must index vertices 0..{nv - 1}, got indices {lo}..{hi}")
    fast = vertices.device.type == "cpu" and vertices.dtype == torch.float64 and vertices.shape[-2] > 0
    if fast and not vertices.requires_grad:
        from . import _raster_kernels as kern

        flat = np.ascontiguousarray(vertices.detach().reshape(-1, *vertices.shape[-2:]).numpy())
        out = np.empty_like(flat)
        kern.vertex_normals(flat, np.ascontiguousarray(faces.numpy(), np.int64), out)
        return torch.from_numpy(out).reshape(vertices.shape)
    v0, v1, v2 = (vertices[..., faces[:, i], :] for i in range(3))
    fn = torch.cross(v1 - v0, v2 - v0, dim=-1)
    n = torch.zeros_like(vertices)
    for i in range(3):
        n = n.index_add(-2, faces[:, i], fn)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _to_camera(points: torch.Tensor, viewmats: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(T, P, 3) world points -> (T, P, 3) pixel x, pixel y, camera z."""
    cam = points @ viewmats[:, :3, :3].transpose(-1, -2) + viewmats[:, None, :3, 3]
    z = cam[..., 2]
    safe = torch.where(z.abs() < 1e-9, torch.full_like(z, 1e-9), z)
    u = K[:, None, 0, 0] * cam[..., 0] / safe + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * cam[..., 1] / safe + K[:, None, 1, 2]
    return torch.stack((u, v, z), dim=-1)


def _skeleton_segments() -> tuple[np.ndarray, np.ndarray]:
    """Bones then joint dots for both hands: indices into a (2 * 21) point array, and colours."""
    finger_of = {}
    for name, chain in FINGER_CHAINS.items():
        for j in chain[1:]:
            finger_of[j] = name
    segs, cols = [], []
    for hand in range(2):
        off = 21 * hand
        for a, b in BONES:
            segs.append((off + a, off + b))
            cols.append(FINGER_RGB[finger_of[b]])
    for hand in range(2):
        off = 21 * hand
        for j in range(21):
            segs.append((off + j, off + j))
            cols.append(MASK_RGB[hand] if j == 0 else (255, 255, 255))
    return np.asarray(segs, np.int32), np.asarray(cols, np.uint8)


def render_prompt(
    kind: PromptKind,
    viewmats: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    joints: torch.Tensor,
    visible: torch.Tensor,
    vertices: torch.Tensor | None = None,
    faces: tuple[torch.Tensor, torch.Tensor] | None = None,
    joint_valid: torch.Tensor | None = None,
    scene_depth: torch.Tensor | np.ndarray | None = None,
    depth_range: tuple[float, float] = (0.1, 1.5),
    occlusion_tolerance: float = 0.01,
    mesh_colors: tuple[tuple[int, int, int], tuple[int, int, int]] = (DWM_LEFT_RGB, DWM_RIGHT_RGB),
) -> HandPrompt:
    """Render a visual action prompt for T frames.

    Args:
        kind: "mesh", "skeleton", "depth" or "mask".
        viewmats: (T, 4, 4) world-to-camera (OpenCV); K: (3, 3) or (T, 3, 3).
        joints: (T, 2, 21, 3) world joints (left, right); visible: (T, 2) bool.
        vertices: (T, 2, V, 3) posed hand meshes (needed by mesh/depth/mask); faces: (left, right) (F, 3).
        joint_valid: (T, 2, 21) bool; bones touching an invalid joint are not drawn.
        scene_depth: (T, H, W) scene z-depth (0 = empty); hand pixels behind it are hidden.
        depth_range: metres mapped to 255..1 in the ``depth`` kind's picture.
        mesh_colors: fully lit (left, right) colours of the ``mesh`` kind (default: DWM's); the
            physics ground truth passes skin tones.
    """
    from . import _raster_kernels as kern

    if kind not in PROMPT_KINDS:
        raise ValueError(f"`kind` must be one of {PROMPT_KINDS}, got {kind!r}")
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"`{name}` must be a positive int, got {v!r}")
    viewmats = tensor_arg("viewmats", viewmats, (4, 4), dtype=torch.float64)
    n = viewmats.shape[0]
    K = tensor_arg("K", K, (3, 3), dtype=torch.float64)
    K = K.expand(n, 3, 3) if K.ndim == 2 else K
    joints = tensor_arg("joints", joints, (2, 21, 3), dtype=torch.float64)
    visible = torch.as_tensor(visible, dtype=torch.bool)
    if joints.shape[0] != n or visible.shape != (n, 2) or K.shape[0] != n:
        raise ValueError(f"frames disagree: viewmats {n}, K {tuple(K.shape)}, joints {tuple(joints.shape)}, "
                         f"visible {tuple(visible.shape)}")  # fmt: skip
    if scene_depth is None:
        sd = np.zeros((n, height, width), np.float32)
    else:
        sd = np.asarray(torch.as_tensor(scene_depth).detach().cpu().numpy(), dtype=np.float32)
        if sd.shape != (n, height, width):
            raise ValueError(f"`scene_depth` must have shape {(n, height, width)}, got {sd.shape}")
    rgb = np.zeros((n, height, width, 3), np.uint8)
    if kind == "skeleton":
        uvz = _to_camera(joints.reshape(n, 42, 3), viewmats, K)
        hide = ~visible[:, :, None].expand(n, 2, 21).reshape(n, 42)
        if joint_valid is not None:
            hide |= ~torch.as_tensor(joint_valid, dtype=torch.bool).reshape(n, 42)
        uvz[..., 2] = torch.where(hide, torch.full_like(uvz[..., 2], -1.0), uvz[..., 2])
        segs, cols = _skeleton_segments()
        radius = max(1.0, height / 160.0)
        depth = kern.empty_depth(n, height, width)
        bones, dots = segs[:40], segs[40:]
        kern.raster_capsules(np.ascontiguousarray(uvz.numpy(), np.float32), dots, cols[40:], 1.7 * radius, width,
                             height, NEAR, sd + occlusion_tolerance * (sd > 0), rgb, depth)  # fmt: skip
        kern.raster_capsules(np.ascontiguousarray(uvz.numpy(), np.float32), bones, cols[:40], radius, width, height,
                             NEAR, sd + occlusion_tolerance * (sd > 0), rgb, depth)  # fmt: skip
        mask = np.zeros((n, 2, height, width), bool)
        depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
        return HandPrompt(rgb, depth, mask)
    if vertices is None or faces is None:
        raise ValueError(f"the '{kind}' prompt needs hand `vertices` and `faces` (pose the hands with HandModel)")
    vertices = tensor_arg("vertices", vertices, (2, None, 3), dtype=torch.float64)
    nv = vertices.shape[2]
    uvz = _to_camera(vertices.reshape(n, 2 * nv, 3), viewmats, K)
    hide = ~visible[:, :, None].expand(n, 2, nv).reshape(n, 2 * nv)
    uvz[..., 2] = torch.where(hide, torch.full_like(uvz[..., 2], -1.0), uvz[..., 2])
    normals = torch.cat([vertex_normals(vertices[:, h], faces[h]) for h in range(2)], dim=1)
    normals_cam = normals @ viewmats[:, :3, :3].transpose(-1, -2)
    all_faces = torch.cat((faces[0], faces[1] + nv)).numpy().astype(np.int32)
    labels = np.concatenate((np.zeros(len(faces[0]), np.int32), np.ones(len(faces[1]), np.int32)))
    depth = kern.empty_depth(n, height, width)
    label = np.full((n, height, width), -1, np.int8)
    nrm = np.zeros((n, height, width, 3), np.float32)
    kern.raster_triangles(np.ascontiguousarray(uvz.numpy(), np.float32), all_faces, labels,
                          np.ascontiguousarray(normals_cam.numpy(), np.float32), width, height, NEAR,
                          depth, label, nrm)  # fmt: skip
    hit = label >= 0
    hit &= (sd <= 0) | (depth <= sd + occlusion_tolerance)
    mask = np.stack((hit & (label == 0), hit & (label == 1)), axis=1)
    depth = np.where(hit, depth, 0.0).astype(np.float32)
    if kind == "mask":
        rgb = mask_picture(mask)
    elif kind == "depth":
        rgb = depth_picture(depth, depth_range)
    else:
        # headlight shading |n . ray|, with the ray through each hand pixel
        f_idx, ys, xs = np.nonzero(hit)
        k = K.numpy()[f_idx]
        ray = np.stack(
            ((xs + 0.5 - k[:, 0, 2]) / k[:, 0, 0], (ys + 0.5 - k[:, 1, 2]) / k[:, 1, 1], np.ones(len(xs))), -1
        )
        ray /= np.linalg.norm(ray, axis=-1, keepdims=True)
        nn = nrm[f_idx, ys, xs]
        nn /= np.maximum(np.linalg.norm(nn, axis=-1, keepdims=True), 1e-9)
        shade = 0.55 + 0.45 * np.abs((nn * ray).sum(-1))
        base = np.where((label[f_idx, ys, xs] == 0)[:, None], np.asarray(mesh_colors[0], np.float32),
                        np.asarray(mesh_colors[1], np.float32))  # fmt: skip
        rgb[f_idx, ys, xs] = np.clip(shade[:, None] * base, 0, 255).astype(np.uint8)
    return HandPrompt(rgb, depth, mask)
