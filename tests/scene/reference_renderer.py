"""A slow, obviously-correct 3DGS renderer (float64, one pixel and one Gaussian at a time).

It spells out the image formation documented in ``dexsim.scene.render`` step by step, with
numpy matrices, so that the fast renderers can be checked against it on small scenes.
"""

from __future__ import annotations

import math

import numpy as np

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = [1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396]
C3 = [-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
      1.445305721320277, -0.5900435899266435]  # fmt: skip


def quat_to_rot(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def sh_color(sh: np.ndarray, d: np.ndarray) -> np.ndarray:
    x, y, z = d / np.linalg.norm(d)
    basis = [C0]
    if len(sh) > 1:
        basis += [-C1 * y, C1 * z, -C1 * x]
    if len(sh) > 4:
        basis += [C2[0] * x * y, C2[1] * y * z, C2[2] * (2 * z * z - x * x - y * y), C2[3] * x * z,
                  C2[4] * (x * x - y * y)]  # fmt: skip
    if len(sh) > 9:
        basis += [C3[0] * y * (3 * x * x - y * y), C3[1] * x * y * z, C3[2] * y * (4 * z * z - x * x - y * y),
                  C3[3] * z * (2 * z * z - 3 * x * x - 3 * y * y), C3[4] * x * (4 * z * z - x * x - y * y),
                  C3[5] * z * (x * x - y * y), C3[6] * x * (x * x - 3 * y * y)]  # fmt: skip
    rgb = sum(b * sh[k] for k, b in enumerate(basis)) + 0.5
    return np.maximum(rgb, 0.0)


def reference_render(
    means, quats, scales, opacities, sh, viewmat, K, width, height,
    object_ids=None, object_poses=None, background=(0.0, 0.0, 0.0), antialiased=False,
    near=0.01, far=1e10, eps2d=0.3,
):  # fmt: skip
    """Render one camera. Returns rgb (H, W, 3), depth (H, W), alpha (H, W), all float64."""
    V = np.asarray(viewmat, np.float64)
    fx, fy, cx, cy = K[0][0], K[1][1], K[0][2], K[1][2]
    splats = []
    for i in range(len(means)):
        mean = np.asarray(means[i], np.float64)
        rot = quat_to_rot(np.asarray(quats[i], np.float64))
        obj_rot = np.eye(3)
        if object_ids is not None and object_poses is not None and object_ids[i] > 0:
            T = np.asarray(object_poses[object_ids[i] - 1], np.float64)
            mean = T[:3, :3] @ mean + T[:3, 3]
            rot = T[:3, :3] @ rot
            obj_rot = T[:3, :3]
        cov = rot @ np.diag(np.asarray(scales[i], np.float64) ** 2) @ rot.T
        p = V[:3, :3] @ mean + V[:3, 3]
        if not near <= p[2] <= far:
            continue
        cov_cam = V[:3, :3] @ cov @ V[:3, :3].T
        x, y, z = p
        tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
        tx = z * min((width - cx) / fx + 0.3 * tan_x, max(-(cx / fx + 0.3 * tan_x), x / z))
        ty = z * min((height - cy) / fy + 0.3 * tan_y, max(-(cy / fy + 0.3 * tan_y), y / z))
        J = np.array([[fx / z, 0, -fx * tx / z**2], [0, fy / z, -fy * ty / z**2]])
        cov2d = J @ cov_cam @ J.T
        det_orig = np.linalg.det(cov2d)
        cov2d = cov2d + eps2d * np.eye(2)
        det = np.linalg.det(cov2d)
        if det <= 0:
            continue
        opac = float(opacities[i])
        if antialiased:
            opac *= math.sqrt(max(0.0, det_orig / det))
        if opac < 1 / 255:
            continue
        extend = min(3.33, math.sqrt(2 * math.log(opac * 255)))
        rx, ry = math.ceil(extend * math.sqrt(cov2d[0, 0])), math.ceil(extend * math.sqrt(cov2d[1, 1]))
        u, v = fx * x / z + cx, fy * y / z + cy
        if u + rx <= 0 or u - rx >= width or v + ry <= 0 or v - ry >= height:
            continue
        campos = -V[:3, :3].T @ V[:3, 3]
        color = sh_color(np.asarray(sh[i], np.float64), obj_rot.T @ (mean - campos))
        splats.append((z, np.array([u, v]), np.linalg.inv(cov2d), opac, color))
    splats.sort(key=lambda s: s[0])
    rgb = np.zeros((height, width, 3))
    depth = np.zeros((height, width))
    alpha = np.zeros((height, width))
    for row in range(height):
        for col in range(width):
            pix = np.array([col + 0.5, row + 0.5])
            T, c, d = 1.0, np.zeros(3), 0.0
            for z, mu, conic, opac, color in splats:
                delta = mu - pix
                sigma = 0.5 * delta @ conic @ delta
                a = min(0.999, opac * math.exp(-sigma))
                if sigma < 0 or a < 1 / 255:
                    continue
                if T * (1 - a) <= 1e-4:
                    break
                c += a * T * color
                d += a * T * z
                T *= 1 - a
            rgb[row, col] = c + T * np.asarray(background)
            alpha[row, col] = 1 - T
            depth[row, col] = d / (1 - T) if 1 - T > 1e-10 else 0.0
    return rgb, depth, alpha
