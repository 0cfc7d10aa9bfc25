"""Contour families (RCDB, VisualAtom, SegRCDB): noise, parameters, images, masks, shards."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import webdataset as wds
from click.testing import CliRunner

from fdgen.cli import main
from fdgen.database import load_database
from fdgen.errors import FdgenError
from fdgen.families import contour_base, get_family, rcdb, segrcdb, visualatom
from fdgen.kernels import contours as kc
from fdgen.kernels.rng import sample_state
from fdgen.rendering import render_dataset
from fdgen.searching import run_search

# --- 1D Perlin noise against an independent float32 re-implementation ------------------------

# Ken Perlin's reference permutation, as published with "Improving Noise" (2002).
PERLIN_PERMUTATION = [
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
]  # fmt: skip


def slow_pnoise1(x: float) -> float:
    """The published noise (one octave, period 1024) step by step in numpy float32."""
    f32 = np.float32
    x = f32(x)
    lattice = int(math.floor(float(x)))
    i0 = (lattice % 1024) & 255
    i1 = ((lattice % 1024 + 1) % 1024) & 255
    t = f32(x - f32(lattice))

    def grad(h, d):
        g = f32(-1.0) if h & 8 else f32((h & 7) + 1)
        return f32(g * d)

    fade = f32(t * t * t * f32(t * f32(t * f32(6) - f32(15)) + f32(10)))
    a = grad(PERLIN_PERMUTATION[i0], t)
    b = grad(PERLIN_PERMUTATION[i1], f32(t - f32(1)))
    return float(f32(f32(a + f32(fade * f32(b - a))) * f32(0.4)))


def test_perlin_matches_independent_float32_reimplementation():
    rng = np.random.default_rng(7)
    xs = np.concatenate(
        [
            rng.uniform(0, 10000, 3000),
            np.arange(0, 2100, 0.25),  # lattice points, halves, wrap at 256 and 1024
            [1023.999, 1024.0, 1024.5, 9999.9],
        ]
    ).astype(np.float32)
    got = np.empty(xs.shape[0], np.float32)
    kc.perlin1_array(xs, got)
    want = np.array([slow_pnoise1(x) for x in xs], np.float32)
    assert np.array_equal(got, want)


def test_perlin_properties():
    xs = np.arange(0, 4096, dtype=np.float32)
    out = np.empty_like(xs)
    kc.perlin1_array(xs, out)
    assert np.all(out == 0)  # gradient noise vanishes on the lattice
    xs = np.random.default_rng(1).uniform(0, 10000, 20000).astype(np.float32)
    out = np.empty_like(xs)
    kc.perlin1_array(xs, out)
    assert np.abs(out).max() < 1.6  # |g| <= 8, |d| < 1, factor 0.4, quintic blend
    assert out.std() > 0.1


# --- parameter distributions ----------------------------------------------------------------


def _expected_truncated_exp_mean(mean, low, high):
    ks = np.arange(low, high + 1)
    w = np.exp(-ks / mean)
    return float((ks * w).sum() / w.sum())


def _check_integer_range(values, low, high, expect_uniform=True):
    values = np.asarray(values)
    assert values.min() == low and values.max() == high
    if expect_uniform:
        counts = np.bincount(values - low, minlength=high - low + 1)
        expected = len(values) / (high - low + 1)
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        dof = high - low
        assert chi2 < dof + 6 * math.sqrt(2 * dof), chi2


def test_rcdb_parameter_distributions():
    cats = [rcdb.sample_category(3, k) for k in range(6000)]
    v = np.array([c.vertices for c in cats])
    assert v.min() >= 3 and v.max() <= 200 and v.min() <= 4
    mean = _expected_truncated_exp_mean(100, 3, 200)
    assert abs(v.mean() - mean) < 4 * v.std() / math.sqrt(len(v))
    _check_integer_range([c.contours for c in cats], 1, 200)
    _check_integer_range([c.radius for c in cats], 0, 100)
    for name, low, high in [("perlin", 0, 4), ("step", 0, 0.1), ("oval_x", 1, 2), ("oval_y", 1, 2)]:
        x = np.array([getattr(c, name) for c in cats])
        assert x.min() >= low and x.max() < high
        assert abs(x.mean() - (low + high) / 2) < 0.02 * (high - low)
    for name in ("centre_x", "centre_y"):
        x = np.array([getattr(c, name) for c in cats])
        offsets = 2 * x - 512
        assert np.all(offsets == np.round(offsets))
        assert offsets.min() >= -400 and offsets.max() <= 400 and np.ptp(offsets) > 780


def test_visualatom_parameter_distributions_and_sine_rule():
    cats = [visualatom.sample_category(0, k) for k in range(6000)]
    _check_integer_range([c.vertices for c in cats], 200, 1000)
    _check_integer_range([c.orbits for c in cats], 1, 200)
    _check_integer_range([c.radius for c in cats], 10, 60)
    _check_integer_range([c.n1 for c in cats], 0, 20)
    n1 = np.array([c.n1 for c in cats])
    n2 = np.array([c.n2 for c in cats])
    # n1 != n2 unless n1 == 0 (then n2 may be anything, 0 included)
    assert np.all((n1 != n2) | (n1 == 0))
    assert np.any((n1 == 0) & (n2 == 0))
    assert set(n2[n1 == 0].tolist()) == set(range(21))
    assert n2.min() == 0 and n2.max() == 20
    for name, low, high in [("perlin", 0, 4), ("step", 0, 0.1), ("oval_x", 1, 2)]:
        x = np.array([getattr(c, name) for c in cats])
        assert x.min() >= low and x.max() < high
    offsets = 2 * np.array([c.centre_x for c in cats]) - 512
    assert offsets.min() >= -512 and offsets.max() <= 512 and np.ptp(offsets) > 1000


def test_segrcdb_parameter_distributions():
    cats = [segrcdb.sample_category(0, k) for k in range(4000)]
    v = np.array([c.vertices for c in cats])
    assert v.min() >= 3 and v.max() <= 500 and v.max() > 400
    mean = _expected_truncated_exp_mean(100, 3, 500)
    assert abs(v.mean() - mean) < 4 * v.std() / math.sqrt(len(v))
    _check_integer_range([c.contours for c in cats], 1, 50)
    _check_integer_range([c.radius for c in cats], 0, 50)


def test_category_depends_only_on_seed_and_index():
    family = get_family("rcdb")
    batch = family.evaluate_candidates(contour_base.SearchSettings(5, seed=9), ("contour", 40, 3))
    assert [c.index for c in batch] == [40, 41, 42]
    assert all(c.accepted for c in batch)
    assert [c.params for c in batch] == [rcdb.sample_category(9, k) for k in (40, 41, 42)]
    assert rcdb.sample_category(9, 40) != rcdb.sample_category(10, 40)


@pytest.mark.parametrize("type_", ["rcdb", "visualatom", "segrcdb"])
def test_category_files_round_trip(tmp_path, type_):
    family = get_family(type_)
    params = family.sample_category(4, 2)
    path = tmp_path / ("00002" + family.category_suffix)
    path.write_text(family.format_category(params))
    assert family.read_category(path) == params


TOKENS = ["67", "-0", "0", "017", "0x1A", "1_000", "1:30", "0.5", "-2.25", "1.0", "00.5", ".5"]
TOKENS += ["1e-05", "1.5e-05", "1.5e5", "1.5E+07", "3e5", ".inf", "nan", "true", "~", "'7'"]


@pytest.mark.parametrize("token", TOKENS)
def test_plain_category_lines_read_as_yaml_reads_them(token):
    """The fast reader of ``name: number`` lines gives YAML's value and type, or declines
    (then the file is read as YAML); PyYAML's pure-Python loader is the reference."""
    import yaml

    text = f"# fdgen rcdb category\nradius: {token}  # start radius\n\nvertices: 12\n"
    fast = contour_base.plain_lines(text)
    expected = yaml.load(text, Loader=yaml.SafeLoader)
    if fast is not None:
        assert fast == expected and type(fast["radius"]) is type(expected["radius"])
    declined = {"017", "0x1A", "1_000", "1:30", "00.5", ".5", ".inf", "nan", "true", "~", "'7'"}
    assert (fast is None) == (token in declined)


