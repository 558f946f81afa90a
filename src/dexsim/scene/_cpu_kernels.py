"""Numba kernels of the CPU renderer: fused projection, SH colours, tile binning, compositing.

The image formation is the one documented in :mod:`dexsim.scene.render`; these kernels are the
fast CPU implementation of it (tiles of 32x32 pixels, per-pixel early termination, Gaussians
rejected without an ``exp`` when ``sigma`` exceeds ``ln(255 o)``).
"""

from __future__ import annotations

import math
import os

import numba as nb
import numpy as np

# OpenMP first: the TBB layer warns (and is skipped) with the older TBB that some wheels bring.
if "NUMBA_THREADING_LAYER" not in os.environ:
    nb.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]


def _prefer_wide_vectors() -> None:
    """On AVX-512 CPUs let LLVM vectorise with 512-bit registers (it prefers 256 on most of them): the compositor's
    row loop then takes 16 pixels per instruction (tabletop frame at 128x128: 4.0 -> 2.9 ms). Applies when no numba
    code was compiled earlier in the process and ``NUMBA_CPU_FEATURES`` is not set; a tuning choice only."""
    if "NUMBA_CPU_FEATURES" in os.environ or nb.config.CPU_FEATURES is not None:
        return
    import llvmlite.binding as llvm

    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:  # not reported on this platform
        return
    if features.get("avx512f"):
        nb.config.CPU_FEATURES = features.flatten() + ",-prefer-256-bit"


_prefer_wide_vectors()

TILE_W = 32  # the compositor's finished-pixel masks are uint32 rows: at most 32 wide
TILE_H = 32
assert TILE_W <= 32
_ALPHA_T = 1.0 / 255.0
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)
_TWO = np.float32(2.0)
_ZERO = np.float32(0.0)
_MAX_ALPHA32 = np.float32(0.999)
_ALPHA_T32 = np.float32(1.0 / 255.0)
_MIN_T32 = np.float32(1e-4)
_TINY = np.float32(1e-10)
_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
       -0.4570457994644658, 1.445305721320277, -0.5900435899266435)  # fmt: skip


# exp(-s) = exp(-s/8)^8, exp(-t) by its degree-9 Taylor polynomial on t <= 3/4 (relative error under 2e-6 for
# s <= 6, inside the renderer's 1e-4 tolerance): no table and no libm call, so the compositor's row loop vectorises
_EIGHTH = np.float32(0.125)
_SIX = np.float32(6.0)
_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7, _T8, _T9 = (np.float32((-1.0) ** n / math.factorial(n)) for n in range(10))


@nb.njit(inline="always", fastmath=True, cache=True)
def _exp_neg_lanes(s):
    """exp(-s) in float32 for 0 <= s <= 6, branch- and table-free."""
    t = s * _EIGHTH
    p = ((((((((_T9 * t + _T8) * t + _T7) * t + _T6) * t + _T5) * t + _T4) * t + _T3) * t + _T2) * t + _T1) * t + _T0
    p = p * p
    p = p * p
    return p * p


@nb.njit(inline="always", cache=True)
def _popcount(x):
    """Set bits of a uint32."""
    x = x - ((x >> np.uint32(1)) & np.uint32(0x55555555))
    x = (x & np.uint32(0x33333333)) + ((x >> np.uint32(2)) & np.uint32(0x33333333))
    x = (x + (x >> np.uint32(4))) & np.uint32(0x0F0F0F0F)
    return ((x * np.uint32(0x01010101)) >> np.uint32(24)) & np.uint32(0xFF)  # numba widens to 64 bits: mask


