"""Numba kernels for 2D iterated function systems: orbits and rasterisation.

Arithmetic follows the original FractalDB scripts operation for operation (no fast-math, no
fused multiply-add), so that the legacy search reproduces the published categories bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fdgen.kernels.rng import below_low32, next_u64, unit53, unit_high32

# The original drops the finite points just before the first non-finite one as well.
DIVERGENCE_MARGIN = 100


@njit(cache=True, error_model="numpy")
def fill_uniform(state, out):
    """Fill ``out`` with uniforms in [0, 1) from a SplitMix64 stream; return the new state."""
    for i in range(out.shape[0]):
        state, bits = next_u64(state)
        out[i] = unit53(bits)
    return state


@njit(inline="always", error_model="numpy")
def _choose(cum, n_maps, u):
    """Index of the first map whose cumulative probability is >= u (n_maps if none).

    Branch-free: counts the cumulative probabilities below u.
    """
    j = 0
    for t in range(n_maps):
        j += u > cum[t]
    return j


@njit(inline="always", error_model="numpy")
def _step(maps, j, x, y):
    nx = x * maps[j, 0] + y * maps[j, 1] + maps[j, 4]
    ny = x * maps[j, 2] + y * maps[j, 3] + maps[j, 5]
    return nx, ny


@njit(inline="always", error_model="numpy")
def _kept_after_divergence(first_bad):
    return max(0, first_bad - DIVERGENCE_MARGIN)


@njit(cache=True, error_model="numpy")
def _kept_points(xs, ys, n, diverged):
    """Points to keep: all, or those before the first non-finite one less DIVERGENCE_MARGIN."""
    if not diverged:
        return n
    for i in range(n):
        if not (np.isfinite(xs[i]) and np.isfinite(ys[i])):
            return _kept_after_divergence(i)
    return n


@njit(cache=True, error_model="numpy")
def orbit_from_uniforms(maps, cum, uniforms, xs, ys):
    """Orbit from (0, 0) driven by ``uniforms`` (step i uses uniforms[i - 1]).

    Fills xs[:n], ys[:n] with n = len(xs) points, the start point included; a step whose
    uniform exceeds every cumulative probability repeats the point, as in the original.
    Returns (kept, diverged): kept is the number of leading points to use (see _kept_points).
    """
    n = xs.shape[0]
    n_maps = maps.shape[0]
    x = 0.0
    y = 0.0
    xs[0] = x
    ys[0] = y
    finite = True
    for i in range(1, n):
        j = _choose(cum, n_maps, uniforms[i - 1])
        if j < n_maps:
            x, y = _step(maps, j, x, y)
        xs[i] = x
        ys[i] = y
        finite &= np.isfinite(x) & np.isfinite(y)
    return _kept_points(xs, ys, n, not finite), not finite


@njit(cache=True, error_model="numpy")
def orbit_with_masks(maps, cum, state, xs, ys, masks):
    """Render orbit: one 64-bit draw per point serves the next map choice (high 32 bits) and
    the point's 3x3 patch mask in 1..511 (low 32 bits). Returns (kept, diverged)."""
    n = xs.shape[0]
    n_maps = maps.shape[0]
    last = n_maps - 1
    x = 0.0
    y = 0.0
    finite = True
    for i in range(n):
        state, bits = next_u64(state)
        xs[i] = x
        ys[i] = y
        finite &= np.isfinite(x) & np.isfinite(y)
        masks[i] = 1 + below_low32(bits, 511)
        # The last map takes any remainder of the cumulative sum, so every step moves.
        x, y = _step(maps, _choose(cum, last, unit_high32(bits)), x, y)
    diverged = not finite
    return _kept_points(xs, ys, n, diverged), diverged


@njit(inline="always", error_model="numpy")
def _axis_transform(vs, kept):
    lo = vs[0]
    hi = vs[0]
    for i in range(1, kept):
        v = vs[i]
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    return lo, hi - lo


@njit(inline="always", error_model="numpy")
def _to_pixel(v, lo, span, scale, pad):
    """(v - lo) / span * scale + pad, truncated, as numpy's uint16 cast in the original.

    Finite orbits land in [pad, pad + scale] by construction; the clamp only catches the NaN
    of an overflowing span (a nearly divergent orbit) and a zero span.
    """
    t = ((v - lo) / span) * scale + pad
    if not t >= pad:
        t = pad
    elif t > pad + scale:
        t = pad + scale
    return np.int64(t)


