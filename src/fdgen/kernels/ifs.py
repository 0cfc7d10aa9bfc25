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


@njit(inline="always", error_model="numpy")
def _diverged(xs, ys, n):
    """Whether any of the n points is non-finite. A step maps a non-finite point to a
    non-finite one (inf * 0 is NaN, and NaN or inf plus anything stays non-finite), so it is
    enough to test the last point: no test on the orbit's hot loop."""
    return not (np.isfinite(xs[n - 1]) and np.isfinite(ys[n - 1]))


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
    for i in range(1, n):
        j = _choose(cum, n_maps, uniforms[i - 1])
        if j < n_maps:
            x, y = _step(maps, j, x, y)
        xs[i] = x
        ys[i] = y
    diverged = _diverged(xs, ys, n)
    return _kept_points(xs, ys, n, diverged), diverged


@njit(cache=True, error_model="numpy")
def orbit_with_masks(maps, cum, state, xs, ys, masks):
    """Render orbit: one 64-bit draw per point serves the next map choice (high 32 bits) and
    the point's 3x3 patch mask in 1..511 (low 32 bits). Returns (kept, diverged)."""
    n = xs.shape[0]
    n_maps = maps.shape[0]
    last = n_maps - 1
    x = 0.0
    y = 0.0
    for i in range(n):
        state, bits = next_u64(state)
        xs[i] = x
        ys[i] = y
        masks[i] = 1 + below_low32(bits, 511)
        # The last map takes any remainder of the cumulative sum, so every step moves.
        x, y = _step(maps, _choose(cum, last, unit_high32(bits)), x, y)
    diverged = _diverged(xs, ys, n)
    return _kept_points(xs, ys, n, diverged), diverged


@njit(inline="always", error_model="numpy")
def _to_pixel(v, lo, span, scale, pad):
    """(v - lo) / span * scale + pad, truncated, as numpy's uint16 cast in the original.

    Finite orbits land in [pad, pad + scale] by construction; the clamp only catches the NaN
    of an overflowing span (a nearly divergent orbit) and a zero span.
    """
    t = ((v - lo) / span) * scale + pad
    t = t if t >= pad else pad  # selects, not branches: the loops over points vectorise
    top = pad + scale
    return np.int64(top if t > top else t)


@njit(inline="always", error_model="numpy")
def _frame(xs, ys, kept, size, pad):
    """Offsets, spans, scale and pad that map the first ``kept`` points to pixels (both axes in
    one pass: four independent min/max chains instead of two passes of two)."""
    xlo = xhi = xs[0]
    ylo = yhi = ys[0]
    for i in range(1, kept):
        x = xs[i]
        y = ys[i]
        xlo = x if x < xlo else xlo
        xhi = x if x > xhi else xhi
        ylo = y if y < ylo else ylo
        yhi = y if y > yhi else yhi
    return xlo, xhi - xlo, ylo, yhi - ylo, np.float64(size - 2 * pad), np.float64(pad)


@njit(inline="always", error_model="numpy")
def _pixels(vs, kept, lo, span, scale, pad, out):
    """out[i] = _to_pixel(vs[i]) for the first ``kept`` points (a loop the compiler vectorises)."""
    for i in range(kept):
        out[i] = _to_pixel(vs[i], lo, span, scale, pad)


@njit(cache=True, error_model="numpy")
def filled_pixels(xs, ys, kept, size, pad, canvas, cols, rows):
    """Number of distinct pixels hit by the first ``kept`` points (one pixel per point).

    ``canvas`` is a (size, size) uint8 scratch array, cleared here; ``cols`` and ``rows`` are
    int32 scratch arrays of at least ``kept`` entries.
    """
    canvas[:, :] = 0
    if kept == 0:
        return 0
    xlo, xspan, ylo, yspan, scale, fpad = _frame(xs, ys, kept, size, pad)
    # the pixel mapping first, for all points (vectorised), then the scattered raster updates
    _pixels(xs, kept, xlo, xspan, scale, fpad, cols)
    _pixels(ys, kept, ylo, yspan, scale, fpad, rows)
    count = 0
    for i in range(kept):
        c = cols[i]
        r = rows[i]
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


# --- two-level rasters, one bit per pixel ---------------------------------------------------
# Row r of a bit raster is words[r, :] (uint64); pixel c is bit 63 - c % 64 of word c // 64, so
# the big-endian bytes of a row are the row of a 1-bit PNG (leftmost pixel in the top bit).