@nb.njit(parallel=True, cache=True)
def world_gaussians(means, quats, scales, obj_ids, obj_table, which, out_pos, out_factor):
    """World centres ``out_pos`` (3, N) and covariance factors ``out_factor`` (9, N: M = R S row-major, covariance
    M M^T) of the Gaussians ``which`` after their object's motion ``obj_table[obj_ids]`` (4, 4) (row 0: identity for
    the static scene). The factor, not the covariance, is kept: the projection's 2D covariance is then a sum of squares,
    well conditioned in float32 storage even for needle-thin Gaussians."""
    for j in nb.prange(which.shape[0]):
        i = which[j]
        sx, sy, sz = scales[i, 0], scales[i, 1], scales[i, 2]
        px, py, pz = means[i, 0], means[i, 1], means[i, 2]
        qw, qx, qy, qz = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
        qn = 1.0 / math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        qw, qx, qy, qz = qw * qn, qx * qn, qy * qn, qz * qn
        # M = R(q) S, row-major m[r][c]
        m00 = (1 - 2 * (qy * qy + qz * qz)) * sx
        m01 = 2 * (qx * qy - qw * qz) * sy
        m02 = 2 * (qx * qz + qw * qy) * sz
        m10 = 2 * (qx * qy + qw * qz) * sx
        m11 = (1 - 2 * (qx * qx + qz * qz)) * sy
        m12 = 2 * (qy * qz - qw * qx) * sz
        m20 = 2 * (qx * qz - qw * qy) * sx
        m21 = 2 * (qy * qz + qw * qx) * sy
        m22 = (1 - 2 * (qx * qx + qy * qy)) * sz
        oid = obj_ids[i]
        if oid > 0:
            T = obj_table[oid]
            px, py, pz = (T[0, 0] * px + T[0, 1] * py + T[0, 2] * pz + T[0, 3],
                          T[1, 0] * px + T[1, 1] * py + T[1, 2] * pz + T[1, 3],
                          T[2, 0] * px + T[2, 1] * py + T[2, 2] * pz + T[2, 3])  # fmt: skip
            n00 = T[0, 0] * m00 + T[0, 1] * m10 + T[0, 2] * m20
            n01 = T[0, 0] * m01 + T[0, 1] * m11 + T[0, 2] * m21
            n02 = T[0, 0] * m02 + T[0, 1] * m12 + T[0, 2] * m22
            n10 = T[1, 0] * m00 + T[1, 1] * m10 + T[1, 2] * m20
            n11 = T[1, 0] * m01 + T[1, 1] * m11 + T[1, 2] * m21
            n12 = T[1, 0] * m02 + T[1, 1] * m12 + T[1, 2] * m22
            n20 = T[2, 0] * m00 + T[2, 1] * m10 + T[2, 2] * m20
            n21 = T[2, 0] * m01 + T[2, 1] * m11 + T[2, 2] * m21
            n22 = T[2, 0] * m02 + T[2, 1] * m12 + T[2, 2] * m22
            m00, m01, m02, m10, m11, m12, m20, m21, m22 = n00, n01, n02, n10, n11, n12, n20, n21, n22
        out_pos[0, i] = px
        out_pos[1, i] = py
        out_pos[2, i] = pz
        out_factor[0, i] = m00
        out_factor[1, i] = m01
        out_factor[2, i] = m02
        out_factor[3, i] = m10
        out_factor[4, i] = m11
        out_factor[5, i] = m12
        out_factor[6, i] = m20
        out_factor[7, i] = m21
        out_factor[8, i] = m22


#: Gaussians per parallel chunk of :func:`project` (each chunk a vectorised loop)
_PROJECT_CHUNK = 4096


@nb.njit(inline="always", fastmath=True, cache=True)
def _screen_terms(px, py, pz, m00, m01, m02, m10, m11, m12, m20, m21, m22, cam):
    """One world Gaussian through the camera ``cam`` (:func:`project`'s tuple): camera z, pixel centre, the 2D
    covariance (a, b, c) with the blur ``eps2d`` added, and its determinant before the blur."""
    v00, v01, v02, v03, v10, v11, v12, v13, v20, v21, v22, v23, fx, fy, cx, cy, lxp, lxn, lyp, lyn, near, eps2d = cam
    x = v00 * px + v01 * py + v02 * pz + v03
    y = v10 * px + v11 * py + v12 * pz + v13
    z = v20 * px + v21 * py + v22 * pz + v23
    zc = max(z, near)
    rz = 1.0 / zc
    mx = fx * x * rz + cx
    my = fy * y * rz + cy
    tx = zc * min(lxp, max(-lxn, x * rz))
    ty = zc * min(lyp, max(-lyn, y * rz))
    # the rows of J V_R (J: the projection's Jacobian at the clamped point), times M: the 2D covariance is their Gram
    j0 = fx * rz
    j2 = -fx * tx * rz * rz
    k1 = fy * rz
    k2 = -fy * ty * rz * rz
    r00, r01, r02 = j0 * v00 + j2 * v20, j0 * v01 + j2 * v21, j0 * v02 + j2 * v22
    r10, r11, r12 = k1 * v10 + k2 * v20, k1 * v11 + k2 * v21, k1 * v12 + k2 * v22
    u0 = r00 * m00 + r01 * m10 + r02 * m20
    u1 = r00 * m01 + r01 * m11 + r02 * m21
    u2 = r00 * m02 + r01 * m12 + r02 * m22
    w0 = r10 * m00 + r11 * m10 + r12 * m20
    w1 = r10 * m01 + r11 * m11 + r12 * m21
    w2 = r10 * m02 + r11 * m12 + r12 * m22
    a = u0 * u0 + u1 * u1 + u2 * u2
    b = u0 * w0 + u1 * w1 + u2 * w2
    c = w0 * w0 + w1 * w1 + w2 * w2
    return z, mx, my, a + eps2d, b, c + eps2d, a * c - b * b