@njit(inline="always", error_model="numpy")
def _frame(xs, ys, kept, size, pad):
    """Offsets, spans, scale and pad that map the first ``kept`` points to pixels."""
    xlo, xspan = _axis_transform(xs, kept)
    ylo, yspan = _axis_transform(ys, kept)
    return xlo, xspan, ylo, yspan, np.float64(size - 2 * pad), np.float64(pad)


@njit(cache=True, error_model="numpy")
def filled_pixels(xs, ys, kept, size, pad, canvas):
    """Number of distinct pixels hit by the first ``kept`` points (one pixel per point).

    ``canvas`` is a (size, size) uint8 scratch array; it is cleared here.
    """
    canvas[:, :] = 0
    if kept == 0:
        return 0
    xlo, xspan, ylo, yspan, scale, fpad = _frame(xs, ys, kept, size, pad)
    count = 0
    for i in range(kept):
        c = _to_pixel(xs[i], xlo, xspan, scale, fpad)
        r = _to_pixel(ys[i], ylo, yspan, scale, fpad)
        count += 1 - canvas[r, c]  # branch-free: new pixels are unpredictable
        canvas[r, c] = 1
    return count


@njit(cache=True, error_model="numpy")
def draw_points(xs, ys, kept, size, pad, colors, image):
    """One pixel per point; point i takes colors[i % len(colors)] (one value per channel)."""
    if kept == 0:
        return
    xlo, xspan, ylo, yspan, scale, fpad = _frame(xs, ys, kept, size, pad)
    n_colors = colors.shape[0]
    for i in range(kept):
        c = _to_pixel(xs[i], xlo, xspan, scale, fpad)
        r = _to_pixel(ys[i], ylo, yspan, scale, fpad)
        image[r, c, :] = colors[i % n_colors]


@njit(cache=True, error_model="numpy")
def draw_patches(xs, ys, masks, kept, size, pad, colors, image):
    """Paste a 3x3 binary mask per point with its top-left at (x + 1, y + 1), overwriting.

    Mask bit 8 is the top-left cell and bit 0 the bottom-right (row-major, as the 9-digit
    binary string of the mask). Set cells take the point's colour; clear cells become 0.
    """
    if kept == 0:
        return
    xlo, xspan, ylo, yspan, scale, fpad = _frame(xs, ys, kept, size, pad)
    n_colors = colors.shape[0]
    for i in range(kept):
        color = colors[i % n_colors]
        m = masks[i]
        c0 = _to_pixel(xs[i], xlo, xspan, scale, fpad) + 1
        r0 = _to_pixel(ys[i], ylo, yspan, scale, fpad) + 1
        for cell in range(9):
            on = (m >> (8 - cell)) & 1
            image[r0 + cell // 3, c0 + cell % 3, :] = color * on


@njit(cache=True, error_model="numpy")
def draw_patches_gray(xs, ys, masks, kept, size, pad, value, image):
    """``draw_patches`` for one grey value on a 2D image, unrolled (the default, hot path)."""
    if kept == 0:
        return
    xlo, xspan, ylo, yspan, scale, fpad = _frame(xs, ys, kept, size, pad)
    for i in range(kept):
        m = masks[i]
        c = _to_pixel(xs[i], xlo, xspan, scale, fpad) + 1
        r = _to_pixel(ys[i], ylo, yspan, scale, fpad) + 1
        image[r, c] = value * ((m >> 8) & 1)
        image[r, c + 1] = value * ((m >> 7) & 1)
        image[r, c + 2] = value * ((m >> 6) & 1)
        image[r + 1, c] = value * ((m >> 5) & 1)
        image[r + 1, c + 1] = value * ((m >> 4) & 1)
        image[r + 1, c + 2] = value * ((m >> 3) & 1)
        image[r + 2, c] = value * ((m >> 2) & 1)
        image[r + 2, c + 1] = value * ((m >> 1) & 1)
        image[r + 2, c + 2] = value * (m & 1)