def test_category_file_errors_name_file_and_field(tmp_path):
    good = get_family("rcdb").format_category(rcdb.sample_category(0, 0))
    path = tmp_path / "00000.yaml"
    cases = {
        "vertices": (good.replace("vertices:", "# vertices:"), "field vertices is missing"),
        "contours": (
            "\n".join(
                "contours: many" if line.startswith("contours:") else line
                for line in good.splitlines()
            ),
            "field contours must be an integer",
        ),
        "radius": (
            "\n".join(
                "radius: -3" if line.startswith("radius:") else line for line in good.splitlines()
            ),
            "field radius = -3 is outside the allowed range",
        ),
        "extra": (good + "colour: 3\n", "unknown field(s) colour"),
    }
    for text, message in cases.values():
        path.write_text(text)
        with pytest.raises(FdgenError) as err:
            get_family("rcdb").read_category(path)
        assert str(path) in err.value.message and message in err.value.message


# --- images ---------------------------------------------------------------------------------


def _ellipse_category(**kw):
    base = dict(
        vertices=180, contours=1, perlin=0.0, step=0.0, radius=60, oval_x=1.5, oval_y=1.0,
        centre_x=256.0, centre_y=256.0,
    )  # fmt: skip
    base.update(kw)
    return rcdb.Category(**base)


