"""SVD fractals (Anderson & Farrell, WACV 2022): the sampler's invariants, the density kernel,
the draw modes and byte-identical shards whatever the worker count, read back with webdataset."""

from __future__ import annotations

import numpy as np
import pytest
import webdataset as wds
import yaml

from fdgen.families import get_family
from fdgen.families import svdfractal as sf
from fdgen.kernels import svd as ks
from tiny_shards import cli

RENDER = ["--instances", "3", "--size", "48", "--points", "3000", "--samples-per-shard", "4"]


def _read(folder):
    urls = sorted(str(p) for p in folder.glob("shard-*.tar"))
    return list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("rgb8"))


def _search(tmp_path, *args):
    db = tmp_path / "db"
    result = cli("search", "--type", "svdfractal", "--workers", "1", "--out", db, *args)
    assert result.exit_code == 0, result.output
    return db


def _check_system(params: np.ndarray) -> None:
    """The published constraints, checked with numpy's SVD of the maps read back."""
    n = len(params)
    linear = params[:, :4].reshape(n, 2, 2)
    sv = np.linalg.svd(linear, compute_uv=False)  # descending: s1 >= s2 >= 0
    assert np.all(sv <= 1 + 1e-12), sv  # every map contractive
    alpha = float((sv[:, 0] + 2 * sv[:, 1]).sum())
    assert (5 + n) / 2 - 1e-9 <= alpha <= (6 + n) / 2 + 1e-9, (n, alpha)
    assert np.all(np.abs(params[:, 4:6]) <= 1)
    dets = np.abs(np.linalg.det(linear))
    assert np.allclose(params[:, 6], dets / dets.sum(), rtol=1e-12, atol=0)


def test_search_writes_contractive_systems_in_the_fractaldb_format(tmp_path):
    db = _search(tmp_path, "--categories", "40", "--seed", "5")
    meta = yaml.safe_load((db / "db.yaml").read_text())
    assert meta["type"] == "svdfractal" and meta["categories"] == 40
    assert meta["candidates_tried"] == 40  # no filter: every candidate is kept
    files = sorted((db / "categories").glob("*.csv"))
    assert [f.name for f in files] == [f"{k:05d}.csv" for k in range(40)]
    for f in files:
        rows = [line.split(",") for line in f.read_text().splitlines()]
        assert all(len(r) == 7 for r in rows)  # a, b, c, d, e, f, p
        _check_system(np.array(rows, dtype=float))


def test_sampler_invariants_and_map_count_distribution():
    family = get_family("svdfractal")
    settings = family.SearchSettings(categories=1, seed=2, maps_min=2, maps_max=4)
    systems = [c.params for c in family.evaluate_candidates(settings, (0, 1500))]
    for params in systems:
        _check_system(params)
    counts = np.bincount([len(p) for p in systems], minlength=5)[2:]
    # Uniform over {2, 3, 4}: chi-square with 2 degrees of freedom, p = 0.001 bound 13.8.
    chi2 = float(((counts - 500) ** 2 / 500).sum())
    assert chi2 < 13.8, counts
    # The sigma-factor fills its range: its spread is that of a uniform on a unit-half range.
    alphas = [
        (np.linalg.svd(p[:, :4].reshape(-1, 2, 2), compute_uv=False) * [1, 2]).sum() - len(p) / 2
        for p in systems
    ]
    assert min(alphas) < 2.5 + 0.01 and max(alphas) > 3.0 - 0.01
    assert abs(np.std(alphas) - 0.5 / np.sqrt(12)) < 0.01


@pytest.mark.parametrize("n_maps", [2, 3, 5, 9])
def test_singular_values_meet_the_constraints_for_any_map_count(n_maps):
    rng = np.random.default_rng(n_maps)
    lo, hi = sf.sigma_range(n_maps)
    for alpha in np.linspace(lo, hi, 25):
        s = sf.singular_values(rng, n_maps, alpha)
        assert np.all(s >= 0) and np.all(s[:, 1] <= s[:, 0]) and np.all(s <= 1)
        assert abs((s[:, 0] + 2 * s[:, 1]).sum() - alpha) < 1e-12


