"""Numba kernels of the SVD fractals (Anderson & Farrell, WACV 2022): orbit and its extent,
point density in a view window, HSV colouring and diamond-square noise.

Every kernel draws from a SplitMix64 stream passed in and returns the advanced state, so a
sample's pixels depend only on the state it was given (see ``fdgen.kernels.rng``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fdgen.kernels.rng import below_low32, next_u64, unit53, unit_high32


@njit(cache=True, error_model="numpy")
def orbit(maps, cum, x0, y0, state, xs, ys):
    """Fill xs, ys with the orbit from (x0, y0): point i is the start moved by i maps, each
    chosen by the high 32 bits of one draw against ``cum`` (the last map takes any remainder).
    Returns (new state, xmin, ymin, xmax, ymax of the points); the bounds are kept on the way,
    off the orbit's dependency chain, instead of in a second pass."""
    n_maps = maps.shape[0]
    last = n_maps - 1
    x = x0
    y = y0
    xlo = xhi = ylo = yhi = 0.0
    for i in range(xs.shape[0]):
        state, bits = next_u64(state)
        u = unit_high32(bits)
        j = 0
        for t in range(last):
            j += u > cum[t]
        nx = x * maps[j, 0] + y * maps[j, 1] + maps[j, 4]
        y = x * maps[j, 2] + y * maps[j, 3] + maps[j, 5]
        x = nx
        xs[i] = x
        ys[i] = y
        if i == 0:
            xlo = xhi = x
            ylo = yhi = y
        else:
            xlo = min(xlo, x)
            xhi = max(xhi, x)
            ylo = min(ylo, y)
            yhi = max(yhi, y)
    return state, xlo, ylo, xhi, yhi


HIST_CHUNK = 2048  # points whose histogram cells are computed before they are counted
SPILL_CELLS = 8  # cells that count the points whose patch cannot touch the image


def histogram_scratch(h: int, w: int) -> np.ndarray:
    """The scratch of ``density_into`` for an h x w image: (h + 3) x (w + 2) int32, the
    (h + 2) x (w + 2) histogram with its border, then one row whose first cells count the
    points that cannot touch the image (spread over SPILL_CELLS so that their adds do not
    wait on each other)."""
    return np.zeros((h + 3, w + 2), np.int32)


@njit(cache=True, error_model="numpy")
def density(xs, ys, x0, y0, x1, y1, mask, counts):
    """Set ``counts`` (rows = y) to the number of points whose 3x3 ``mask`` (bit 8 top-left ..
    bit 0 bottom-right), centred on the point's pixel in the window [x0, x1] x [y0, y1],
    covers each cell; cells outside the image are dropped. Returns the largest count."""
    hits = np.empty((counts.shape[0] + 3, counts.shape[1] + 2), np.int32)
    return density_into(xs, ys, x0, y0, x1, y1, mask, counts, hits)


@njit(cache=True, error_model="numpy")
def density_into(xs, ys, x0, y0, x1, y1, mask, counts, hits):
    """``density`` with caller-owned scratch ``hits`` from ``histogram_scratch``.

    The points are counted per pixel there (with a one-pixel border for patches that reach
    into the image from outside), then ``counts`` is that histogram convolved with the mask,
    in integers: the same sums as adding the patch per point, at one add per point and 9
    multiply-adds by 0 or 1 per pixel. The cells are computed a chunk of points at a time
    without branches, so that loop vectorises and a window that cuts the orbit costs no
    mispredicted branches; then the chunk's points are counted."""
    h = counts.shape[0]
    w = counts.shape[1]
    stride = w + 2
    spill = (h + 2) * stride
    xspan = x1 - x0 if x1 > x0 else 1.0
    yspan = y1 - y0 if y1 > y0 else 1.0
    xscale = (w - 1) / xspan
    yscale = (h - 1) / yspan
    last_row = np.float64(h)
    last_col = np.float64(w)
    spread = SPILL_CELLS - 1 if stride >= SPILL_CELLS else 0  # the spill row holds stride cells
    flat = hits.reshape(hits.size)
    flat[:] = 0
    cells = np.empty(HIST_CHUNK, np.int32)
    n = xs.shape[0]
    for start in range(0, n, HIST_CHUNK):
        m = min(HIST_CHUNK, n - start)
        xc = xs[start : start + m]  # views indexed from 0: the loop vectorises
        yc = ys[start : start + m]
        for j in range(m):
            fc = np.floor((xc[j] - x0) * xscale)
            fr = np.floor((yc[j] - y0) * yscale)
            # -1 <= r <= h and -1 <= c <= w (false for NaN): the patch can touch the image
            inside = (fr >= -1.0) & (fr <= last_row) & (fc >= -1.0) & (fc <= last_col)
            r = np.int32(fr if inside else -1.0) + 1
            c = np.int32(fc if inside else -1.0) + 1
            cells[j] = r * stride + c if inside else spill + (j & spread)
        for j in range(m):
            flat[cells[j]] += 1
    # cell (dr, dc) of the patch of the point at hits[r + 1, c + 1] lands on counts[r + dr,
    # c + dc]: counts[r, c] sums hits[r + 1 - dr, c + 1 - dc] over the mask's cells (patch
    # cell k = 3 (dr + 1) + dc + 1; a tap is 0 or 1, so the sum is exactly the masked one).
    taps = np.empty(9, np.int32)
    for cell in range(9):
        taps[cell] = (mask >> (8 - cell)) & 1
    top = 0
    for r in range(h):
        row0 = hits[r + 2]  # the histogram rows that patch rows 0 (dr = -1), 1, 2 reach r from
        row1 = hits[r + 1]
        row2 = hits[r]
        out = counts[r]
        for c in range(w):
            total = (
                taps[0] * row0[c + 2] + taps[1] * row0[c + 1] + taps[2] * row0[c]
                + taps[3] * row1[c + 2] + taps[4] * row1[c + 1] + taps[5] * row1[c]
                + taps[6] * row2[c + 2] + taps[7] * row2[c + 1] + taps[8] * row2[c]
            )  # fmt: skip
            out[c] = total
            top = max(top, total)
    return top