def test_rcdb_without_noise_draws_a_one_pixel_ellipse_on_white():
    params = _ellipse_category(step=0.5, contours=1)
    image = rcdb.Renderer(contour_base.RenderSettings(size=512, instances=1)).render(params, 0, 0)
    ys, xs = np.nonzero(image != rcdb.BACKGROUND)
    assert image[0, 0] == 255 and (image == 255).mean() > 0.98
    # Every drawn pixel lies on the ellipse of radius (60 + step) * oval (noise is 0).
    a, b = 60.5 * 1.5, 60.5 * 1.0
    level = np.sqrt(((xs - 256) / a) ** 2 + ((ys - 256) / b) ** 2)
    assert np.all(np.abs(level - 1) < 1.5 / b)
    # 1-pixel, 8-connected: one pixel per unit of Chebyshev length, not two.
    t = 2 * np.pi * np.arange(180) / 180
    px = np.floor(256 + np.cos(t) * a + 0.5)
    py = np.floor(256 + np.sin(t) * b + 0.5)
    cheb = np.maximum(np.abs(np.diff(px, append=px[0])), np.abs(np.diff(py, append=py[0]))).sum()
    assert 0.9 * cheb <= len(xs) <= cheb


def test_visualatom_background_black_and_grey_levels_from_orbits():
    params = visualatom.sample_category(1, 5)
    renderer = visualatom.Renderer(contour_base.RenderSettings(size=256, instances=2))
    image = renderer.render(params, 5, 1)
    pts, grays = renderer.contours(params, 5, 1)
    assert image.dtype == np.uint8 and image.shape == (256, 256)
    assert np.bincount(image.ravel()).argmax() == 0
    assert set(np.unique(image).tolist()) <= set(grays.tolist()) | {0}
    # Same drawing, independently: each orbit as a closed polyline, in order, on black.
    again = np.zeros_like(image)
    for k in range(len(pts)):
        cv2.polylines(again, [pts[k]], True, int(grays[k]))
    assert np.array_equal(image, again)


