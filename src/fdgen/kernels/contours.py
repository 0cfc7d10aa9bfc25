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

from fdgen.kernels.rng import GAMMA, mix64, next_u64, unit53

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
def _gradient(h):
    return _FM1 if h & 8 else np.float32(h & 7) + _F1


@njit
def perlin1(x):
    """1D Perlin noise at float32 ``x >= 0`` (single-precision arithmetic throughout)."""
    fl = np.float32(math.floor(x))
    i = np.int64(fl) & 255  # the period, 1024, is a multiple of the table's 256
    f = np.float32(x - fl)
    fade = f * f * f * (f * (f * _F6 - _F15) + _F10)
    a = _gradient(PERM[i]) * f
    b = _gradient(PERM[(i + 1) & 255]) * (f - _F1)
    return (a + fade * (b - a)) * _F04


@njit(cache=True)
def perlin1_array(xs, out):
    """``perlin1`` of every float32 in ``xs`` into ``out`` (for tests and inspection)."""
    for k in range(xs.shape[0]):
        out[k] = perlin1(xs[k])


@njit
def noise_samples(state, out):
    """Fill ``out`` with noise at uniform random positions in [0, NOISE_SPAN), the k-th from
    the k-th SplitMix64 draw after ``state``; return the state after them all.

    Each draw is computed from ``state + (k + 1) * gamma`` directly (what ``next_u64`` would
    reach after k + 1 steps), so the loop has no carried dependency and vectorises.
    """
    for k in range(out.shape[0]):
        bits = mix64(state + np.uint64(k + 1) * GAMMA)
        out[k] = np.float64(perlin1(np.float32(unit53(bits) * NOISE_SPAN)))
    return state + np.uint64(out.shape[0]) * GAMMA


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
    noise = np.empty(2 * n)
    for v in range(n):
        t = angle * v
        cos_t[v] = math.cos(t)
        sin_t[v] = math.sin(t)
        xs[v] = cos_t[v] * radius * oval_x
        ys[v] = sin_t[v] * radius * oval_y
    for k in range(contours):
        state, gray = randint(state, 0, 255)
        grays[k] = gray
        state = noise_samples(state, noise)  # x noise of every vertex, then y noise
        for v in range(n):
            noise_x = noise[v] * amp - offset - sines[v]
            noise_y = noise[n + v] * amp - offset - sines[v]
            xs[v] -= cos_t[v] * (noise_x - step)
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


# --- drawing: 1-pixel 8-connected closed polylines, pixel for pixel as OpenCV draws them ---------
#
# ``cv2.polylines(image, [pts], True, value, 1, cv2.LINE_8)`` with integer vertices draws each
# segment with OpenCV's Bresenham line iterator: a segment with an end outside the image is
# first clipped to it (integer arithmetic, C division truncating toward zero), a segment whose
# end is left of its start is drawn from its left end, and the error term starts at
# dx - 2 dy. Reproducing that here skips one OpenCV call per contour and its per-segment
# set-up; tests compare the two pixel for pixel.


@njit(inline="always")
def _c_div(a, b):
    """Integer division truncating toward zero, as C does."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


@njit(inline="always")
def _outcode(x, y, right, bottom):
    return (x < 0) + (x > right) * 2 + (y < 0) * 4 + (y > bottom) * 8


@njit(cache=True)
def clip_segment(width, height, x1, y1, x2, y2):
    """(visible, x1, y1, x2, y2): the segment clipped to the image, as OpenCV clips it."""
    right = np.int64(width - 1)
    bottom = np.int64(height - 1)
    x1 = np.int64(x1)
    y1 = np.int64(y1)
    x2 = np.int64(x2)
    y2 = np.int64(y2)
    c1 = _outcode(x1, y1, right, bottom)
    c2 = _outcode(x2, y2, right, bottom)
    if (c1 & c2) == 0 and (c1 | c2) != 0:
        if c1 & 12:
            a = np.int64(0) if c1 < 8 else bottom
            x1 += _c_div((a - y1) * (x2 - x1), y2 - y1)
            y1 = a
            c1 = (x1 < 0) + (x1 > right) * 2
        if c2 & 12:
            a = np.int64(0) if c2 < 8 else bottom
            x2 += _c_div((a - y2) * (x2 - x1), y2 - y1)
            y2 = a
            c2 = (x2 < 0) + (x2 > right) * 2
        if (c1 & c2) == 0 and (c1 | c2) != 0:
            if c1:
                a = np.int64(0) if c1 == 1 else right
                y1 += _c_div((a - x1) * (y2 - y1), x2 - x1)
                x1 = a
                c1 = 0
            if c2:
                a = np.int64(0) if c2 == 1 else right
                y2 += _c_div((a - x2) * (y2 - y1), x2 - x1)
                x2 = a
                c2 = 0
    return (c1 | c2) == 0, x1, y1, x2, y2


@njit(inline="always")
def _segment(image, x1, y1, x2, y2, value):
    height, width = image.shape
    if not (0 <= x1 < width and 0 <= x2 < width and 0 <= y1 < height and 0 <= y2 < height):
        visible, x1, y1, x2, y2 = clip_segment(width, height, x1, y1, x2, y2)
        if not visible:
            return
    if x2 < x1:  # drawn from its left end
        x1, x2 = x2, x1
        y1, y2 = y2, y1
    dx = x2 - x1
    dy = y2 - y1
    y_dir = 1
    if dy < 0:
        dy = -dy
        y_dir = -1
    x = x1
    y = y1
    if dy > dx:  # steep: one pixel per row, x advances by the error term
        err = dy - 2 * dx
        for _ in range(dy + 1):
            image[y, x] = value
            if err < 0:
                x += 1
                err += 2 * dy - 2 * dx
            else:
                err -= 2 * dx
            y += y_dir
    else:
        err = dx - 2 * dy
        for _ in range(dx + 1):
            image[y, x] = value
            if err < 0:
                y += y_dir
                err += 2 * dx - 2 * dy
            else:
                err -= 2 * dy
            x += 1


@njit(cache=True)
def draw_closed_polylines(image, pts, values):
    """Draw contour k of ``pts`` (contours, vertices, 2) as a closed 1-pixel 8-connected
    polyline of grey ``values[k]`` into the 2D uint8 ``image``, contours in order."""
    for k in range(pts.shape[0]):
        value = np.uint8(values[k])
        n = pts.shape[1]
        px = np.int64(pts[k, n - 1, 0])
        py = np.int64(pts[k, n - 1, 1])
        for v in range(n):
            x = np.int64(pts[k, v, 0])
            y = np.int64(pts[k, v, 1])
            _segment(image, px, py, x, y, value)
            px = x
            py = y
