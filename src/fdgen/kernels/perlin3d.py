"""Spatiotemporal (x, y, t) gradient noise for Video Perlin Noise.

The noise is Perlin's improved noise (Perlin, SIGGRAPH 2002: quintic fade 6u^5 - 15u^4 +
10u^3, the 12 cube-edge gradients picked by the low 4 bits of a hashed lattice vertex).
Octave ``o`` of a clip with class frequencies (fx, fy, ft) spans ``fx * 2**o`` lattice cells
across its width, ``fy * 2**o`` down its height and ``ft * 2**o`` over its frames: pixel
column ``c`` of ``W`` samples lattice coordinate ``c / W * fx * 2**o + offset`` (rows and
frames alike).

The lattice is not periodic (a periodic lattice of one cell has a single vertex, so every
corner shares one gradient and a class of frequency 1 degenerates to a ramp); a clip neither
tiles nor loops. Each octave hashes lattice vertices through its own permutation of 0..255,
shuffled from the sample's SplitMix64 stream, and is shifted by its own offset in [0, 1) per
axis (so pixel 0 is not a lattice vertex, where gradient noise is 0). Every draw comes from
the one stream of the sample, so a clip depends only on (seed, category, instance).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fdgen.kernels.rng import below_low32, next_u64, unit53

TABLE = 256  # permutation size: lattice cells beyond it repeat the hash (as Perlin's)


@njit(cache=True)
def draw_octaves(state, tables, offsets):
    """Fill ``tables`` (octaves x 256 int64, each a Fisher-Yates shuffle of 0..255) and
    ``offsets`` (octaves x 3, each in [0, 1)) from the stream at ``state``; return the state
    after. Per octave: 255 draws for the shuffle (i = 255 down to 1), then x, y, t offsets."""
    for o in range(tables.shape[0]):
        for i in range(TABLE):
            tables[o, i] = i
        for i in range(TABLE - 1, 0, -1):
            state, bits = next_u64(state)
            j = below_low32(bits, i + 1)
            tables[o, i], tables[o, j] = tables[o, j], tables[o, i]
        for axis in range(3):
            state, bits = next_u64(state)
            offsets[o, axis] = unit53(bits)
    return state


@njit(inline="always")
def _fade(u):
    return u * u * u * (u * (u * 6.0 - 15.0) + 10.0)


@njit(inline="always")
def _lerp(w, a, b):
    return a + w * (b - a)


@njit(inline="always")
def _gradient(h, x, y, z):
    """Dot product of (x, y, z) with cube-edge gradient ``h & 15`` (Perlin 2002)."""
    h = h & 15
    u = x if h < 8 else y
    if h < 4:
        v = y
    elif h == 12 or h == 14:
        v = x
    else:
        v = z
    return (u if (h & 1) == 0 else -u) + (v if (h & 2) == 0 else -v)


@njit(cache=True)
def _axis_cells(n, cells, offset, cell0, cell1, frac, fade):
    """Per sample k of an axis of ``n`` samples: the two lattice cells (hash indices) around
    coordinate k / n * cells + offset, the fraction inside the cell and its fade."""
    mask = TABLE - 1
    for k in range(n):
        coord = k / n * cells + offset
        base = np.floor(coord)
        frac[k] = coord - base
        fade[k] = _fade(frac[k])
        c = np.int64(base)
        cell0[k] = c & mask
        cell1[k] = (c + 1) & mask


@njit(cache=True)
def add_octave(table, px, py, pt, offset, amplitude, out):
    """Add ``amplitude`` times one noise octave (px, py, pt cells across the clip) to ``out``
    (frames x height x width, float64)."""
    frames, height, width = out.shape
    xi0 = np.empty(width, np.int64)
    xi1 = np.empty(width, np.int64)
    xf = np.empty(width)
    xu = np.empty(width)
    yi0 = np.empty(height, np.int64)
    yi1 = np.empty(height, np.int64)
    yf = np.empty(height)
    yu = np.empty(height)
    ti0 = np.empty(frames, np.int64)
    ti1 = np.empty(frames, np.int64)
    tf = np.empty(frames)
    tu = np.empty(frames)
    _axis_cells(width, px, offset[0], xi0, xi1, xf, xu)
    _axis_cells(height, py, offset[1], yi0, yi1, yf, yu)
    _axis_cells(frames, pt, offset[2], ti0, ti1, tf, tu)
    mask = TABLE - 1
    for t in range(frames):
        z, w = tf[t], tu[t]
        for r in range(height):
            y, v = yf[r], yu[r]
            # hash of (x cell, y cell) is table[table[x] + y]; the t cell is added last
            for c in range(width):
                x, u = xf[c], xu[c]
                a = table[xi0[c]]
                b = table[xi1[c]]
                aa = table[(a + yi0[r]) & mask]
                ab = table[(a + yi1[r]) & mask]
                ba = table[(b + yi0[r]) & mask]
                bb = table[(b + yi1[r]) & mask]
                t0, t1 = ti0[t], ti1[t]
                n000 = _gradient(table[(aa + t0) & mask], x, y, z)
                n100 = _gradient(table[(ba + t0) & mask], x - 1.0, y, z)
                n010 = _gradient(table[(ab + t0) & mask], x, y - 1.0, z)
                n110 = _gradient(table[(bb + t0) & mask], x - 1.0, y - 1.0, z)
                n001 = _gradient(table[(aa + t1) & mask], x, y, z - 1.0)
                n101 = _gradient(table[(ba + t1) & mask], x - 1.0, y, z - 1.0)
                n011 = _gradient(table[(ab + t1) & mask], x, y - 1.0, z - 1.0)
                n111 = _gradient(table[(bb + t1) & mask], x - 1.0, y - 1.0, z - 1.0)
                near = _lerp(v, _lerp(u, n000, n100), _lerp(u, n010, n110))
                far = _lerp(v, _lerp(u, n001, n101), _lerp(u, n011, n111))
                out[t, r, c] += amplitude * _lerp(w, near, far)


@njit(cache=True)
def noise_clip(tables, offsets, fx, fy, ft, persistence, out):
    """Fill ``out`` (frames x height x width, float64) with the octave sum: octave o spans
    (fx, fy, ft) * 2**o cells and has amplitude persistence**o."""
    out[:] = 0.0
    amplitude = 1.0
    for o in range(tables.shape[0]):
        scale = np.int64(1) << o
        add_octave(tables[o], fx * scale, fy * scale, ft * scale, offsets[o], amplitude, out)
        amplitude *= persistence


@njit(cache=True)
def to_uint8(noise, out):
    """Stretch a clip's values to 0..255 (its own minimum to 0, maximum to 255, rounded
    half up) into ``out`` (same shape, uint8); a constant clip becomes 0."""
    flat = noise.reshape(noise.size)
    dst = out.reshape(out.size)
    low = flat[0]
    high = flat[0]
    for k in range(flat.size):
        if flat[k] < low:
            low = flat[k]
        if flat[k] > high:
            high = flat[k]
    scale = 255.0 / (high - low) if high > low else 0.0
    for k in range(flat.size):
        dst[k] = np.uint8(np.floor((flat[k] - low) * scale + 0.5))