def test_visualatom_sine_terms_accumulate_over_orbits():
    # Without noise and step, orbit k sits at the start radius plus k times the sine offset.
    params = replace(visualatom.sample_category(0, 0), perlin=0.0, step=0.0, n1=3, n2=0)
    params = replace(params, radius=20, oval_x=1.0, oval_y=1.0, orbits=5, vertices=360)
    params = replace(params, centre_x=256.0, centre_y=256.0)
    renderer = visualatom.Renderer(contour_base.RenderSettings(size=512, instances=1))
    pts, _ = renderer.contours(params, 0, 0)
    t = 2 * np.pi * np.arange(360) / 360
    for k in range(5):
        r = 20 + (k + 1) * 0.5 * np.sin(3 * t)
        assert np.abs(pts[k, :, 0] - (256 + np.cos(t) * r)).max() <= 0.5 + 1e-9
        assert np.abs(pts[k, :, 1] - (256 + np.sin(t) * r)).max() <= 0.5 + 1e-9


@pytest.mark.parametrize("family", [rcdb, visualatom])
def test_more_orbits_give_more_contour_pixels(family):
    renderer = family.Renderer(contour_base.RenderSettings(size=256, instances=1))
    field = "contours" if family is rcdb else "orbits"
    few = many = 0
    for k in range(6):
        params = replace(family.sample_category(2, k), perlin=0.5, radius=30)
        few += (renderer.render(replace(params, **{field: 3}), k, 0) != family.BACKGROUND).sum()
        many += (renderer.render(replace(params, **{field: 40}), k, 0) != family.BACKGROUND).sum()
    assert many > 3 * few > 0


@pytest.mark.parametrize("family", [rcdb, visualatom])
def test_instances_deterministic_and_distinct(family):
    params = family.sample_category(0, 3)
    a = family.Renderer(contour_base.RenderSettings(size=128, instances=3))
    b = family.Renderer(contour_base.RenderSettings(size=128, instances=3))
    assert a.render(params, 3, 1).tobytes() == b.render(params, 3, 1).tobytes()
    assert not np.array_equal(a.render(params, 3, 1), a.render(params, 3, 2))
    other_seed = family.Renderer(contour_base.RenderSettings(size=128, instances=3, seed=1))
    assert not np.array_equal(a.render(params, 3, 1), other_seed.render(params, 3, 1))


def test_rcdb_instance_zero_keeps_category_geometry():
    params = _ellipse_category(step=0.0, contours=1)
    renderer = rcdb.Renderer(contour_base.RenderSettings(size=512, instances=2))
    pts0, _ = renderer.contours(params, 0, 0)
    assert abs(pts0[0, :, 0].mean() - 256) < 1 and pts0[0, :, 0].max() == 256 + 90
    pts1, _ = renderer.contours(params, 0, 1)  # radius, oval rates and centre redrawn
    assert not np.array_equal(pts0, pts1)


# --- SegRCDB masks --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seg_categories():
    return [segrcdb.sample_category(0, k) for k in range(12)]


@pytest.mark.parametrize("mode", segrcdb.MASK_MODES)
def test_segrcdb_mask_values_and_later_objects_overwrite(seg_categories, mode):
    settings = segrcdb.RenderSettings(size=192, images=1, objects=6, mask=mode)
    full = segrcdb.Renderer(settings)
    image, mask, objects = full.render(seg_categories, 0)
    assert image.shape == mask.shape == (192, 192) and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) <= {0, *objects}
    assert all(1 <= c <= len(seg_categories) for c in objects)
    # The first k objects do not depend on the object count: mask(k) is mask(k-1) with
    # object k painted over it, whatever was there before.
    shapes = list(full.objects(seg_categories, 0))
    previous = np.zeros_like(mask)
    for k in range(1, settings.objects + 1):
        _, mask_k, objs_k = segrcdb.Renderer(replace(settings, objects=k)).render(seg_categories, 0)
        assert objs_k == objects[:k]
        class_id, pts, _ = shapes[k - 1]
        region = np.zeros_like(mask)
        if mode == "lines":
            cv2.polylines(region, list(pts), True, 1)
        elif mode == "filled":
            cv2.fillPoly(region, [pts[-1]], 1)
        else:
            cv2.fillPoly(region, [pts[-1]], 1)
            cv2.fillPoly(region, [pts[0]], 0)
            cv2.polylines(region, [pts[0], pts[-1]], True, 1)
        inside = region != 0
        assert np.all(mask_k[inside] == class_id)
        assert np.array_equal(mask_k[~inside], previous[~inside])
        previous = mask_k
    assert np.array_equal(previous, mask)


