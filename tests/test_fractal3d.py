"""3D fractals (MV-FractalDB / ExFractalDB / OFDB-3D): search, instance table, projection,
determinism and shards, checked against slow independent re-implementations and properties."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from click.testing import CliRunner

from fdgen.cli import main
from fdgen.database import load_database
from fdgen.errors import FdgenError
from fdgen.families import fractal3d as f3
from fdgen.families import get_family
from fdgen.rendering import render_dataset
from fdgen.searching import run_search

M64 = (1 << 64) - 1

# --- slow references ------------------------------------------------------------------------


def splitmix_uniforms(state: int):
    """SplitMix64 (Steele et al.) in pure Python: uniforms in [0, 1) from the top 53 bits."""
    while True:
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        yield (z >> 11) / 2.0**53


def slow_candidate(seed: int, index: int, points: int, maps_min=2, maps_max=7):
    """Candidate ``index`` drawn, iterated, normalised and tested in plain Python/numpy.

    Returns (params with p, smallest axis variance or None when the cloud is not finite).
    """
    state = int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])
    gen = splitmix_uniforms(state)
    u = [next(gen) for _ in range(1 + 12 * maps_max)]
    n = maps_min + int(u[0] * (maps_max - maps_min + 1))
    maps = np.array(u[1 : 1 + 12 * n]).reshape(n, 12) * 2 - 1
    dets = np.array([abs(np.linalg.det(m[:9].reshape(3, 3))) for m in maps])
    p = dets / dets.sum()
    cum = np.cumsum(p)
    x = y = z = 0.0
    cloud = []
    for _ in range(points):
        j = min(int(np.searchsorted(cum, next(gen), side="left")), n - 1)
        a, b, c, d, e, f, g, h, i, tj, tk, tl = maps[j].tolist()
        x, y, z = a * x + b * y + c * z + tj, d * x + e * y + f * z + tk, g * x + h * y + i * z + tl
        cloud.append((x, y, z))
    cloud = np.array(cloud)
    params = np.column_stack([maps, p])
    if not np.all(np.isfinite(cloud)):
        return params, None
    lo, hi = cloud.min(), cloud.max()
    cloud = (cloud - lo) / (hi - lo) * 2 - 1
    cloud -= cloud.mean(axis=0)
    return params, float(cloud.var(axis=0).min())


def gl_project(pts: np.ndarray, azimuth: float, elevation: float, size: int) -> np.ndarray:
    """Reference render: gluLookAt + gluPerspective matrices, perspective divide, viewport."""
    a, e = math.radians(azimuth), math.radians(elevation)
    eye = 4.0 * np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    fwd = -eye / np.linalg.norm(eye)
    side = np.cross(fwd, [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side)
    up = np.cross(side, fwd)
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = side, up, -fwd
    view[:3, 3] = -view[:3, :3] @ eye
    near, far, f = 0.01, 100.0, 1 / math.tan(math.radians(45) / 2)
    proj = np.array(
        [
            [f, 0, 0, 0],
            [0, f, 0, 0],
            [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)],
            [0, 0, -1, 0],
        ]
    )
    clip = np.column_stack([pts, np.ones(len(pts))]) @ (proj @ view).T
    ndc = clip[:, :3] / clip[:, 3:4]
    col = np.floor((ndc[:, 0] + 1) * size / 2)
    row = np.floor((1 - ndc[:, 1]) * size / 2)
    ok = (clip[:, 3] > 0) & (col >= 0) & (col < size) & (row >= 0) & (row < size)
    image = np.zeros((size, size), np.uint8)
    image[row[ok].astype(int), col[ok].astype(int)] = 255
    return image


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def db3(tmp_path_factory) -> Path:
    """A small searched 3D database (6 categories)."""
    out = tmp_path_factory.mktemp("db3") / "db"
    settings = f3.SearchSettings(categories=6)
    run_search(get_family("fractal3d"), settings, out, workers=1, show_progress=False)
    return out


SMALL = dict(size=64, points=3000)


# --- search ---------------------------------------------------------------------------------


def test_search_matches_slow_reference_and_filter():
    settings = f3.SearchSettings(categories=1)
    kinds = {"accepted": [], "rejected": [], "diverged": []}
    for k in range(400):
        cand = f3.evaluate(settings, k)
        kind = "diverged" if cand.diverged else "accepted" if cand.accepted else "rejected"
        kinds[kind].append(cand)
    assert all(kinds.values()), {k: len(v) for k, v in kinds.items()}
    for cand in [v[0] for v in kinds.values()] + kinds["accepted"][1:3]:
        params, low = slow_candidate(0, cand.index, settings.points)
        np.testing.assert_allclose(cand.params, params, rtol=1e-12, atol=1e-15)
        if low is None:
            assert cand.diverged and not cand.accepted
            continue
        assert cand.score == pytest.approx(low, rel=1e-6)
        assert cand.accepted == (low > settings.variance)
    # A stricter threshold rejects a cloud the default accepted.
    best = kinds["accepted"][0]
    strict = f3.SearchSettings(variance=best.score + 1e-3)
    assert not f3.evaluate(strict, best.index).accepted


def test_closed_form_determinant_is_within_rounding_of_the_exact_one():
    rng = np.random.default_rng(11)
    matrices = list(rng.uniform(-1, 1, (300, 3, 3)))
    matrices += [rng.integers(-9, 10, (3, 3)).astype(float) for _ in range(50)]  # exact
    matrices.append(np.array([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]]))  # singular: exactly 0
    for m in matrices:
        exact = Fraction(0)
        for (i, j, k), sign in (((0, 1, 2), 1), ((1, 2, 0), 1), ((2, 0, 1), 1)) + (
            ((0, 2, 1), -1), ((2, 1, 0), -1), ((1, 0, 2), -1),
        ):  # fmt: skip
            exact += sign * Fraction(m[0, i]) * Fraction(m[1, j]) * Fraction(m[2, k])
        got = f3.det3(*m.reshape(-1).tolist())
        # Each of the 14 roundings errs by at most half an ulp of a term bounded by 6 max|m|^3.
        assert abs(Fraction(got) - exact) <= 14 * 2.0**-53 * 6 * float(np.abs(m).max()) ** 3
        if np.all(m == np.round(m)):
            assert Fraction(got) == exact


def test_searched_categories_satisfy_filter(db3):
    db = load_database(db3)
    assert db.type == "fractal3d" and len(db) == 6
    settings = f3.SearchSettings()
    for params in db.params:
        assert params.shape[1] == 13 and 2 <= len(params) <= 7
        assert np.all(np.abs(params[:, :12]) <= 1) and params[:, 12].sum() == pytest.approx(1)
        dets = np.abs(np.linalg.det(params[:, :9].reshape(-1, 3, 3)))
        np.testing.assert_allclose(params[:, 12], dets / dets.sum(), rtol=1e-12)
    # The recorded scores are the clouds' smallest variances, all above the threshold.
    assert all(v > settings.variance for v in db.meta["variances"]) and "fill_rates" not in db.meta


def test_search_parallel_is_deterministic(tmp_path):
    settings = f3.SearchSettings(categories=4)
    run_search(get_family("fractal3d"), settings, tmp_path / "a", workers=1, show_progress=False)
    run_search(get_family("fractal3d"), settings, tmp_path / "b", workers=2, show_progress=False)
    files_a = sorted((tmp_path / "a" / "categories").iterdir())
    files_b = sorted((tmp_path / "b" / "categories").iterdir())
    assert [p.read_bytes() for p in files_a] == [p.read_bytes() for p in files_b]


def test_read_category_errors(tmp_path):
    bad = tmp_path / "00000.csv"
    bad.write_text("1,2,3\n")
    with pytest.raises(FdgenError, match="line 1: expected 13"):
        f3.read_category(bad)
    params = f3.with_probabilities(np.full((2, 12), 0.5) * [[1], [-1]])
    good = tmp_path / "00001.csv"
    good.write_text(f3.format_category(params))
    np.testing.assert_array_equal(f3.read_category(good), params)


# --- instance models and views --------------------------------------------------------------


def test_instance_table():
    table = f3.model_table()
    assert len(table) == 145 and table[0] == (-1, 1.0)
    factors = sorted({f for _, f in table[1:]})
    assert factors == [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6]
    assert len(set(table[1:])) == 144 and {p for p, _ in table[1:]} == set(range(12))
    params = f3.with_probabilities(np.random.default_rng(3).uniform(-1, 1, (3, 12)))
    for model, (param, factor) in enumerate(table):
        maps = f3.model_params(params, model)
        expected = params[:, :12].copy()
        if param >= 0:
            expected[:, param] *= factor
        np.testing.assert_array_equal(maps, expected)
    settings = f3.RenderSettings(models=5)
    fields = [f3.instance_fields(settings, i) for i in range(145 * 12)]
    assert [f["view"] for f in fields[:24]] == list(range(12)) * 2
    assert [fields[i]["model"] for i in range(0, 145 * 12, 12)][:7] == [0, 1, 2, 3, 4, 0, 1]
    assert f3.RenderSettings().instances == 1740
    with pytest.raises(FdgenError, match="--models"):
        f3.RenderSettings(models=146)


def test_view_angles_fixed_and_random():
    fixed = f3.RenderSettings(views="fixed", view_jitter=5.0)
    for i in range(24):
        az, el = f3.view_angles(fixed, 3, i)
        assert abs(az - (30 * (i % 12) + 30)) <= 5 and abs(el) <= 5
        assert (az, el) == f3.view_angles(fixed, 3, i)  # seeded per sample
    exact = f3.RenderSettings(view_jitter=0.0)
    assert [f3.view_angles(exact, 0, i)[0] for i in range(12)] == [30.0 * k for k in range(1, 13)]
    rand = f3.RenderSettings(views="random")
    angles = np.array([f3.view_angles(rand, 0, i) for i in range(400)])
    assert len({tuple(a) for a in angles}) == 400
    assert angles[:, 0].min() >= 0 and angles[:, 0].max() < 360
    # Uniform directions on the sphere: sin(elevation) is uniform in [-1, 1].
    assert abs(np.sin(np.radians(angles[:, 1])).mean()) < 0.1


def test_projection_matches_gl_reference(db3):
    db = load_database(db3)
    renderer = f3.Renderer(f3.RenderSettings(size=224, points=20000))
    pts, _ = renderer.cloud(db.params[0], 0, 0)
    for az, el in [(30.0, 0.0), (137.5, 12.0), (250.0, -40.0), (10.0, 75.0)]:
        image, drawn = renderer.project(pts, f3.rotation(az, el))
        ref = gl_project(pts, az, el, 224)
        assert drawn > 0.9 * len(pts)
        assert np.count_nonzero(image != ref) <= 2, (az, el)


def test_views_of_one_model_differ_only_by_rotation(db3):
    db = load_database(db3)
    settings = f3.RenderSettings(points=5000, output="pointcloud")
    clouds = list(f3.Renderer(settings).render_group(db.params[1], 1, 0, list(range(12))))
    base = f3.Renderer(settings).cloud(db.params[1], 1, 0)[0]
    norms = np.linalg.norm(base, axis=1)
    for instance, cloud, fields in clouds:
        assert cloud.dtype == np.float32 and cloud.shape == (5000, 3)
        assert fields["view"] == instance and fields["model"] == 0
        np.testing.assert_allclose(np.linalg.norm(cloud, axis=1), norms, rtol=1e-5, atol=1e-6)
        # The best linear map from the model cloud to this view is a proper rotation.
        rot, *_ = np.linalg.lstsq(base, cloud.astype(np.float64), rcond=None)
        np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-5)
        assert np.linalg.det(rot) == pytest.approx(1, abs=1e-5)
    images = f3.Renderer(f3.RenderSettings(points=5000))
    drawn, centres = [], []
    for _, image, fields in images.render_group(db.params[1], 1, 0, list(range(12))):
        drawn.append(fields["points_drawn"])
        rows, cols = np.nonzero(image)
        centres.append((rows.mean(), cols.mean()))
    assert drawn == [5000] * 12  # every point lands in the frame from every view
    assert np.all(np.abs(np.array(centres) - 112) < 0.15 * 224)


def test_diverging_model_keeps_finite_head():
    params = f3.with_probabilities(np.array([[0.9, 0, 0, 0, 0.9, 0, 0, 0, 0.9, 1, 1, 1]] * 2))
    params[1, :9] = np.diag([1.1, 1.1, 1.1]).ravel()  # expands; with factor 1.6, diverges
    renderer = f3.Renderer(f3.RenderSettings(points=20000))
    model = 1 + 12 * 0 + f3.FACTORS.index(1.6)
    pts, diverged = renderer.cloud(params, 0, model)
    assert diverged and 0 < len(pts) < 20000
    assert np.all(np.isfinite(pts)) and np.abs(pts).max() <= 2


# --- shards ---------------------------------------------------------------------------------


def _render(db3, out, workers, **kw):
    settings = f3.RenderSettings(instances=24, models=3, **SMALL, **kw)
    db = load_database(db3)
    return render_dataset(db, settings, out, "png", samples_per_shard=36, workers=workers)


def test_render_deterministic_across_workers(db3, tmp_path):
    a = _render(db3, tmp_path / "a", 1, views="random")
    b = _render(db3, tmp_path / "b", 2, views="random")
    assert a["num_samples"] == 6 * 24
    for j in range(a["num_shards"]):
        name = f"shard-{j:06d}"
        side_a = json.loads((tmp_path / "a" / f"{name}.json").read_text())
        side_b = json.loads((tmp_path / "b" / f"{name}.json").read_text())
        assert side_a["sha256"] == side_b["sha256"]
        assert (tmp_path / "a" / f"{name}.tar").read_bytes() == (
            tmp_path / "b" / f"{name}.tar"
        ).read_bytes()
    assert b["num_shards"] == a["num_shards"]


def test_shards_read_back_with_webdataset(db3, tmp_path):
    manifest = _render(db3, tmp_path / "img", 1)
    urls = [str(tmp_path / "img" / f"shard-{j:06d}.tar") for j in range(manifest["num_shards"])]
    ds = wds.WebDataset(urls, shardshuffle=False).decode("l8").to_tuple("png", "cls", "json")
    db = load_database(db3)
    renderer = f3.Renderer(f3.RenderSettings(instances=24, models=3, **SMALL))
    seen = set()
    for image, cls, meta in ds:
        assert int(cls) == meta["category"]
        assert meta["view"] == meta["instance"] % 12 and meta["model"] == meta["instance"] // 12
        assert {"azimuth", "elevation"} <= set(meta)
        group = meta["instance"] // 12
        expected = dict(
            (i, img.copy())
            for i, img, _ in renderer.render_group(
                db.params[meta["category"]], meta["category"], group, [meta["instance"]]
            )
        )[meta["instance"]]
        np.testing.assert_array_equal(image, expected)
        seen.add((meta["category"], meta["instance"]))
    assert len(seen) == 6 * 24

    manifest = _render(db3, tmp_path / "pc", 1, output="pointcloud")
    urls = [str(tmp_path / "pc" / f"shard-{j:06d}.tar") for j in range(manifest["num_shards"])]
    count = 0
    for cloud, meta in wds.WebDataset(urls, shardshuffle=False).decode().to_tuple("npy", "json"):
        assert cloud.dtype == np.float32 and cloud.shape == (SMALL["points"], 3)
        assert np.all(np.abs(cloud) < 3) and meta["view"] == meta["instance"] % 12
        count += 1
    assert count == 6 * 24


# --- command line ---------------------------------------------------------------------------


def _cli(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_search_render_and_errors(db3, tmp_path):
    result = _cli("search", "--type", "fractal3d", "--variance", "1.5", "--out", str(tmp_path))
    assert result.exit_code != 0 and "--variance" in result.output
    result = _cli("search", "--type", "fractal3d", "--fill-rate", "0.3", "--out", str(tmp_path))
    assert result.exit_code != 0 and "--fill-rate does not apply" in result.output
    result = _cli("render", "--db", str(db3), "--draw", "point_gray", "--shards", str(tmp_path))
    assert result.exit_code != 0 and "--draw does not apply" in result.output
    out = tmp_path / "sh"
    args = ["render", "--db", str(db3), "--shards", str(out), "--workers", "1", "--size", "32"]
    result = _cli(*args, "--points", "500", "--instances", "12", "--models", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "_info.json").read_text())["splits"]["train"]["num_samples"] == 72
    preview = tmp_path / "preview.png"
    result = _cli("preview", "--db", str(db3), "--out", str(preview), "--categories", "2")
    assert result.exit_code == 0 and preview.stat().st_size > 0


# --- presets --------------------------------------------------------------------------------


def test_3d_presets_are_valid():
    from fdgen.catalog import all_presets

    presets = all_presets()
    expect = {
        "MV-FractalDB-1k": (1000, "fixed", 145, 1740),
        "ExFractalDB-1k": (1000, "random", 145, 1000),
        "ExFractalDB-21k": (21000, "random", 145, 1000),
        "OFDB-3d-1k": (1000, "fixed", 1, 12),
    }
    for name, (categories, views, models, instances) in expect.items():
        cfg = presets[name]
        assert cfg["type"] == "fractal3d"
        search = f3.SearchSettings(**cfg["search"])
        render = f3.RenderSettings(**cfg["render"])
        assert search.categories == categories and search.variance == 0.05
        assert (render.views, render.models, render.instances) == (views, models, instances)
        assert render.size == 224


def test_ofdb_2d_preset_renders_weight_row_0(tmp_path, fractaldb_1k):
    import cv2

    from fdgen.catalog import get_preset
    from fdgen.families import fractal2d

    cfg = get_preset("OFDB-1k")
    assert cfg["type"] == "fractal" and cfg["search"] == get_preset("FractalDB-1k")["search"]
    settings = fractal2d.RenderSettings(**cfg["render"])
    assert settings.instances == 1 and fractal2d.instance_fields(0)["weight_row"] == 0
    np.testing.assert_allclose(fractal2d.weight_table(settings.weight_delta)[0], [0.2] + [1] * 5)
    folder = tmp_path / "ofdb"  # db.yaml records the preset, so render takes its settings
    made = _cli("search", "--preset", "OFDB-1k", "--categories", "2", "--out", str(folder))
    assert made.exit_code == 0, made.output
    for name in ("00000.csv", "00001.csv"):
        published = np.loadtxt(fractaldb_1k / name, delimiter=",")
        assert np.array_equal(np.loadtxt(folder / "categories" / name, delimiter=","), published)
    out = tmp_path / "sh"
    result = _cli("render", "--db", str(folder), "--shards", str(out), "--workers", "1")
    assert result.exit_code == 0, result.output
    samples = list(wds.WebDataset(str(out / "shard-000000.tar"), shardshuffle=False))
    assert len(samples) == 2
    for sample in samples:
        meta = json.loads(sample["json"])
        assert (meta["instance"], meta["weight_row"], meta["count"], meta["flip"]) == (0, 0, 0, 0)
        image = cv2.imdecode(np.frombuffer(sample["png"], np.uint8), cv2.IMREAD_GRAYSCALE)
        assert image.shape == (362, 362) and set(np.unique(image)) == {0, 127}
