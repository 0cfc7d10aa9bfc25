"""Numba kernels for 3D iterated function systems: orbits, normalisation and point projection.

A map is 12 numbers a..l: x' = a x + b y + c z + j, y' = d x + e y + f z + k,
z' = g x + h y + i z + l (the column order of the published 3D FractalDB category files).
Projection is a pinhole camera (OpenGL conventions, see ``project_points``); no OpenGL needed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fdgen.kernels.rng import next_u64, unit53

# Points dropped before the first non-finite one of a diverging orbit (as the 2D kernels do).
DIVERGENCE_MARGIN = 100


@njit(inline="always")
def _choose(cum, last, u):
    """Index of the first map whose cumulative probability is >= u; the last map takes any
    remainder of the cumulative sum, so every step moves."""
    j = 0
    for t in range(last):
        j += u > cum[t]
    return j


@njit(cache=True)
def orbit3d(maps, cum, state, pts):
    """Orbit from (0, 0, 0): fills pts (N x 3) with the N points after the start.

    One SplitMix64 draw per step picks the map (``unit53``). Returns (kept, finite): kept is
    the number of leading points to use (all, or those before the first non-finite point less
    DIVERGENCE_MARGIN).
    """
    n = pts.shape[0]
    last = maps.shape[0] - 1
    x = 0.0
    y = 0.0
    z = 0.0
    finite = True
    for i in range(n):
        state, bits = next_u64(state)
        m = _choose(cum, last, unit53(bits))
        nx = x * maps[m, 0] + y * maps[m, 1] + z * maps[m, 2] + maps[m, 9]
        ny = x * maps[m, 3] + y * maps[m, 4] + z * maps[m, 5] + maps[m, 10]
        nz = x * maps[m, 6] + y * maps[m, 7] + z * maps[m, 8] + maps[m, 11]
        x = nx
        y = ny
        z = nz
        pts[i, 0] = x
        pts[i, 1] = y
        pts[i, 2] = z
        finite &= np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    if finite:
        return n, True
    for i in range(n):
        if not (np.isfinite(pts[i, 0]) and np.isfinite(pts[i, 1]) and np.isfinite(pts[i, 2])):
            return max(0, i - DIVERGENCE_MARGIN), False
    return n, False


@njit(cache=True, error_model="numpy")
def normalise(pts, kept):
    """Scale pts[:kept] into [-1, 1] with one min/max over all three axes (aspect kept), then
    subtract the centroid. Returns False (and leaves zeros) when the extent is 0 or not finite.
    """
    if kept == 0:
        return False
    lo = pts[0, 0]
    hi = pts[0, 0]
    for i in range(kept):
        for a in range(3):
            v = pts[i, a]
            if v < lo:
                lo = v
            if v > hi:
                hi = v
    span = hi - lo
    if not (span > 0.0 and np.isfinite(span)):
        pts[:kept, :] = 0.0
        return False
    scale = 2.0 / span
    sx = 0.0
    sy = 0.0
    sz = 0.0
    for i in range(kept):
        pts[i, 0] = (pts[i, 0] - lo) * scale - 1.0
        pts[i, 1] = (pts[i, 1] - lo) * scale - 1.0
        pts[i, 2] = (pts[i, 2] - lo) * scale - 1.0
        sx += pts[i, 0]
        sy += pts[i, 1]
        sz += pts[i, 2]
    sx /= kept
    sy /= kept
    sz /= kept
    for i in range(kept):
        pts[i, 0] -= sx
        pts[i, 1] -= sy
        pts[i, 2] -= sz
    return True


@njit(cache=True)
def axis_variances(pts, kept, out):
    """Population variance of each axis of pts[:kept] into out[3] (two-pass)."""
    for a in range(3):
        mean = 0.0
        for i in range(kept):
            mean += pts[i, a]
        mean /= max(kept, 1)
        acc = 0.0
        for i in range(kept):
            d = pts[i, a] - mean
            acc += d * d
        out[a] = acc / max(kept, 1)


@njit(cache=True, error_model="numpy")
def project_points(pts, kept, rot, distance, focal, image, value):
    """Draw pts[:kept] as single pixels of ``value`` on ``image`` (H x W, cleared by the caller).

    Camera frame: p_c = rot @ p, camera on +z at ``distance`` looking at the origin, so the
    depth of a point is distance - z_c. Normalised device coordinates are
    u = focal * x_c / depth, v = focal * y_c / depth (focal = 1 / tan(fov / 2)); pixel column
    floor((u + 1) W / 2), row floor((1 - v) H / 2) (y up). Points behind the near plane or
    outside the image are skipped. Returns the number of points drawn.
    """
    h = image.shape[0]
    w = image.shape[1]
    hw = 0.5 * w
    hh = 0.5 * h
    r00, r01, r02 = rot[0, 0], rot[0, 1], rot[0, 2]
    r10, r11, r12 = rot[1, 0], rot[1, 1], rot[1, 2]
    r20, r21, r22 = rot[2, 0], rot[2, 1], rot[2, 2]
    drawn = 0
    for i in range(kept):
        x = pts[i, 0]
        y = pts[i, 1]
        z = pts[i, 2]
        depth = distance - (r20 * x + r21 * y + r22 * z)
        if not depth > 1e-6:
            continue
        inv = focal / depth
        col = ((r00 * x + r01 * y + r02 * z) * inv + 1.0) * hw
        row = (1.0 - (r10 * x + r11 * y + r12 * z) * inv) * hh
        if col >= 0.0 and col < w and row >= 0.0 and row < h:
            image[np.int64(row), np.int64(col)] = value
            drawn += 1
    return drawn


@njit(cache=True)
def rotate_points(pts, kept, rot, out):
    """out[:kept] = pts[:kept] @ rot.T as float32 (the cloud in the camera's frame)."""
    for i in range(kept):
        x = pts[i, 0]
        y = pts[i, 1]
        z = pts[i, 2]
        for a in range(3):
            out[i, a] = rot[a, 0] * x + rot[a, 1] * y + rot[a, 2] * z


@njit(cache=True)
def mix_clouds(main, kept_main, mix, kept_mix, out):
    """FractalNoiseMix: out[:kept_main] = main[:kept_main], then mix[:kept_mix], both moved by
    minus the centroid of the concatenation (summed in index order), as float32 into ``out``
    (at least kept_main + kept_mix rows). Each part is expected normalised and centred."""
    total = kept_main + kept_mix
    sx = 0.0
    sy = 0.0
    sz = 0.0
    for i in range(kept_main):
        sx += main[i, 0]
        sy += main[i, 1]
        sz += main[i, 2]
    for i in range(kept_mix):
        sx += mix[i, 0]
        sy += mix[i, 1]
        sz += mix[i, 2]
    if total > 0:
        sx /= total
        sy /= total
        sz /= total
    for i in range(kept_main):
        out[i, 0] = main[i, 0] - sx
        out[i, 1] = main[i, 1] - sy
        out[i, 2] = main[i, 2] - sz
    for i in range(kept_mix):
        out[kept_main + i, 0] = mix[i, 0] - sx
        out[kept_main + i, 1] = mix[i, 1] - sy
        out[kept_main + i, 2] = mix[i, 2] - sz
    return total


@njit(cache=True)
def shuffle_indices(state, n, out):
    """out[:n] = a Fisher-Yates permutation of 0..n-1 from a SplitMix64 stream (one draw per
    swap, top 53 bits: j = floor(u (i + 1)) for i = n - 1 down to 1); returns the new state."""
    for i in range(n):
        out[i] = i
    for i in range(n - 1, 0, -1):
        state, bits = next_u64(state)
        j = np.int64(unit53(bits) * (i + 1))
        t = out[i]
        out[i] = out[j]
        out[j] = t
    return state