def test_segrcdb_lines_mask_labels_every_drawn_pixel(seg_categories):
    settings = segrcdb.RenderSettings(size=192, images=1, objects=8, mask="lines")
    image, mask, _ = segrcdb.Renderer(settings).render(seg_categories, 3)
    assert np.all(mask[image != 0] != 0)
    assert np.bincount(image.ravel()).argmax() == 0  # black background


# --- search, render, shards -----------------------------------------------------------------


def _cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def _read_shards(folder: Path):
    urls = sorted(str(p) for p in folder.glob("shard-*.tar"))
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("l8")
    return list(ds)


def test_rcdb_search_render_and_read_back_with_webdataset(tmp_path):
    code, out = _cli(
        "search", "--type", "rcdb", "--categories", 3, "--seed", 5, "--workers", 1,
        "--out", tmp_path / "db",
    )  # fmt: skip
    assert code == 0, out
    db = load_database(tmp_path / "db")
    assert db.type == "rcdb" and db.params == [rcdb.sample_category(5, k) for k in range(3)]
    assert "fill_rates" not in db.meta
    code, out = _cli(
        "render", "--db", tmp_path / "db", "--instances", 3, "--size", 96, "--workers", 1,
        "--samples-per-shard", 4, "--shards", tmp_path / "shards",
    )  # fmt: skip
    assert code == 0, out
    samples = _read_shards(tmp_path / "shards")
    assert len(samples) == 9
    renderer = rcdb.Renderer(contour_base.RenderSettings(size=96, instances=3))
    seen = set()
    for s in samples:
        meta = s["json"]
        category, instance = meta["category"], meta["instance"]
        assert int(s["cls"]) == category and meta["file"] == f"{category:05d}.yaml"
        assert np.array_equal(s["png"], renderer.render(db.params[category], category, instance))
        seen.add((category, instance))
    assert seen == {(c, i) for c in range(3) for i in range(3)}
    info = json.loads((tmp_path / "shards" / "_info.json").read_text())
    assert info["splits"]["train"]["num_samples"] == 9


def _shard_digests(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("shard-*.tar")}


def test_shards_identical_for_one_and_two_workers(tmp_path):
    for type_ in ["visualatom", "segrcdb"]:
        family = get_family(type_)
        settings = family.SearchSettings(categories=3, seed=1)
        run_search(family, settings, tmp_path / type_, workers=1, show_progress=False)
        db = load_database(tmp_path / type_)
        if type_ == "segrcdb":
            render = segrcdb.RenderSettings(size=64, images=6, objects=4)
        else:
            render = contour_base.RenderSettings(size=64, instances=3)
        one = tmp_path / f"{type_}-1"
        two = tmp_path / f"{type_}-2"
        render_dataset(db, render, one, samples_per_shard=2, workers=1)
        render_dataset(db, render, two, samples_per_shard=2, workers=2)
        assert _shard_digests(one) == _shard_digests(two) and len(_shard_digests(one)) >= 3


def test_segrcdb_shards_carry_image_and_mask(tmp_path):
    run_search(
        get_family("segrcdb"),
        segrcdb.SearchSettings(categories=5, seed=2),
        tmp_path / "db",
        workers=1,
    )
    code, out = _cli(
        "render", "--db", tmp_path / "db", "--images", 4, "--objects", 5, "--mask", "filled",
        "--size", 96, "--workers", 1, "--shards", tmp_path / "shards", "--samples-per-shard", 2,
    )  # fmt: skip
    assert code == 0, out
    db = load_database(tmp_path / "db")
    renderer = segrcdb.Renderer(segrcdb.RenderSettings(size=96, images=4, objects=5, mask="filled"))
    samples = _read_shards(tmp_path / "shards")
    assert sorted(s["__key__"] for s in samples) == [f"img{k:08d}" for k in range(4)]
    for s in samples:
        image, mask, objects = renderer.render(db.params, s["json"]["image"])
        assert np.array_equal(s["png"], image) and np.array_equal(s["seg.png"], mask)
        assert s["json"]["objects"] == objects and "cls" not in s
    # Resume: a lost shard is rendered again, identically; finished ones are kept.
    before = _shard_digests(tmp_path / "shards")
    (tmp_path / "shards" / "shard-000000.tar").unlink()
    code, out = _cli(
        "render", "--db", tmp_path / "db", "--images", 4, "--objects", 5, "--mask", "filled",
        "--size", 96, "--workers", 1, "--shards", tmp_path / "shards", "--samples-per-shard", 2,
    )  # fmt: skip
    assert code == 0 and "4 samples in 2 shards (2 rendered now" in out, out
    assert _shard_digests(tmp_path / "shards") == before