@njit(inline="always", error_model="numpy")
def _hsv_to_rgb(h, s, v):
    """RGB in [0, 1] of hue h in [0, 1), saturation s and value v in [0, 1]."""
    h6 = h * 6.0
    sector = np.int64(h6) % 6
    f = h6 - np.floor(h6)
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    if sector == 0:
        return v, t, p
    if sector == 1:
        return q, v, p
    if sector == 2:
        return p, v, t
    if sector == 3:
        return p, q, v
    if sector == 4:
        return t, p, v
    return v, p, q


@njit(inline="always", error_model="numpy")
def _byte(x):
    return np.uint8(min(255.0, max(0.0, x * 255.0 + 0.5)))


@njit(cache=True, error_model="numpy")
def colorize_density(counts, top, hue0, sat, val, image):
    """Colour the drawn pixels of ``counts`` into RGB ``image``: density level
    L = floor(255 * count / top) has hue (L / 256 + hue0) mod 1 and the one saturation and
    value; pixels with count 0 become black (0, 0, 0)."""
    lut = np.empty((256, 3), np.uint8)
    for level in range(256):
        h = level / 256.0 + hue0
        red, green, blue = _hsv_to_rgb(h - np.floor(h), sat, val)
        lut[level, 0] = _byte(red)
        lut[level, 1] = _byte(green)
        lut[level, 2] = _byte(blue)
    scale = 255.0 / top
    for r in range(counts.shape[0]):
        for c in range(counts.shape[1]):
            k = counts[r, c]
            if k == 0:
                image[r, c, 0] = 0
                image[r, c, 1] = 0
                image[r, c, 2] = 0
            else:
                level = min(255, np.int64(k * scale))
                image[r, c, 0] = lut[level, 0]
                image[r, c, 1] = lut[level, 1]
                image[r, c, 2] = lut[level, 2]


@njit(cache=True, error_model="numpy")
def binarize(counts, value, image):
    """``value`` where counts > 0, else 0 (2D image)."""
    for r in range(counts.shape[0]):
        for c in range(counts.shape[1]):
            image[r, c] = value if counts[r, c] > 0 else 0


@njit(inline="always", error_model="numpy")
def _source(r, c, last, transpose, flip_v, flip_h):
    """The pixel of the unflipped image that ``orient`` puts at (r, c)."""
    rr = last - r if flip_v else r
    cc = last - c if flip_h else c
    return (cc, rr) if transpose else (rr, cc)


@njit(cache=True, error_model="numpy")
def binarize_oriented(counts, value, transpose, flip_v, flip_h, image):
    """``binarize`` of square ``counts`` into the 2D ``image``, oriented as ``orient`` does:
    the same pixels as binarize, then orient, in one pass."""
    last = counts.shape[0] - 1
    for r in range(image.shape[0]):
        for c in range(image.shape[1]):
            sr, sc = _source(r, c, last, transpose, flip_v, flip_h)
            image[r, c] = value if counts[sr, sc] > 0 else 0


