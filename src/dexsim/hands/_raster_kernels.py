"""Numba kernels: a z-buffered triangle rasteriser, a capsule (bone) rasteriser, area-weighted vertex normals.

Pixel centres are at integer + 0.5 (as the Gaussian renderer). Triangles with a vertex behind
the near plane are dropped (never wrapped around); both windings are drawn (double-sided).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(parallel=True, cache=True)
def raster_triangles(uvz, faces, face_label, normals, width, height, near, out_depth, out_label, out_normal):
    """Rasterise T frames of one triangle soup.

    Args:
        uvz: (T, V, 3) pixel x, pixel y, camera z per vertex.
        faces: (F, 3) int32; face_label: (F,) int32 written to ``out_label`` (e.g. 0 left, 1 right).
        normals: (T, V, 3) per-vertex normals (camera frame), interpolated perspective-correctly.
        out_depth: (T, H, W) float32 filled with +inf; out_label: (T, H, W) int8 filled with -1;
        out_normal: (T, H, W, 3) float32.
    """
    n_frames = uvz.shape[0]
    for f in nb.prange(n_frames):
        for k in range(faces.shape[0]):
            i0 = faces[k, 0]
            i1 = faces[k, 1]
            i2 = faces[k, 2]
            z0 = uvz[f, i0, 2]
            z1 = uvz[f, i1, 2]
            z2 = uvz[f, i2, 2]
            if z0 < near or z1 < near or z2 < near:
                continue
            x0 = uvz[f, i0, 0]
            y0 = uvz[f, i0, 1]
            x1 = uvz[f, i1, 0]
            y1 = uvz[f, i1, 1]
            x2 = uvz[f, i2, 0]
            y2 = uvz[f, i2, 1]
            area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
            if area < 1e-12 and area > -1e-12:
                continue
            px0 = max(0, int(math.floor(min(x0, min(x1, x2)) - 0.5)))
            px1 = min(width - 1, int(math.ceil(max(x0, max(x1, x2)) - 0.5)))
            py0 = max(0, int(math.floor(min(y0, min(y1, y2)) - 0.5)))
            py1 = min(height - 1, int(math.ceil(max(y0, max(y1, y2)) - 0.5)))
            inv_area = 1.0 / area
            for py in range(py0, py1 + 1):
                cy = py + 0.5
                for px in range(px0, px1 + 1):
                    cx = px + 0.5
                    w0 = ((x1 - cx) * (y2 - cy) - (x2 - cx) * (y1 - cy)) * inv_area
                    w1 = ((x2 - cx) * (y0 - cy) - (x0 - cx) * (y2 - cy)) * inv_area
                    w2 = 1.0 - w0 - w1
                    if w0 < 0.0 or w1 < 0.0 or w2 < 0.0:
                        continue
                    iz = w0 / z0 + w1 / z1 + w2 / z2
                    z = 1.0 / iz
                    if z >= out_depth[f, py, px]:
                        continue
                    out_depth[f, py, px] = z
                    out_label[f, py, px] = face_label[k]
                    for c in range(3):
                        out_normal[f, py, px, c] = (
                            w0 * normals[f, i0, c] / z0 + w1 * normals[f, i1, c] / z1 + w2 * normals[f, i2, c] / z2
                        ) * z


@nb.njit(parallel=True, cache=True)
def raster_capsules(uvz, segments, seg_color, radius, width, height, near, scene_depth, out_rgb, out_depth):
    """Draw T frames of segments as round-capped lines of ``radius`` pixels, z-buffered and
    hidden where ``scene_depth`` (T, H, W; 0 = no scene) is nearer.

    Args:
        uvz: (T, P, 3) pixel x, pixel y, camera z of the points; a point with z < near is invalid.
        segments: (S, 2) int32 point indices (a segment with a == b draws a dot);
        seg_color: (S, 3) uint8.
        out_rgb: (T, H, W, 3) uint8; out_depth: (T, H, W) float32 filled with +inf.
    """
    for f in nb.prange(uvz.shape[0]):
        for s in range(segments.shape[0]):
            a = segments[s, 0]
            b = segments[s, 1]
            za = uvz[f, a, 2]
            zb = uvz[f, b, 2]
            if za < near or zb < near:
                continue
            xa = uvz[f, a, 0]
            ya = uvz[f, a, 1]
            xb = uvz[f, b, 0]
            yb = uvz[f, b, 1]
            dx = xb - xa
            dy = yb - ya
            len2 = dx * dx + dy * dy
            px0 = max(0, int(math.floor(min(xa, xb) - radius - 0.5)))
            px1 = min(width - 1, int(math.ceil(max(xa, xb) + radius - 0.5)))
            py0 = max(0, int(math.floor(min(ya, yb) - radius - 0.5)))
            py1 = min(height - 1, int(math.ceil(max(ya, yb) + radius - 0.5)))
            r2 = radius * radius
            for py in range(py0, py1 + 1):
                cy = py + 0.5
                for px in range(px0, px1 + 1):
                    cx = px + 0.5
                    t = 0.0
                    if len2 > 1e-12:
                        t = min(1.0, max(0.0, ((cx - xa) * dx + (cy - ya) * dy) / len2))
                    ex = xa + t * dx - cx
                    ey = ya + t * dy - cy
                    if ex * ex + ey * ey > r2:
                        continue
                    z = 1.0 / ((1.0 - t) / za + t / zb)
                    sd = scene_depth[f, py, px]
                    if sd > 0.0 and z > sd:
                        continue
                    if z >= out_depth[f, py, px]:
                        continue
                    out_depth[f, py, px] = z
                    out_rgb[f, py, px, 0] = seg_color[s, 0]
                    out_rgb[f, py, px, 1] = seg_color[s, 1]
                    out_rgb[f, py, px, 2] = seg_color[s, 2]


def empty_depth(n: int, height: int, width: int) -> np.ndarray:
    return np.full((n, height, width), np.inf, np.float32)


@nb.njit(cache=True)
def vertex_normals(vertices, faces, out):
    """Unit area-weighted normals ``out`` (B, V, 3) of meshes ``vertices`` (B, V, 3) float64 with ``faces`` (F, 3):
    face cross products summed corner 0 of every face first, then corner 1, then corner 2 (the order of three
    ``index_add`` calls, so the sums match the torch version's bit for bit)."""
    nb_, nf = vertices.shape[0], faces.shape[0]
    fn = np.empty((nf, 3), np.float64)
    for b in range(nb_):
        for f in range(nf):
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            ax = vertices[b, i1, 0] - vertices[b, i0, 0]
            ay = vertices[b, i1, 1] - vertices[b, i0, 1]
            az = vertices[b, i1, 2] - vertices[b, i0, 2]
            bx = vertices[b, i2, 0] - vertices[b, i0, 0]
            by = vertices[b, i2, 1] - vertices[b, i0, 1]
            bz = vertices[b, i2, 2] - vertices[b, i0, 2]
            fn[f, 0] = ay * bz - az * by
            fn[f, 1] = az * bx - ax * bz
            fn[f, 2] = ax * by - ay * bx
        out[b] = 0.0
        for corner in range(3):
            for f in range(nf):
                v = faces[f, corner]
                out[b, v, 0] += fn[f, 0]
                out[b, v, 1] += fn[f, 1]
                out[b, v, 2] += fn[f, 2]
        for v in range(vertices.shape[1]):
            norm = max(math.sqrt(out[b, v, 0] ** 2 + out[b, v, 1] ** 2 + out[b, v, 2] ** 2), 1e-12)
            out[b, v, 0] /= norm
            out[b, v, 1] /= norm
            out[b, v, 2] /= norm