def test_options_that_do_not_apply_are_errors(tmp_path):
    run_search(
        get_family("segrcdb"), segrcdb.SearchSettings(categories=2), tmp_path / "seg", workers=1
    )
    code, out = _cli("render", "--db", tmp_path / "seg", "--instances", 3)
    assert code != 0 and "--instances does not apply to type segrcdb" in out
    run_search(
        get_family("rcdb"), contour_base.SearchSettings(categories=2), tmp_path / "rc", workers=1
    )
    code, out = _cli("render", "--db", tmp_path / "rc", "--images", 3)
    assert code != 0 and "--images does not apply to type rcdb" in out
    code, out = _cli("search", "--type", "rcdb", "--fill-rate", 0.3, "--out", tmp_path / "x")
    assert code != 0 and "--fill-rate does not apply" in out
    code, out = _cli("search", "--type", "segrcdb", "--categories", 300, "--out", tmp_path / "y")
    assert code != 0 and "--categories: must be <= 254" in out
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.parametrize("type_", ["rcdb", "visualatom", "segrcdb"])
def test_preview_works(tmp_path, type_):
    family = get_family(type_)
    run_search(family, family.SearchSettings(categories=4), tmp_path / "db")
    code, out = _cli(
        "preview", "--db", tmp_path / "db", "--out", tmp_path / "p.png", "--categories", 4,
        "--instances", 2, "--thumb", 32,
    )  # fmt: skip
    assert code == 0, out
    sheet = cv2.imread(str(tmp_path / "p.png"))
    assert sheet is not None and sheet.shape[0] >= 3 * 32


# --- the whole construction against a slow pure-Python re-implementation ----------------------

_M64 = (1 << 64) - 1


class SlowStream:
    """SplitMix64 in plain Python integers, with the draws the kernels make."""

    def __init__(self, state: int):
        self.state = int(state)

    def unit(self) -> float:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        return ((z ^ (z >> 31)) >> 11) * 2.0**-53

    def randint(self, low: int, high: int) -> int:
        return low + math.floor(self.unit() * (high - low + 1))

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.unit()

    def noise(self) -> float:
        return slow_pnoise1(np.float32(self.unit() * 10000.0))


def slow_contours(stream, n, m, radius, ox, oy, cx, cy, amp, offset, step, sines, scale=1.0):
    """Vertex pixel positions and grey levels of every contour, one vertex at a time."""
    angle = 2 * math.pi / n
    cos_t = [math.cos(angle * v) for v in range(n)]
    sin_t = [math.sin(angle * v) for v in range(n)]
    xs = [cos_t[v] * radius * ox for v in range(n)]
    ys = [sin_t[v] * radius * oy for v in range(n)]
    pts, grays = [], []
    for _ in range(m):
        grays.append(stream.randint(0, 255))
        nx = [stream.noise() * amp - offset - sines[v] for v in range(n)]
        ny = [stream.noise() * amp - offset - sines[v] for v in range(n)]
        row = []
        for v in range(n):
            xs[v] -= cos_t[v] * (nx[v] - step)
            ys[v] -= sin_t[v] * (ny[v] - step)
            row.append(
                [math.floor((xs[v] + cx) * scale + 0.5), math.floor((ys[v] + cy) * scale + 0.5)]
            )
        pts.append(row)
    return np.array(pts), np.array(grays)


