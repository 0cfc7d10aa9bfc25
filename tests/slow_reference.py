"""Slow, plain-Python versions of the FractalDB steps, written from REFERENCE.md section 1.

They share no code with the numba kernels: the tests compare the two bit for bit.
"""

from __future__ import annotations

import numpy as np

MASK64 = (1 << 64) - 1


def splitmix64(state: int) -> tuple[int, int]:
    """SplitMix64 (Steele, Lea & Flood 2014): next state and 64 output bits."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def legacy_orbit(params: np.ndarray, uniforms: np.ndarray, points: int) -> list[tuple]:
    """The original's orbit: start at (0, 0), step i takes the first map with u <= cum p."""
    cum, acc = [], 0.0
    for p in params[:, 6]:
        acc += float(p)
        cum.append(acc)
    x = y = 0.0
    out = [(x, y)]
    for i in range(points - 1):
        for j, c in enumerate(cum):
            if uniforms[i] <= c:
                a, b, cc, d, e, f = (float(v) for v in params[j, :6])
                x, y = x * a + y * b + e, x * cc + y * d + f
                break
        out.append((x, y))
    return out


def to_pixels(values: np.ndarray, size: int, pad: int) -> np.ndarray:
    """The original's scaling: shift to min 0, divide by the range, scale, pad, cast uint16."""
    values = np.array(values, dtype=np.float64)
    if values.min() < 0:
        values = values - values.min()
    return np.uint16(values / (values.max() - values.min()) * float(size - 2 * pad) + float(pad))


def fill_rate(orbit: list[tuple], size: int = 512, pad: int = 6) -> float:
    """Non-zero pixels of the one-pixel-per-point raster over all pixels."""
    xs = to_pixels([p[0] for p in orbit], size, pad)
    ys = to_pixels([p[1] for p in orbit], size, pad)
    return len(set(zip(xs.tolist(), ys.tolist()))) / (size * size)


def render_variant(
    params: np.ndarray, factors: np.ndarray, state: int, points: int, size: int, pad: int
) -> np.ndarray:
    """fdgen's patch_gray rendering of one variant, step by step (y down, before flips).

    One 64-bit draw per point: the high 32 bits choose the next map (u = high / 2**32, first map
    with u <= cum p, the last map otherwise), the low 32 bits give the mask 1 + low * 511 >> 32.
    """
    maps = params[:, :6] * factors
    cum = np.cumsum(params[:, 6]).tolist()
    x = y = 0.0
    pts, masks = [], []
    for _ in range(points):
        state, bits = splitmix64(state)
        pts.append((x, y))
        masks.append(1 + (((bits & 0xFFFFFFFF) * 511) >> 32))
        u = (bits >> 32) / 2**32
        j = next((t for t in range(len(cum) - 1) if u <= cum[t]), len(cum) - 1)
        a, b, c, d, e, f = maps[j].tolist()
        x, y = x * a + y * b + e, x * c + y * d + f
    px = to_pixels([p[0] for p in pts], size, pad)
    py = to_pixels([p[1] for p in pts], size, pad)
    image = np.zeros((size, size), np.uint8)
    for cx, cy, m in zip(px.tolist(), py.tolist(), masks):
        block = np.array([int(ch) for ch in format(m, "09b")], np.uint8).reshape(3, 3) * 127
        image[cy + 1 : cy + 4, cx + 1 : cx + 4] = block
    return image