_U1 = np.uint64(1)
_U3 = np.uint64(3)
_U61 = np.uint64(61)
_U7 = np.uint64(7)
_UFF = np.uint64(0xFF)
# bit-reversed bytes, for left-right flips
_REVERSED = np.array([int(f"{b:08b}"[::-1], 2) for b in range(256)], np.uint8)


def bit_words(size: int) -> int:
    """uint64 words per row of a ``size``-pixel bit raster."""
    return (size + 63) // 64


@njit(cache=True, error_model="numpy")
def draw_patches_bits(xs, ys, masks, kept, size, pad, cols, rows, words):
    """``draw_patches_gray`` on a bit raster (set pixel = 1): three 3-bit row updates per point
    instead of nine byte stores, the pixel mapping done first for all points (into the int32
    scratch ``cols`` and ``rows``). ``words`` is (size, bit_words(size)) uint64, cleared here."""
    words[:, :] = 0
    if kept == 0:
        return
    xlo, xspan, ylo, yspan, scale, fpad = _frame(xs, ys, kept, size, pad)
    _pixels(xs, kept, xlo, xspan, scale, fpad, cols)
    _pixels(ys, kept, ylo, yspan, scale, fpad, rows)
    # flat, unsigned indices (no negative-index wrap-around); a patch's three rows share one
    # word offset and one shift, and only 3 columns in 64 straddle two words
    flat = words.reshape(-1)
    stride = np.uint64(words.shape[1])
    for i in range(kept):
        m = np.uint64(masks[i])
        c = np.uint64(cols[i]) + _U1
        top = (np.uint64(rows[i]) + _U1) * stride + (c >> np.uint64(6))
        cells = ((m >> np.uint64(6)) & _U7, (m >> _U3) & _U7, m & _U7)
        o = c & np.uint64(63)
        if o <= _U61:
            shift = _U61 - o
            keep = ~(_U7 << shift)
            for k in range(3):
                j = top + np.uint64(k) * stride
                flat[j] = (flat[j] & keep) | (cells[k] << shift)
        else:  # 1 or 2 of the three pixels spill into the next word
            spill = o - _U61
            up = np.uint64(64) - spill
            low = (_U1 << spill) - _U1
            keep, keep_next = ~(_U7 >> spill), ~(low << up)
            for k in range(3):
                j = top + np.uint64(k) * stride
                flat[j] = (flat[j] & keep) | (cells[k] >> spill)
                flat[j + _U1] = (flat[j + _U1] & keep_next) | ((cells[k] & low) << up)


@njit(inline="always", error_model="numpy")
def _byte_at(words, r, p):
    """Pixels p .. p + 7 of row r as one byte, pixel p in the top bit (p may be -7 .. -1:
    pixels left of the row are 0)."""
    if p < 0:
        return (words[r, 0] >> np.uint64(56 - p)) & _UFF
    w = p >> 6
    o = p & 63
    if o <= 56:
        return (words[r, w] >> np.uint64(56 - o)) & _UFF
    return ((words[r, w] << np.uint64(o - 56)) | (words[r, w + 1] >> np.uint64(120 - o))) & _UFF


@njit(cache=True, error_model="numpy")
def png_rows_from_bits(words, size, flip, out):
    """Rows of the 1-bit PNG of a bit raster, each with filter byte 0, into ``out``
    ((size, 1 + ceil(size / 8)) uint8), oriented as ``fractal2d.oriented``: y turned up, then
    flip 0 as is, 1 top-bottom, 2 left-right, 3 both. Pixels past the width are 0."""
    n_bytes = out.shape[1] - 1
    mirror = flip >= 2
    for k in range(size):
        r = size - 1 - k if flip == 0 or flip == 2 else k
        out[k, 0] = 0
        for j in range(n_bytes):
            if mirror:
                # output pixels 8j .. 8j + 7 are input pixels size - 1 - 8j down to size - 8 - 8j
                b = _REVERSED[_byte_at(words, r, size - 8 - 8 * j)]
            else:
                b = _byte_at(words, r, 8 * j)
            out[k, 1 + j] = b


@njit(cache=True, error_model="numpy")
def unpack_bits(words, size, value, image):
    """The (size, size) uint8 image of a bit raster: ``value`` where a bit is set, else 0."""
    for r in range(size):
        for c in range(size):
            image[r, c] = value * ((words[r, c >> 6] >> np.uint64(63 - (c & 63))) & _U1)