def test_rcdb_instance_matches_slow_reimplementation():
    params = rcdb.Category(7, 5, 2.7, 0.06, 40, 1.3, 1.8, 200.0, 300.5)
    renderer = rcdb.Renderer(contour_base.RenderSettings(size=512, instances=3, seed=4))
    for instance in (0, 2):
        stream = SlowStream(sample_state(4, 11, instance))
        geometry = (40, 1.3, 1.8, 200.0, 300.5)
        if instance:  # redrawn: oval x, oval y, radius, centre y, centre x
            ox, oy = stream.uniform(1, 2), stream.uniform(1, 2)
            radius = stream.randint(0, 100)
            cy = (512 + stream.randint(-400, 400)) / 2
            cx = (512 + stream.randint(-400, 400)) / 2
            geometry = (radius, ox, oy, cx, cy)
        want = slow_contours(stream, 7, 5, *geometry, 2 * 2.7, 2.7, 0.06, [0.0] * 7)
        got = renderer.contours(params, 11, instance)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_visualatom_instance_matches_slow_reimplementation():
    params = visualatom.Category(9, 4, 3.1, 0.08, 25, 5, 2, 1.1, 1.6, 250.0, 260.0)
    renderer = visualatom.Renderer(contour_base.RenderSettings(size=256, instances=3, seed=2))
    angle = 2 * math.pi / 9
    sines = [0.5 * math.sin(angle * v * 5) + 0.5 * math.sin(angle * v * 2) for v in range(9)]
    stream = SlowStream(sample_state(2, 6, 1))
    cy = (512 + stream.randint(-512, 512)) / 2  # instance > 0: the centre is redrawn
    cx = (512 + stream.randint(-512, 512)) / 2
    want = slow_contours(stream, 9, 4, 25, 1.1, 1.6, cx, cy, 3.1, 3.1, 0.08, sines, 0.5)
    got = renderer.contours(params, 6, 1)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


# --- line drawing: pixel for pixel what cv2.polylines draws -------------------------------------


def _opencv_polylines(image, pts, values):
    for k in range(len(pts)):
        cv2.polylines(image, [pts[k]], True, int(values[k]), 1, cv2.LINE_8)


@pytest.mark.parametrize("span", ["inside", "near edges", "far outside", "huge"])
def test_polylines_kernel_matches_opencv(span):
    rng = np.random.default_rng(len(span))
    for _ in range(400):
        height, width = rng.integers(1, 40, 2)
        reach = {"inside": 0, "near edges": 3, "far outside": 4 * max(height, width)}.get(
            span, 10**7
        )
        contours, vertices = rng.integers(1, 4), rng.integers(1, 9)
        low = np.array([-reach, -reach])
        high = np.array([width + reach, height + reach])
        pts = rng.integers(low, high, (contours, vertices, 2)).astype(np.int32)
        values = rng.integers(1, 256, contours)
        want = np.full((height, width), 3, np.uint8)
        got = want.copy()
        _opencv_polylines(want, pts, values)
        kc.draw_closed_polylines(got, pts, values)
        assert np.array_equal(got, want), (height, width, pts.tolist())


@pytest.mark.parametrize("family", [rcdb, visualatom])
def test_polylines_kernel_matches_opencv_on_real_contours(family):
    renderer = family.Renderer(contour_base.RenderSettings(size=200))
    for category in range(6):
        params = family.sample_category(9, category)
        pts, grays = renderer.contours(params, category, 1)
        want = np.zeros((200, 200), np.uint8)
        got = want.copy()
        _opencv_polylines(want, pts, grays)
        kc.draw_closed_polylines(got, pts, grays)
        assert np.array_equal(got, want)


def test_noise_samples_follow_the_sequential_stream():
    state = sample_state(5, 6, 7)
    out = np.empty(50)
    end = kc.noise_samples(state, out)
    stream = SlowStream(state)
    assert [stream.noise() for _ in range(50)] == [np.float64(v) for v in out]
    assert int(end) == stream.state