@nb.njit(parallel=True, fastmath=True, cache=True)
def project(pos, factor, opacities, log_opacity, viewmat, fx, fy, cx, cy, width, height, near, far, eps2d, antialiased,
            out_xy, out_conic, out_opac, out_sigma_max, out_depth, out_radii):  # fmt: skip
    """Project N world Gaussians (``pos`` (3, N), ``factor`` (9, N) from :func:`world_gaussians`; ``log_opacity`` (N,)
    ``ln(255 o)``) through one camera. Writes ``out_xy`` (2, N), ``out_conic`` (3, N), ``out_opac``,
    ``out_sigma_max`` (``ln(255 o)`` after antialiasing: the largest ``sigma`` whose alpha reaches 1/255),
    ``out_depth`` and ``out_radii`` (2, N); ``out_radii = 0`` marks a culled Gaussian.

    Struct-of-arrays and branch-free (the cull is a mask on the radii): LLVM vectorises it. The 2D covariance is
    float64: its determinant cancels for large thin footprints (float32 moved garden pixels by 0.01). With
    ``antialiased`` the opacity's factor needs a logarithm per Gaussian: the vectorised pass bounds the radius with the
    opacity before the factor, and a scalar pass finishes the Gaussians it kept."""
    n = pos.shape[1]
    f32 = np.float32
    fw, fh = f32(width), f32(height)
    tan_fx = 0.5 * width / fx
    tan_fy = 0.5 * height / fy
    v = viewmat
    f64 = np.float64
    cam = (f64(v[0, 0]), f64(v[0, 1]), f64(v[0, 2]), f64(v[0, 3]), f64(v[1, 0]), f64(v[1, 1]), f64(v[1, 2]),
           f64(v[1, 3]), f64(v[2, 0]), f64(v[2, 1]), f64(v[2, 2]), f64(v[2, 3]), f64(fx), f64(fy), f64(cx), f64(cy),
           (width - cx) / fx + 0.3 * tan_fx, cx / fx + 0.3 * tan_fx, (height - cy) / fy + 0.3 * tan_fy,
           cy / fy + 0.3 * tan_fy, f64(near), f64(eps2d))  # fmt: skip
    near32, far32 = f32(near), f32(far)
    wx, wy, wz = pos[0], pos[1], pos[2]
    f0, f1, f2, f3, f4, f5, f6, f7, f8 = (factor[0], factor[1], factor[2], factor[3], factor[4], factor[5], factor[6],
                                          factor[7], factor[8])  # fmt: skip
    ox, oy, ra, rb, rc, rx_, ry_ = out_xy[0], out_xy[1], out_conic[0], out_conic[1], out_conic[2], out_radii[0], \
        out_radii[1]  # fmt: skip
    for chunk in nb.prange((n + _PROJECT_CHUNK - 1) // _PROJECT_CHUNK):
        for k in range(chunk * _PROJECT_CHUNK, min(n, (chunk + 1) * _PROJECT_CHUNK)):
            i = np.uint64(k)  # unsigned: no negative-index wraparound, which keeps LLVM from vectorising
            z, mx, my, a, b, c, det_orig = _screen_terms(wx[i], wy[i], wz[i], f0[i], f1[i], f2[i], f3[i], f4[i], f5[i],
                                                         f6[i], f7[i], f8[i], cam)  # fmt: skip
            det = a * c - b * b
            op = opacities[i]
            if antialiased:  # (det guarded: fastmath assumes no inf / NaN; det <= 0 is culled below)
                op *= math.sqrt(max(_ZERO, det_orig / max(det, 1e-30)))
            sig = log_opacity[i]  # exact without antialiasing, an upper bound with it
            ext = min(f32(3.33), math.sqrt(_TWO * max(sig, _ZERO)))
            rx = math.ceil(ext * math.sqrt(max(a, _ZERO)))
            ry = math.ceil(ext * math.sqrt(max(c, _ZERO)))
            keep = ((z >= near32) & (z <= far32) & (det > _ZERO) & (op >= _ALPHA_T32) & ((rx > _ZERO) | (ry > _ZERO))
                    & (mx + rx > _ZERO) & (mx - rx < fw) & (my + ry > _ZERO) & (my - ry < fh))  # fmt: skip
            rdet = _ONE / det if keep else _ZERO
            ox[i] = mx
            oy[i] = my
            ra[i] = c * rdet
            rb[i] = -b * rdet
            rc[i] = a * rdet
            out_opac[i] = op
            out_sigma_max[i] = sig
            out_depth[i] = z
            rx_[i] = np.int32(rx) if keep else np.int32(0)
            ry_[i] = np.int32(ry) if keep else np.int32(0)
    if antialiased:
        for k in nb.prange(n):
            if rx_[k] == 0 and ry_[k] == 0:
                continue
            z, mx, my, a, b, c, det_orig = _screen_terms(wx[k], wy[k], wz[k], f0[k], f1[k], f2[k], f3[k], f4[k], f5[k],
                                                         f6[k], f7[k], f8[k], cam)  # fmt: skip
            sig = f32(math.log(out_opac[k] / _ALPHA_T))
            ext = min(f32(3.33), math.sqrt(_TWO * sig))
            rx = math.ceil(ext * math.sqrt(a))
            ry = math.ceil(ext * math.sqrt(c))
            if (rx <= 0 and ry <= 0) or mx + rx <= 0 or mx - rx >= fw or my + ry <= 0 or my - ry >= fh:
                rx = ry = 0
            out_sigma_max[k] = sig
            rx_[k] = rx
            ry_[k] = ry


@nb.njit(parallel=True, cache=True)
def sh_colors(sh, world, visible, campos, obj_ids, obj_table, out):
    """Colours (N, 3) of the ``visible`` Gaussians from SH (N, K, 3) in the view direction (``world`` (3, N))."""
    k = sh.shape[1]
    if k == 1:  # degree 0: no view direction needed
        for j in nb.prange(visible.shape[0]):
            i = visible[j]
            for ch in range(3):
                out[i, ch] = max(_C0 * sh[i, 0, ch] + 0.5, 0.0)
        return
    for j in nb.prange(visible.shape[0]):
        i = visible[j]
        dx = world[0, i] - campos[0]
        dy = world[1, i] - campos[1]
        dz = world[2, i] - campos[2]
        oid = obj_ids[i]
        if oid > 0 and k > 1:  # evaluate in the object's own frame: R^T d
            T = obj_table[oid]
            dx, dy, dz = (T[0, 0] * dx + T[1, 0] * dy + T[2, 0] * dz,
                          T[0, 1] * dx + T[1, 1] * dy + T[2, 1] * dz,
                          T[0, 2] * dx + T[1, 2] * dy + T[2, 2] * dz)  # fmt: skip
        nrm = math.sqrt(dx * dx + dy * dy + dz * dz)
        if nrm > 1e-12:
            dx, dy, dz = dx / nrm, dy / nrm, dz / nrm
        for ch in range(3):
            v = _C0 * sh[i, 0, ch]
            if k > 1:
                v += -_C1 * dy * sh[i, 1, ch] + _C1 * dz * sh[i, 2, ch] - _C1 * dx * sh[i, 3, ch]
            if k > 4:
                xx, yy, zz = dx * dx, dy * dy, dz * dz
                v += (_C2[0] * dx * dy * sh[i, 4, ch] + _C2[1] * dy * dz * sh[i, 5, ch]
                      + _C2[2] * (2 * zz - xx - yy) * sh[i, 6, ch] + _C2[3] * dx * dz * sh[i, 7, ch]
                      + _C2[4] * (xx - yy) * sh[i, 8, ch])  # fmt: skip
                if k > 9:
                    v += (_C3[0] * dy * (3 * xx - yy) * sh[i, 9, ch] + _C3[1] * dx * dy * dz * sh[i, 10, ch]
                          + _C3[2] * dy * (4 * zz - xx - yy) * sh[i, 11, ch]
                          + _C3[3] * dz * (2 * zz - 3 * xx - 3 * yy) * sh[i, 12, ch]
                          + _C3[4] * dx * (4 * zz - xx - yy) * sh[i, 13, ch]
                          + _C3[5] * dz * (xx - yy) * sh[i, 14, ch]
                          + _C3[6] * dx * (xx - 3 * yy) * sh[i, 15, ch])  # fmt: skip
            out[i, ch] = max(v + 0.5, 0.0)


@nb.njit(parallel=True, cache=True)
def bin_tiles(xy, radii, width, height, chunks):
    """Tile lists in depth order of Gaussians already sorted front to back (``xy`` (m, 2), ``radii`` (m, 2)).

    Returns ``(offsets (T+1,), lists (P,))``: tile t holds ``lists[offsets[t]:offsets[t+1]]``. The Gaussians are
    split into ``chunks`` consecutive runs binned in parallel; each tile takes run 0's entries, then run 1's...,
    so its list stays in depth order.
    """
    tw = (width + TILE_W - 1) // TILE_W
    th = (height + TILE_H - 1) // TILE_H
    n_tiles = tw * th
    m = xy.shape[0]
    bounds = np.empty((m, 4), np.int32)
    for j in nb.prange(m):
        # pixel centres p + 0.5 within [m - r, m + r], then the tiles holding them
        x0 = max(0, int(math.ceil(xy[j, 0] - radii[j, 0] - 0.5)))
        x1 = min(width - 1, int(math.floor(xy[j, 0] + radii[j, 0] - 0.5)))
        y0 = max(0, int(math.ceil(xy[j, 1] - radii[j, 1] - 0.5)))
        y1 = min(height - 1, int(math.floor(xy[j, 1] + radii[j, 1] - 0.5)))
        if x1 < x0 or y1 < y0:
            bounds[j, 0] = 1
            bounds[j, 1] = 0
            bounds[j, 2] = 1
            bounds[j, 3] = 0
        else:
            bounds[j, 0] = x0 // TILE_W
            bounds[j, 1] = x1 // TILE_W
            bounds[j, 2] = y0 // TILE_H
            bounds[j, 3] = y1 // TILE_H
    counts = np.zeros((chunks, n_tiles), np.int64)
    for c in nb.prange(chunks):
        for j in range(c * m // chunks, (c + 1) * m // chunks):
            for ty in range(bounds[j, 2], bounds[j, 3] + 1):
                for tx in range(bounds[j, 0], bounds[j, 1] + 1):
                    counts[c, ty * tw + tx] += 1
    offsets = np.empty(n_tiles + 1, np.int64)
    start = np.empty((chunks, n_tiles), np.int64)
    total = 0
    for t in range(n_tiles):
        offsets[t] = total
        for c in range(chunks):
            start[c, t] = total
            total += counts[c, t]
    offsets[n_tiles] = total
    lists = np.empty(total, np.int32)
    for c in nb.prange(chunks):
        fill = start[c].copy()
        for j in range(c * m // chunks, (c + 1) * m // chunks):
            for ty in range(bounds[j, 2], bounds[j, 3] + 1):
                for tx in range(bounds[j, 0], bounds[j, 1] + 1):
                    t = ty * tw + tx
                    lists[fill[t]] = j
                    fill[t] += 1
    return offsets, lists


@nb.njit(cache=True)
def sort_visible(radii, depth):
    """Indices of the visible Gaussians (``radii`` (2, N) > 0), sorted front to back (stable)."""
    n = radii.shape[1]
    vis = np.empty(n, np.int64)
    keys = np.empty(n, np.float32)
    c = 0
    for i in range(n):
        if radii[0, i] > 0 or radii[1, i] > 0:
            vis[c] = i
            keys[c] = depth[i]
            c += 1
    return vis[:c][_radix_argsort_positive(keys[:c])]


@nb.njit(cache=True)
def _radix_argsort_positive(keys):
    """Stable argsort of non-negative float32 keys: LSD radix sort (3 passes of 11 bits) on the IEEE bit patterns,
    which order like the values for non-negative floats. One read builds the three histograms; each pass moves the
    keys with their indices (no gathers); a pass whose digit is the same for every key is skipped. Serial: at the
    renderer's sizes (1e4-1e5 visible Gaussians) it beat the two-thread version (tabletop frame: 0.64 -> 0.34 ms)."""
    n = keys.shape[0]
    bits = keys.view(np.uint32)
    hist = np.zeros((3, 2048), np.int64)
    for i in range(n):
        b = bits[i]
        hist[0, b & 2047] += 1
        hist[1, (b >> 11) & 2047] += 1
        hist[2, b >> 22] += 1
    idx = np.arange(n).astype(np.int64)
    kb = bits.copy()
    idx2 = np.empty(n, np.int64)
    kb2 = np.empty(n, np.uint32)
    pos = np.empty(2048, np.int64)
    for p in range(3):
        if n == 0 or hist[p].max() == n:
            continue  # one digit for every key: this pass keeps the order
        shift = 11 * p
        total = 0
        for b in range(2048):
            pos[b] = total
            total += hist[p, b]
        for i in range(n):
            k = kb[i]
            d = (k >> shift) & 2047
            q = pos[d]
            idx2[q] = idx[i]
            kb2[q] = k
            pos[d] = q + 1
        idx, idx2 = idx2, idx
        kb, kb2 = kb2, kb
    return idx


#: columns of the packed per-Gaussian rows that :func:`composite` reads (one cache line per Gaussian)
PACKED = ("x", "y", "conic_a", "conic_b", "conic_c", "opacity", "sigma_max", "depth", "r", "g", "b")


@nb.njit(parallel=True, cache=True)
def pack_sorted(order, xy, radii, conic, opac, sigma_max, depth, color):
    """The Gaussians in ``order`` as contiguous rows of :data:`PACKED` (float32) plus their radii (m, 2) int32, from
    :func:`project`'s struct-of-arrays outputs."""
    m = order.shape[0]
    g = np.empty((m, 11), np.float32)
    s_radii = np.empty((m, 2), np.int32)
    for j in nb.prange(m):
        i = order[j]
        g[j, 0] = xy[0, i]
        g[j, 1] = xy[1, i]
        g[j, 2] = conic[0, i]
        g[j, 3] = conic[1, i]
        g[j, 4] = conic[2, i]
        g[j, 5] = opac[i]
        g[j, 6] = sigma_max[i]
        g[j, 7] = depth[i]
        g[j, 8] = color[i, 0]
        g[j, 9] = color[i, 1]
        g[j, 10] = color[i, 2]
        s_radii[j, 0] = radii[0, i]
        s_radii[j, 1] = radii[1, i]
    return g, s_radii


def balanced_tile_order(offsets: np.ndarray, threads: int) -> np.ndarray:
    """Tile indices in an order that gives each of ``threads`` equal contiguous chunks (numba's OpenMP
    ``prange`` splits the range so) about equal work: tiles sorted by their list length, dealt in snake order.

    Without it the thread with the busier half of the image sets the pace (measured on the garden at 256x256:
    55/45 splits of the evaluations, compositing 20% slower)."""
    cost = np.diff(offsets)
    n = cost.shape[0]
    t = max(1, min(int(threads), n))
    by_cost = np.argsort(-cost, kind="stable")
    lane = np.arange(n) % (2 * t)
    lane = np.where(lane < t, lane, 2 * t - 1 - lane)  # 0, 1, .., t-1, t-1, .., 0, 0, 1, ..
    return np.concatenate([by_cost[lane == k] for k in range(t)]).astype(np.int64)


@nb.njit(parallel=True, cache=True, fastmath=True)
def composite(offsets, lists, g, radii, tile_order, width, height, background, out_rgb, out_depth, out_alpha, out_evals,
              in2=None, out_depth2=None, out_alpha2=None):  # fmt: skip
    """Front-to-back compositing of the packed rows ``g`` (:func:`pack_sorted`, indexed by the sorted position
    ``j``), tiles visited in ``tile_order`` (:func:`balanced_tile_order`).

    Writes the final pixels: ``out_rgb`` with ``background`` (3,) behind the light left over, ``out_depth`` the
    alpha-weighted mean depth (0 where alpha <= 1e-10), ``out_alpha``. ``out_evals`` (tiles,) gets the Gaussian-pixel
    evaluations (exponentials) of each tile. A second depth track (``in2`` (m,) nonzero for the Gaussians it holds)
    composites the depth of that subset alone into ``out_depth2`` / ``out_alpha2`` (normalised the same way) in the
    same pass: exactly what rendering the subset by itself gives (same projections, same order), without projecting,
    sorting and binning twice. Without it (``in2=None``) numba compiles the track away.

    The inner loop is float32 throughout (typed constants keep numba from promoting to float64,
    which costs ~30% here). Per tile, Gaussians are visited in depth order and each one updates only the unfinished
    pixels of its box rows that reach the Gaussian's cut-off (sigma <= ln(255 o), tested per pixel before the exp);
    a tile stops once all its pixels are finished. This gives every pixel exactly the per-pixel front-to-back sum,
    with far less work than scanning the whole tile list for every pixel. Finished pixels are bits of a per-row mask;
    a row whose box is finished, or that misses the ellipse (no real root of its quadratic), is skipped. The others
    run branch-free over whole 8-pixel groups of the tile row: every lane computes, masks (box & ~finished, the
    cut-off, alpha >= 1/255) decide what is written, so LLVM vectorises the loop (16 lanes with AVX-512).
    The subset's track is the full one until a Gaussian outside the subset touches a pixel: only then is it copied
    off and kept apart.
    """
    tw = (width + TILE_W - 1) // TILE_W
    th = (height + TILE_H - 1) // TILE_H
    for ti in nb.prange(tw * th):
        t = tile_order[ti]
        tx0 = (t % tw) * TILE_W
        ty0 = (t // tw) * TILE_H
        tx1 = min(tx0 + TILE_W, width) - 1
        ty1 = min(ty0 + TILE_H, height) - 1
        n_pix = (tx1 - tx0 + 1) * (ty1 - ty0 + 1)
        trans = np.ones(TILE_W * TILE_H, np.float32)
        acc_r = np.zeros(TILE_W * TILE_H, np.float32)
        acc_g = np.zeros(TILE_W * TILE_H, np.float32)
        acc_b = np.zeros(TILE_W * TILE_H, np.float32)
        acc_d = np.zeros(TILE_W * TILE_H, np.float32)
        done = np.zeros(TILE_H, np.uint32)  # per row: bit x set when pixel (row, x) is finished
        n_done = 0
        trans2 = np.ones(TILE_W * TILE_H, np.float32)
        acc2 = np.zeros(TILE_W * TILE_H, np.float32)
        done2 = np.zeros(TILE_H, np.uint32)
        # until a Gaussian outside the subset touches a pixel, its subset track equals the full one: ``split`` marks
        # the pixels where they differ, the only ones whose subset track is kept apart
        split = np.zeros(TILE_H, np.uint32)
        n_open2 = 0  # split pixels whose subset track is not finished
        n_evals = 0
        centres = np.empty(TILE_W, np.float32)  # pixel centres' x of the tile's columns
        for b in range(TILE_W):
            centres[b] = np.float32(tx0 + b) + _HALF
        for k in range(offsets[t], offsets[t + 1]):
            j = lists[k]
            mine2 = False if in2 is None else in2[j] != 0
            if n_done == n_pix and not mine2:  # (with n_open2 == 0 too the tile has already stopped)
                continue
            mx = g[j, 0]
            my = g[j, 1]
            x0 = max(tx0, int(math.ceil(mx - radii[j, 0] - 0.5)))
            x1 = min(tx1, int(math.floor(mx + radii[j, 0] - 0.5)))
            y0 = max(ty0, int(math.ceil(my - radii[j, 1] - 0.5)))
            y1 = min(ty1, int(math.floor(my + radii[j, 1] - 0.5)))
            if x1 < x0 or y1 < y0:
                continue
            bbox = ((np.uint32(1) << np.uint32(x1 - x0 + 1)) - np.uint32(1)) << np.uint32(x0 - tx0)
            ca = g[j, 2]
            cb = g[j, 3]
            cc = g[j, 4]
            o = g[j, 5]
            sig_max = g[j, 6]
            dep = g[j, 7]
            cr = g[j, 8]
            cg = g[j, 9]
            cbl = g[j, 10]
            # the row loop runs over whole 8-pixel groups of the tile row (no scalar remainder: vectorised)
            lane0 = (x0 - tx0) & ~7
            lane1 = (x1 - tx0) | 7
            half_ca = _HALF * ca
            for py in range(y0, y1 + 1):
                r = py - ty0
                row_done = done[r]
                row_split = split[r]
                row_done2 = done2[r]
                blocked = row_done & (~row_split | row_done2) if mine2 else row_done
                cand = bbox & ~blocked
                if cand == 0:
                    continue
                dy = my - (np.float32(py) + _HALF)
                qb = cb * dy
                half_cc_dy2 = _HALF * cc * dy * dy
                # a row whose pixels all have sigma > sig_max: 0.5 ca dx^2 + cb dy dx + (0.5 cc dy^2 - sig_max) has
                # no real root
                if qb * qb - _TWO * ca * (half_cc_dy2 - sig_max) < _ZERO:
                    continue
                row = r * TILE_W
                new_done = np.uint32(0)
                new_done2 = np.uint32(0)
                new_split = np.uint32(0)
                row_evals = 0
                for b in range(lane0, lane1 + 1):
                    # branch-free: every lane computes, the masks decide what is written (unsigned indices: no
                    # negative-index wraparound, which keeps LLVM from vectorising)
                    bit = np.uint32(1) << np.uint32(b)
                    dx = mx - centres[np.uint64(b)]
                    sigma = half_ca * dx * dx + half_cc_dy2 + qb * dx
                    inside = ((cand & bit) != 0) & (sigma >= _ZERO) & (sigma <= sig_max)
                    row_evals += inside
                    alpha = min(_MAX_ALPHA32, o * _exp_neg_lanes(min(max(sigma, _ZERO), _SIX)))
                    hit = inside & (alpha >= _ALPHA_T32)
                    p = np.uint64(row + b)
                    if in2 is not None:
                        if mine2:
                            on2 = hit & ((row_split & bit) != 0) & ((row_done2 & bit) == 0)
                            tr2 = trans2[p]
                            next2 = tr2 * (_ONE - alpha)
                            go2 = on2 & (next2 > _MIN_T32)
                            acc2[p] += alpha * tr2 * dep if go2 else _ZERO
                            trans2[p] = next2 if go2 else tr2
                            new_done2 |= bit if on2 & (next2 <= _MIN_T32) else np.uint32(0)
                        else:
                            # the tracks part here: the subset's keeps the state so far
                            part = hit & ((row_split & bit) == 0)
                            trans2[p] = trans[p] if part else trans2[p]
                            acc2[p] = acc_d[p] if part else acc2[p]
                            new_split |= bit if part else np.uint32(0)
                    main = hit & ((row_done & bit) == 0)
                    tr = trans[p]
                    next_t = tr * (_ONE - alpha)
                    go = main & (next_t > _MIN_T32)
                    w = alpha * tr if go else _ZERO
                    acc_r[p] += w * cr
                    acc_g[p] += w * cg
                    acc_b[p] += w * cbl
                    acc_d[p] += w * dep
                    trans[p] = next_t if go else tr
                    new_done |= bit if main & (next_t <= _MIN_T32) else np.uint32(0)
                n_evals += row_evals
                if new_done != 0:
                    done[r] = row_done | new_done
                    n_done += _popcount(new_done)
                if new_done2 != 0:
                    done2[r] = row_done2 | new_done2
                    n_open2 -= _popcount(new_done2)
                if new_split != 0:
                    split[r] = row_split | new_split
                    n_open2 += _popcount(new_split)
            if n_done == n_pix and n_open2 == 0:
                break
        out_evals[t] = n_evals
        # finished pixels: the background behind what is left of the light, depth as the alpha-weighted mean
        for py in range(ty0, ty1 + 1):
            for px in range(tx0, tx1 + 1):
                p = (py - ty0) * TILE_W + (px - tx0)
                if in2 is not None:
                    if (split[py - ty0] >> np.uint32(px - tx0)) & np.uint32(1):
                        d2, a2 = acc2[p], np.float32(1.0 - trans2[p])
                    else:
                        d2, a2 = acc_d[p], np.float32(1.0 - trans[p])
                    out_alpha2[py, px] = a2
                    out_depth2[py, px] = d2 / a2 if a2 > _TINY else _ZERO
                a = np.float32(1.0 - trans[p])
                rest = _ONE - a
                out_rgb[py, px, 0] = acc_r[p] + rest * background[0]
                out_rgb[py, px, 1] = acc_g[p] + rest * background[1]
                out_rgb[py, px, 2] = acc_b[p] + rest * background[2]
                out_depth[py, px] = acc_d[p] / a if a > _TINY else _ZERO
                out_alpha[py, px] = a