@pytest.mark.parametrize("shape", [(40, 30), (6, 5)])  # (6, 5): fewer border cells than spill
def test_density_matches_numpy_histogram_of_patches(shape):
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(-1.2, 1.2, 5000), rng.uniform(-1.1, 1.3, 5000)
    xs[:3], ys[3:6] = [np.nan, np.inf, -1e300], [np.nan, -np.inf, 1e300]  # never drawn
    mask = 0b101100011
    h, w = shape
    counts = np.zeros(shape, np.int32)
    top = ks.density(xs, ys, -1.0, -1.0, 1.0, 1.0, mask, counts)
    want = np.zeros(shape, np.int64)
    finite = np.isfinite(xs) & np.isfinite(ys) & (np.abs(xs) < 10) & (np.abs(ys) < 10)
    cols = np.floor((xs[finite] + 1.0) * (w - 1) / 2.0).astype(int)
    rows = np.floor((ys[finite] + 1.0) * (h - 1) / 2.0).astype(int)
    for cell in range(9):
        if mask >> (8 - cell) & 1:
            r, c = rows + cell // 3 - 1, cols + cell % 3 - 1
            inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            np.add.at(want, (r[inside], c[inside]), 1)
    assert np.array_equal(counts, want) and top == want.max()


@pytest.mark.parametrize("draw", ["gray", "color", "color_background"])
def test_fused_flips_equal_flipping_the_rendered_fractal(draw):
    """The colouring that writes the flipped image equals colouring, then numpy's flips."""
    systems = [c.params for c in get_family("svdfractal").evaluate_candidates(
        sf.SearchSettings(), (0, 4))]  # fmt: skip
    renderer = sf.Renderer(sf.RenderSettings(size=40, points=4000, draw=draw))
    seen = set()
    for instance in range(24):
        params = systems[instance % 4]
        draws = sf.Draws.draw(np.random.default_rng([5, instance]), params)
        seen.add((draws.transpose, draws.flip_v, draws.flip_h))
        fused = renderer.oriented_fractal(params, draws, 40)
        want = renderer.flipped(renderer.fractal(params, draws, 40, window=True), draws)
        assert np.array_equal(fused, want[:, :, 0] if renderer.gray else want)
    assert len(seen) >= 6  # most of the 8 orientations were exercised


def test_skipping_the_noise_draws_leaves_the_generator_where_drawing_them_does():
    for seed in range(20):
        drawn, skipped = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 1])
        for rng in (drawn, skipped):  # the draws before them, including 32-bit ones
            sf.Draws.draw(rng, np.eye(2, 7))
        sf.Renderer.noise_draws(drawn)
        sf.Renderer.skip_noise_draws(skipped)
        assert drawn.bit_generator.state == skipped.bit_generator.state
        assert drawn.random() == skipped.random()


def test_gray_mode_is_grey_on_black_and_modes_share_their_geometry(tmp_path):
    db = _search(tmp_path, "--categories", "2")
    images = {}
    for mode in sf.DRAW_MODES:
        out = tmp_path / mode
        result = cli("render", "--db", db, "--shards", out, "--workers", "1", *RENDER,
                     "--draw", mode)  # fmt: skip
        assert result.exit_code == 0, result.output
        assert cli("verify", out, "--decode").exit_code == 0
        images[mode] = {s["__key__"]: s for s in _read(out)}
    assert len(images["gray"]) == 6
    for key, sample in images["gray"].items():
        gray, color = sample["png"], images["color"][key]["png"]
        assert gray.shape == color.shape == (48, 48, 3)
        blurred = sample["json"]["blurred"]
        assert blurred == images["color"][key]["json"]["blurred"]
        if not blurred:  # unblurred: exactly 0 and 127, where the colour image is drawn
            assert set(np.unique(gray)) <= {0, 127}
            assert np.array_equal(gray[..., 0] > 0, color.any(axis=2))
        assert int(sample["cls"]) == sample["json"]["category"]
    backgrounds = [s["png"] for s in images["color_background"].values()]
    assert all((img.sum(axis=2) == 0).mean() < 0.05 for img in backgrounds)  # textured


def test_shards_are_identical_whatever_the_worker_count(tmp_path):
    db = _search(tmp_path, "--categories", "3")
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        args = ["render", "--db", db, "--shards", out, *RENDER]
        result = cli(*args, "--workers", workers)
        assert result.exit_code == 0, result.output
        outs.append({p.name: p.read_bytes() for p in sorted(out.glob("shard-*.tar"))})
    assert len(outs[0]) == 3 and outs[0] == outs[1]
    samples = _read(tmp_path / "w1")
    keys = sorted(s["__key__"] for s in samples)
    assert keys == [f"c{c:06d}_i{i:06d}" for c in range(3) for i in range(3)]
    assert len({s["png"].tobytes() for s in samples}) == 9  # every instance differs


def test_one_map_is_refused_with_the_allowed_range(tmp_path):
    result = cli("search", "--type", "svdfractal", "--maps", "1-3", "--out", tmp_path / "db")
    assert result.exit_code != 0
    assert result.output.startswith("Error: --maps") and "2 <= MIN" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "db").exists()
