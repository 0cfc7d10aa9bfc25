"""Numba kernels for the contour families (RCDB, VisualAtom, SegRCDB).

- ``perlin1``: 1D Perlin gradient noise in single precision, the function the published
  generators call (``noise.pnoise1`` with its defaults: one octave, period 1024, base 0).
  It uses Ken Perlin's reference permutation, gradients ``(h & 7) + 1`` and, when ``h & 8``,
  the constant -1 (not the negated gradient: that is how the published noise library
  computes it, so the noise is asymmetric), the quintic fade and a final factor 0.4.
- ``grow_contours``: the radial construction. Vertices start on an ellipse; every contour
  moves each vertex along its ray by ``step - noise`` (x and y with independent noise), so the
  displacement accumulates over contours. The result is whole-pixel vertex positions of every
  contour, ready for ``cv2.polylines``, plus one grey level per contour.

All randomness comes from one SplitMix64 stream per sample (see ``fdgen.kernels.rng``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fdgen.kernels.rng import next_u64, unit53

# Ken Perlin's reference permutation of 0..255 (improved noise, 2002), repeated once.
_PERM_256 = (
    151, 160, 137, 91, 90, 15, 131, 13, 201, 95, 96, 53, 194, 233, 7, 225, 140, 36, 103, 30,
    69, 142, 8, 99, 37, 240, 21, 10, 23, 190, 6, 148, 247, 120, 234, 75, 0, 26, 197, 62, 94,
    252, 219, 203, 117, 35, 11, 32, 57, 177, 33, 88, 237, 149, 56, 87, 174, 20, 125, 136, 171,
    168, 68, 175, 74, 165, 71, 134, 139, 48, 27, 166, 77, 146, 158, 231, 83, 111, 229, 122, 60,
    211, 133, 230, 220, 105, 92, 41, 55, 46, 245, 40, 244, 102, 143, 54, 65, 25, 63, 161, 1,
    216, 80, 73, 209, 76, 132, 187, 208, 89, 18, 169, 200, 196, 135, 130, 116, 188, 159, 86,
    164, 100, 109, 198, 173, 186, 3, 64, 52, 217, 226, 250, 124, 123, 5, 202, 38, 147, 118,
    126, 255, 82, 85, 212, 207, 206, 59, 227, 47, 16, 58, 17, 182, 189, 28, 42, 223, 183, 170,
    213, 119, 248, 152, 2, 44, 154, 163, 70, 221, 153, 101, 155, 167, 43, 172, 9, 129, 22, 39,
    253, 19, 98, 108, 110, 79, 113, 224, 232, 178, 185, 112, 104, 218, 246, 97, 228, 251, 34,
    242, 193, 238, 210, 144, 12, 191, 179, 162, 241, 81, 51, 145, 235, 249, 14, 239, 107, 49,
    192, 214, 31, 181, 199, 106, 157, 184, 84, 204, 176, 115, 121, 50, 45, 127, 4, 150, 254,
    138, 236, 205, 93, 222, 114, 67, 29, 24, 72, 243, 141, 128, 195, 78, 66, 215, 61, 156, 180,
)  # fmt: skip
PERM = np.array(_PERM_256 * 2, dtype=np.int64)
PERIOD = 1024  # the noise library's default ``repeat``
NOISE_SPAN = 10000.0  # noise is sampled at x ~ U(0, 10000), as the published scripts do

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_F6 = np.float32(6.0)
_F10 = np.float32(10.0)
_F15 = np.float32(15.0)
_F04 = np.float32(0.4)
_FM1 = np.float32(-1.0)
_TWO_PI = 2.0 * math.pi


@njit(inline="always")
def _grad(h, x):
    g = np.float32(h & 7) + _F1
    if h & 8:
        g = _FM1
    return g * x


@njit(cache=True)
def perlin1(x):
    """1D Perlin noise at float32 ``x >= 0`` (single-precision arithmetic throughout)."""
    fl = np.float32(math.floor(x))
    i = np.int64(fl) % PERIOD
    ii = (i + 1) % PERIOD
    i &= 255
    ii &= 255
    f = np.float32(x - fl)
    fade = f * f * f * (f * (f * _F6 - _F15) + _F10)
    a = _grad(PERM[i], f)
    b = _grad(PERM[ii], f - _F1)
    return (a + fade * (b - a)) * _F04


@njit(cache=True)
def perlin1_array(xs, out):
    """``perlin1`` of every float32 in ``xs`` into ``out`` (for tests and inspection)."""
    for k in range(xs.shape[0]):
        out[k] = perlin1(xs[k])


@njit(inline="always")
def _noise_sample(state):
    """One noise value at a uniform random position in [0, NOISE_SPAN) (cast to float32)."""
    state, bits = next_u64(state)
    return state, np.float64(perlin1(np.float32(unit53(bits) * NOISE_SPAN)))


@njit(cache=True)
def uniform(state, low, high):
    """(new state, uniform double in [low, high))."""
    state, bits = next_u64(state)
    return state, low + (high - low) * unit53(bits)


@njit(cache=True)
def randint(state, low, high):
    """(new state, integer uniform in [low, high], both ends included)."""
    state, bits = next_u64(state)
    return state, low + np.int64(math.floor(unit53(bits) * (high - low + 1)))


@njit(cache=True)
def grow_contours(
    state, radius, oval_x, oval_y, centre_x, centre_y, amp, offset, step, sines, scale, pts, grays
):
    """Build every contour of one instance; return the new stream state.

    ``pts`` is (contours, vertices, 2) int32 and receives the pixel positions (x, y) of each
    contour's vertices: round(scale * (centre + position)). ``grays`` (contours,) receives the
    grey level of each contour, uniform in 0..255.

    Vertex v sits on the ray at angle theta_v = 2 pi v / vertices, starting at
    (cos theta_v * radius * oval_x, sin theta_v * radius * oval_y). Contour k first draws its
    grey level, then the noise of all vertices for x, then for y:
    ``n = perlin1(U(0, 10000)) * amp - offset - sines[v]``, and moves
    ``x -= cos theta_v * (n_x - step)``, ``y -= sin theta_v * (n_y - step)``.
    """
    contours = pts.shape[0]
    n = pts.shape[1]
    angle = _TWO_PI / n
    cos_t = np.empty(n)
    sin_t = np.empty(n)
    xs = np.empty(n)
    ys = np.empty(n)
    noise_x = np.empty(n)
    for v in range(n):
        t = angle * v
        cos_t[v] = math.cos(t)
        sin_t[v] = math.sin(t)
        xs[v] = cos_t[v] * radius * oval_x
        ys[v] = sin_t[v] * radius * oval_y
    for k in range(contours):
        state, gray = randint(state, 0, 255)
        grays[k] = gray
        for v in range(n):
            state, p = _noise_sample(state)
            noise_x[v] = p * amp - offset - sines[v]
        for v in range(n):
            state, p = _noise_sample(state)
            noise_y = p * amp - offset - sines[v]
            xs[v] -= cos_t[v] * (noise_x[v] - step)
            ys[v] -= sin_t[v] * (noise_y - step)
            pts[k, v, 0] = np.int32(math.floor((xs[v] + centre_x) * scale + 0.5))
            pts[k, v, 1] = np.int32(math.floor((ys[v] + centre_y) * scale + 0.5))
    return state


@njit(cache=True)
def sine_terms(n, n1, n2):
    """0.5 sin(n1 theta_v) + 0.5 sin(n2 theta_v) for the VisualAtom vertices."""
    angle = _TWO_PI / n
    out = np.empty(n)
    for v in range(n):
        t = angle * v
        out[v] = 0.5 * math.sin(t * n1) + 0.5 * math.sin(t * n2)
    return out