@njit(cache=True, error_model="numpy")
def colorize_oriented(counts, top, hue0, sat, val, transpose, flip_v, flip_h, image):
    """``colorize_density`` of square ``counts`` into RGB ``image``, oriented as ``orient``
    does: the same pixels as colorize_density, then orient, in one pass. Entry 0 of the
    colour table is black for count 0, so the pixel loop has no branch."""
    lut = np.empty((257, 3), np.uint8)
    lut[0, :] = 0
    for level in range(256):
        h = level / 256.0 + hue0
        red, green, blue = _hsv_to_rgb(h - np.floor(h), sat, val)
        lut[level + 1, 0] = _byte(red)
        lut[level + 1, 1] = _byte(green)
        lut[level + 1, 2] = _byte(blue)
    scale = 255.0 / top
    last = counts.shape[0] - 1
    for r in range(image.shape[0]):
        for c in range(image.shape[1]):
            sr, sc = _source(r, c, last, transpose, flip_v, flip_h)
            k = counts[sr, sc]
            entry = min(255, np.int64(k * scale)) + 1 if k != 0 else 0
            image[r, c, 0] = lut[entry, 0]
            image[r, c, 1] = lut[entry, 1]
            image[r, c, 2] = lut[entry, 2]


@njit(inline="always", error_model="numpy")
def _signed(state, m):
    state, bits = next_u64(state)
    return state, (2.0 * unit53(bits) - 1.0) * m


@njit(cache=True, error_model="numpy")
def diamond_square(levels, decay, state, grid):
    """Diamond-square noise on the (2**levels + 1)^2 ``grid``: random corners in [0, 1), then
    at level k every new point is the mean of its 4 neighbours (wrapping at the border) plus
    U(-m, m), m = 0.5 * exp(decay * (1 - k)). Returns the new state."""
    s = grid.shape[0]
    last = s - 1
    for r, c in ((0, 0), (0, last), (last, 0), (last, last)):
        state, bits = next_u64(state)
        grid[r, c] = unit53(bits)
    for k in range(1, levels + 1):
        m = 0.5 * np.exp(decay * (1 - k))
        half = s // (2**k)
        step = 2 * half
        for r in range(half, s, step):  # diamond: centres of the squares
            for c in range(half, s, step):
                mean = 0.25 * (
                    grid[r - half, c - half] + grid[r - half, c + half]
                    + grid[r + half, c - half] + grid[r + half, c + half]
                )  # fmt: skip
                state, noise = _signed(state, m)
                grid[r, c] = mean + noise
        for r in range(0, s, half):  # square: edge midpoints
            start = half if (r // half) % 2 == 0 else 0
            for c in range(start, s, step):
                up = grid[r - half, c] if r > 0 else grid[last - half, c]
                down = grid[r + half, c] if r < last else grid[half, c]
                left = grid[r, c - half] if c > 0 else grid[r, last - half]
                right = grid[r, c + half] if c < last else grid[r, half]
                state, noise = _signed(state, m)
                grid[r, c] = 0.25 * (up + down + left + right) + noise
    return state


@njit(cache=True, error_model="numpy")
def colorize_noise(grid, hue, sat, val, image):
    """Colour noise values x into RGB ``image`` (the top-left crop of ``grid``): HSV with hue
    (x * hue[0] + hue[1]) mod 1, saturation and value min(1, x * scale + shift)."""
    for r in range(image.shape[0]):
        for c in range(image.shape[1]):
            x = grid[r, c]
            h = x * hue[0] + hue[1]
            s = min(1.0, max(0.0, x * sat[0] + sat[1]))
            v = min(1.0, max(0.0, x * val[0] + val[1]))
            red, green, blue = _hsv_to_rgb(h - np.floor(h), s, v)
            image[r, c, 0] = _byte(red)
            image[r, c, 1] = _byte(green)
            image[r, c, 2] = _byte(blue)


@njit(cache=True, error_model="numpy")
def orient(image, transpose, flip_v, flip_h, out):
    """Write square ``image`` (n x n x channels) into ``out`` transposed, then flipped
    top-bottom, then left-right where asked: one pass instead of copying a strided view."""
    last = image.shape[0] - 1
    for r in range(out.shape[0]):
        rr = last - r if flip_v else r
        for c in range(out.shape[1]):
            cc = last - c if flip_h else c
            src_r, src_c = (cc, rr) if transpose else (rr, cc)
            for k in range(out.shape[2]):
                out[r, c, k] = image[src_r, src_c, k]


@njit(cache=True, error_model="numpy")
def composite(fg, bg):
    """Copy the pixels of RGB ``fg`` that are not black onto ``bg`` (same shape), in place."""
    for r in range(fg.shape[0]):
        for c in range(fg.shape[1]):
            if fg[r, c, 0] != 0 or fg[r, c, 1] != 0 or fg[r, c, 2] != 0:
                bg[r, c, 0] = fg[r, c, 0]
                bg[r, c, 1] = fg[r, c, 1]
                bg[r, c, 2] = fg[r, c, 2]


@njit(cache=True)
def patch_mask(state):
    """A non-empty 3x3 mask in 1..511 from one draw; returns (state, mask)."""
    state, bits = next_u64(state)
    return state, 1 + below_low32(bits, 511)
