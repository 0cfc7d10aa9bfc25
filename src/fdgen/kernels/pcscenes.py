"""Numba kernel of the PC-FractalDB detection scenes: fit an object's cloud into its box.

The orbits themselves come from ``fdgen.kernels.ifs3d``; this kernel maps a normalised cloud
into a box of a scene (size per axis, yaw about +z, centre) and writes it as float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def place_in_box(pts, n, size, keep_aspect, cos_t, sin_t, centre, out, start):
    """Write pts[:n] fitted into a box to out[start : start + n] (float32); return n.

    Local frame: the cloud's bounding box is centred on the origin and scaled per axis to
    ``size`` (``keep_aspect`` False: it fills the box on every axis) or by one factor, the
    largest that keeps it inside the box (True). An axis without extent is put at 0. World
    frame: x' = cx + cos(t) x - sin(t) y, y' = cy + sin(t) x + cos(t) y, z' = cz + z (a yaw t
    counter-clockwise about +z seen from above).
    """
    lo = np.empty(3)
    hi = np.empty(3)
    for a in range(3):
        lo[a] = pts[0, a]
        hi[a] = pts[0, a]
    for i in range(n):
        for a in range(3):
            v = pts[i, a]
            if v < lo[a]:
                lo[a] = v
            if v > hi[a]:
                hi[a] = v
    scale = np.empty(3)
    mid = np.empty(3)
    smallest = np.inf
    for a in range(3):
        mid[a] = 0.5 * (lo[a] + hi[a])
        span = hi[a] - lo[a]
        scale[a] = size[a] / span if span > 0.0 else 0.0
        if span > 0.0 and scale[a] < smallest:
            smallest = scale[a]
    if keep_aspect:
        for a in range(3):
            scale[a] = smallest if scale[a] > 0.0 else 0.0
    for i in range(n):
        x = (pts[i, 0] - mid[0]) * scale[0]
        y = (pts[i, 1] - mid[1]) * scale[1]
        z = (pts[i, 2] - mid[2]) * scale[2]
        out[start + i, 0] = centre[0] + cos_t * x - sin_t * y
        out[start + i, 1] = centre[1] + sin_t * x + cos_t * y
        out[start + i, 2] = centre[2] + z
    return n
