"""A straightforward numba port of the original FractalDB algorithm, the bench's baseline.

What the original scripts do (REFERENCE 1.1-1.2), point by point, with the Python loops
compiled: one uniform per step and the first map whose cumulative probability reaches it
(early exit); points mapped to pixels with numpy; per point a fresh 3x3 mask in 1..511 pasted
cell by cell into a grey image; each of the four flips made with ``cv2.flip`` and written as a
PNG by OpenCV. (The original writes RGB with three equal channels: three times the stores and
a slower PNG. The port keeps one channel, so the baseline is the faster of the two.) The
search evaluates one candidate at a time on a 0/1 raster and counts its non-zero pixels.
Random numbers come from numba's generator, so the pixels differ from fdgen's; the work per
point is the original's.
"""

from __future__ import annotations

import cv2
import numpy as np
from numba import njit


@njit(cache=True)
def orbit(maps, cum, n, seed):
    """The original orbit: start at (0, 0), then n - 1 steps, one uniform each."""
    np.random.seed(seed)
    xs = np.empty(n)
    ys = np.empty(n)
    x = 0.0
    y = 0.0
    xs[0] = x
    ys[0] = y
    last = maps.shape[0] - 1
    for i in range(1, n):
        u = np.random.random()
        j = 0
        while j < last and u > cum[j]:
            j += 1
        nx = maps[j, 0] * x + maps[j, 1] * y + maps[j, 4]
        y = maps[j, 2] * x + maps[j, 3] * y + maps[j, 5]
        x = nx
        xs[i] = x
        ys[i] = y
    return xs, ys


def to_pixels(vs: np.ndarray, size: int, pad: int) -> np.ndarray:
    """The original's mapping: shift to 0, scale to the padded size, cast to uint16."""
    vs = vs - vs.min()
    return (vs / vs.max() * (size - 2 * pad) + pad).astype(np.uint16)


@njit(cache=True)
def paste_patches(px, py, image, value, seed):
    """Per point a random 9-bit mask, pasted cell by cell, overwriting."""
    np.random.seed(seed)
    for i in range(px.shape[0]):
        m = np.random.randint(1, 512)
        for cell in range(9):
            on = (m >> (8 - cell)) & 1
            image[py[i] + 1 + cell // 3, px[i] + 1 + cell % 3] = value * on


def render_variant(
    params: np.ndarray, weights: np.ndarray, size: int, pad: int, points: int, seed: int
) -> list[bytes]:
    """The four flips of one variant as PNGs, the original's way."""
    maps = np.ascontiguousarray(params[:, :6] * weights)
    cum = np.cumsum(params[:, 6])
    xs, ys = orbit(maps, cum, points, seed)
    finite = np.isfinite(xs) & np.isfinite(ys)
    if not finite.all():
        stop = max(0, int(np.argmin(finite)) - 100)
        xs, ys = xs[:stop], ys[:stop]
    image = np.zeros((size, size), np.uint8)
    if len(xs):
        paste_patches(to_pixels(xs, size, pad), to_pixels(ys, size, pad), image, 127, seed)
    up = cv2.flip(image, 0)
    flips = [up, image, cv2.flip(up, 1), cv2.flip(image, 1)]
    return [cv2.imencode(".png", f)[1].tobytes() for f in flips]


@njit(cache=True)
def _filled(px, py, size):
    canvas = np.zeros((size, size), np.uint8)
    for i in range(px.shape[0]):
        canvas[py[i], px[i]] = 1
    return np.count_nonzero(canvas)


def search_candidate(rs: np.random.RandomState, points: int, size: int, pad: int) -> float:
    """One candidate of the original search: draw maps, orbit, filling rate."""
    n_maps = rs.randint(2, 8)
    maps = np.array([rs.uniform(-1.0, 1.0, 6) for _ in range(n_maps)])
    dets = np.abs(maps[:, 0] * maps[:, 3] - maps[:, 1] * maps[:, 2])
    cum = np.cumsum(dets / dets.sum())
    xs, ys = orbit(maps, cum, points, rs.randint(2**31))
    finite = np.isfinite(xs) & np.isfinite(ys)
    if not finite.all():
        stop = max(1, int(np.argmin(finite)) - 100)
        xs, ys = xs[:stop], ys[:stop]
    with np.errstate(invalid="ignore", divide="ignore"):
        px, py = to_pixels(xs, size, pad), to_pixels(ys, size, pad)
    return _filled(np.minimum(px, size - 1), np.minimum(py, size - 1), size) / size**2
