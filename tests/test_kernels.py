"""The numba kernels against the slow plain-Python versions in slow_reference.py."""

from __future__ import annotations

import numpy as np
import pytest

from fdgen.encode import encode_image
from fdgen.families import fractal2d, get_family
from fdgen.families.base import Group
from fdgen.kernels import ifs
from fdgen.kernels.rng import sample_state

from slow_reference import (
    fill_rate,
    legacy_orbit,
    render_variant,
    splitmix64,
    to_pixels,
)


def _pixel_scratch(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty(n, np.int32), np.empty(n, np.int32)


def test_splitmix_stream_matches_reference():
    state = int(sample_state(7, 3))
    out = np.empty(50)
    ifs.fill_uniform(np.uint64(state), out)
    expected = []
    for _ in range(50):
        state, bits = splitmix64(state)
        expected.append((bits >> 11) / 2**53)
    assert out.tolist() == expected


@pytest.mark.parametrize("category", [0, 1, 7, 42])
def test_legacy_orbit_and_fill_rate_match_reference(fractaldb_1k, category):
    params = np.loadtxt(fractaldb_1k / f"{category:05d}.csv", delimiter=",", ndmin=2)
    points = 4000
    uniforms = np.random.RandomState(category).random(points)
    xs, ys = np.empty(points), np.empty(points)
    kept, diverged = ifs.orbit_from_uniforms(
        np.ascontiguousarray(params[:, :6]), np.cumsum(params[:, 6]), uniforms, xs, ys
    )
    expected = legacy_orbit(params, uniforms, points)
    assert (kept, diverged) == (points, False)
    assert list(zip(xs.tolist(), ys.tolist())) == expected
    canvas = np.zeros((512, 512), np.uint8)
    filled = ifs.filled_pixels(xs, ys, kept, 512, 6, canvas, *_pixel_scratch(kept))
    assert filled / 512**2 == fill_rate(expected)
    assert filled == int(canvas.sum())


def test_point_drawing_uses_the_reference_pixel_mapping():
    rng = np.random.default_rng(5)
    xs, ys = rng.normal(size=1000), rng.uniform(-3, 8, size=1000)
    xs[0] = ys[0] = 0.0
    image = np.zeros((362, 362, 1), np.uint8)
    ifs.draw_points(xs, ys, 1000, 362, 6, np.array([[9]], np.uint8), image)
    expected = np.zeros((362, 362), np.uint8)
    expected[to_pixels(ys, 362, 6), to_pixels(xs, 362, 6)] = 9
    assert np.array_equal(image[:, :, 0], expected)
    cols = np.flatnonzero(expected.any(axis=0))
    assert cols.min() == 6 and cols.max() == 356


def test_divergent_orbit_is_truncated_not_crashing():
    # One map that doubles x: the orbit overflows after ~1030 steps.
    params = np.array([[2.0, 0.0, 0.0, 0.5, 1.0, 0.0, 1.0]])
    points = 5000
    xs, ys = np.empty(points), np.empty(points)
    kept, diverged = ifs.orbit_from_uniforms(
        params[:, :6].copy(), np.array([1.0]), np.zeros(points), xs, ys
    )
    first_bad = next(i for i in range(points) if not np.isfinite(xs[i]))
    assert diverged
    assert kept == first_bad - ifs.DIVERGENCE_MARGIN
    canvas = np.zeros((64, 64), np.uint8)
    assert 0 < ifs.filled_pixels(xs, ys, kept, 64, 2, canvas, *_pixel_scratch(kept)) <= kept


@pytest.mark.parametrize(
    "maps",
    [
        [[0.5, 0.0, 0.0, 3.0, 0.0, 1.0]],  # y overflows to inf, x stays finite for a while
        [[0.0, 2.0, 0.0, 3.0, 0.0, 1.0], [0.0, 0.0, 0.0, 3.0, 0.0, 1.0]],  # 0 * inf = NaN
        [[0.5, 0.0, 0.0, 0.5, 1.0, 1.0], [0.5, 0.1, 0.0, 0.5, 0.0, 0.0]],  # stays finite
    ],
)
def test_render_orbit_divergence_is_the_first_non_finite_point(maps):
    """The render orbit tests only its last point for divergence; kept and diverged must still
    be those of a scan of every point for the first non-finite one."""
    maps = np.array(maps)
    cum = np.cumsum(np.full(len(maps), 1 / len(maps)))
    points = 3000
    xs, ys, masks = np.empty(points), np.empty(points), np.empty(points, np.uint16)
    kept, diverged = ifs.orbit_with_masks(maps, cum, sample_state(1, 2), xs, ys, masks)
    bad = np.flatnonzero(~(np.isfinite(xs) & np.isfinite(ys)))
    if len(bad):
        assert diverged and kept == max(0, bad[0] - ifs.DIVERGENCE_MARGIN)
        assert len(bad) == points - bad[0]  # once non-finite, never finite again
    else:
        assert not diverged and kept == points


def test_render_variant_matches_slow_reference(fractaldb_1k):
    params = np.loadtxt(fractaldb_1k / "00003.csv", delimiter=",", ndmin=2)
    settings = fractal2d.RenderSettings(size=96, pad=6, points=3000, seed=11)
    renderer = fractal2d.Renderer(settings)
    for variant in (0, 7, 33):
        image, diverged = renderer.render_variant(params, 3, variant)
        factors = fractal2d.weight_table(0.4)[variant % 25]
        state = int(sample_state(11, 3, variant))
        expected = render_variant(params, factors, state, 3000, 96, 6)
        assert not diverged
        assert np.array_equal(image[:, :, 0], expected)
        assert set(np.unique(image)) <= {0, 127}


def test_weight_tables_match_published(tmp_path):
    from conftest import WEIGHTS

    for path in sorted(WEIGHTS.glob("weights_*.csv")):
        delta = float(path.stem.split("_")[1])
        published = np.loadtxt(path, delimiter=",")
        assert np.array_equal(fractal2d.weight_table(delta), published), path.name


def test_probabilities_are_normalised_determinants():
    maps = np.array([[0.5, 0.1, 0.2, 0.4, 0, 0], [1.0, 0.0, 0.0, -0.25, 0.3, 0.1]])
    params = fractal2d.with_probabilities(maps)
    dets = np.abs(maps[:, 0] * maps[:, 3] - maps[:, 1] * maps[:, 2])
    assert np.allclose(params[:, 6], dets / dets.sum())


@pytest.mark.parametrize("size", [64, 101, 130, 362])
def test_bit_raster_pngs_are_the_reference_pixels_and_the_byte_raster_pngs(fractaldb_1k, size):
    """patch_gray draws on a bit raster and encodes from its rows; sizes that are not multiples
    of 8 or 64 put patches across word boundaries and leave padding bits in the last byte."""
    params = np.loadtxt(fractaldb_1k / "00002.csv", delimiter=",", ndmin=2)
    family = get_family("fractal")
    renderer = family.renderer(fractal2d.RenderSettings(size=size, pad=4, points=4000, seed=5))
    for group in (0, 9):
        factors = fractal2d.weight_table(0.4)[group % 25]
        raster = render_variant(params, factors, int(sample_state(5, 2, group)), 4000, size, 4)
        up = raster[::-1]
        flips = [up, up[::-1], up[:, ::-1], up[::-1, ::-1]]
        instances = list(range(4 * group, 4 * group + 4))
        for sample in family.render_group(renderer, Group(2, group, instances, params), "png"):
            expected = flips[sample.meta["flip"]]
            assert np.array_equal(sample.value("png")[:, :, 0], expected)
            png = sample.encoded()["png"]
            assert png == encode_image(np.ascontiguousarray(expected), "png", 127)
