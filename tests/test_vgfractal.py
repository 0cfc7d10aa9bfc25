"""VG-FractalDB (type vgfractal): the image and the point cloud of a sample come from one 3D IFS
instance, checked by projecting the cloud with an independently written camera; the search,
shards read back with webdataset, determinism across workers and the CLI."""

from __future__ import annotations

import math
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
from fdgen.families import vgfractal as vg
from fdgen.families.base import Group
from fdgen.rendering import render_dataset
from fdgen.searching import run_search
from test_fractal3d import gl_project, slow_candidate

SEARCH_POINTS = 2000


@pytest.fixture(scope="module")
def vgdb(tmp_path_factory) -> Path:
    """A small searched VG database (3 categories, 2,000-point test clouds)."""
    out = tmp_path_factory.mktemp("vg") / "db"
    settings = f3.SearchSettings(categories=3, points=SEARCH_POINTS)
    run_search(get_family("vgfractal"), settings, out, workers=1, show_progress=False)
    return out


def camera_image(cloud: np.ndarray, size: int) -> np.ndarray:
    """The documented camera, written here from its description: a pinhole at (0, 0, 4)
    looking down -z, y up, 45 degree vertical field of view, one white pixel per point."""
    pts = cloud.astype(np.float64)
    depth = 4.0 - pts[:, 2]
    f = 1.0 / math.tan(math.radians(22.5))
    col = np.floor((f * pts[:, 0] / depth + 1.0) * size / 2.0)
    row = np.floor((1.0 - f * pts[:, 1] / depth) * size / 2.0)
    ok = (depth > 0) & (col >= 0) & (col < size) & (row >= 0) & (row < size)
    image = np.zeros((size, size), np.uint8)
    image[row[ok].astype(int), col[ok].astype(int)] = 255
    return image


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a > 0, b > 0).sum() / np.logical_or(a > 0, b > 0).sum())


def precision(cloud_image: np.ndarray, image: np.ndarray) -> float:
    """Share of the cloud's pixels that the image draws too."""
    return float(np.logical_and(cloud_image > 0, image > 0).sum() / (cloud_image > 0).sum())


def pairs(db_path: Path, settings: vg.RenderSettings, category: int, instances: list[int]):
    db = load_database(db_path)
    family = get_family("vgfractal")
    renderer = family.renderer(settings)
    out = []
    for group in sorted({i // 12 for i in instances}):
        members = [i for i in instances if i // 12 == group]
        g = Group(category, group, members, *family.unit_input(db, category))
        for sample in family.render_group(renderer, g, "png"):
            out.append((sample.value("png").copy(), sample.value("npy"), sample.meta))
    return out


# --- search -----------------------------------------------------------------------------------


def test_search_is_the_3d_variance_search(vgdb):
    db = load_database(vgdb)
    assert db.type == "vgfractal" and len(db) == 3
    assert all(v > 0.05 for v in db.meta["variances"])
    # The first accepted candidates of an independent pure-Python search, in index order.
    expected = []
    index = 0
    while len(expected) < 3:
        params, low = slow_candidate(0, index, SEARCH_POINTS)
        if low is not None and low > 0.05:
            expected.append(params)
        index += 1
    for got, want in zip(db.params, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


# --- image and cloud of one instance ----------------------------------------------------------


def test_image_and_cloud_come_from_the_same_instance(vgdb):
    whole = vg.RenderSettings(size=128, points=6000, cloud_points=6000)
    samples = pairs(vgdb, whole, 0, [0, 1, 13]) + pairs(vgdb, whole, 1, [0])
    for image, cloud, meta in samples:
        assert cloud.dtype == np.float32 and cloud.shape == (6000, 3)
        assert meta["cloud_points"] == 6000 and meta["cloud_frame"] == "camera"
        assert iou(camera_image(cloud, 128), image) > 0.99
    # Against another sample's cloud (another view, model or category) the overlap is low.
    for a in range(len(samples)):
        for b in range(len(samples)):
            if a != b:
                assert iou(camera_image(samples[b][1], 128), samples[a][0]) < 0.4, (a, b)


def test_default_cloud_is_every_kth_point_of_the_image_orbit(vgdb):
    settings = vg.RenderSettings(size=128, points=20000, cloud_points=2000)
    (image, cloud, meta), (other, _, _) = pairs(vgdb, settings, 2, [3, 5])
    assert cloud.shape == (2000, 3) and settings.stride == 10
    assert precision(camera_image(cloud, 128), image) > 0.99
    assert precision(camera_image(cloud, 128), other) < 0.7
    # The cloud is the same orbit's points: every 10th of the fractal3d model cloud, rotated.
    model_cloud, _ = f3.Renderer(f3.RenderSettings(points=20000)).cloud(
        load_database(vgdb).params[2], 2, meta["model"]
    )
    rot = f3.rotation(meta["azimuth"], meta["elevation"])
    np.testing.assert_allclose(cloud, model_cloud[::10] @ rot.T, rtol=1e-5, atol=1e-6)


def test_world_frame_cloud_projects_with_the_json_angles(vgdb):
    settings = vg.RenderSettings(size=96, points=5000, cloud_points=5000, cloud_frame="world")
    clouds = []
    for image, cloud, meta in pairs(vgdb, settings, 1, [0, 1, 2]):
        ref = gl_project(cloud.astype(np.float64), meta["azimuth"], meta["elevation"], 96)
        assert iou(ref, image) > 0.97
        clouds.append(cloud)
    # In the model's frame the views of one model share one cloud.
    assert all(np.array_equal(clouds[0], c) for c in clouds[1:])


def test_settings_errors():
    with pytest.raises(FdgenError, match="--cloud-points"):
        vg.RenderSettings(points=1000, cloud_points=2000)
    with pytest.raises(FdgenError, match="--cloud-frame"):
        vg.RenderSettings(cloud_frame="bogus")


# --- shards -----------------------------------------------------------------------------------


def _render(db_path: Path, out: Path, workers: int):
    settings = vg.RenderSettings(size=48, points=3000, cloud_points=1000, instances=24, models=2)
    return render_dataset(load_database(db_path), settings, out, "png", 24, workers=workers)


def test_shards_deterministic_across_workers_and_read_back(vgdb, tmp_path):
    a = _render(vgdb, tmp_path / "a", 1)
    b = _render(vgdb, tmp_path / "b", 2)
    assert a["num_samples"] == 3 * 24 and a["num_shards"] == b["num_shards"] == 3
    tars = sorted((tmp_path / "a").glob("shard-*.tar"))
    for tar in tars:
        assert tar.read_bytes() == (tmp_path / "b" / tar.name).read_bytes()
    ds = wds.WebDataset([str(t) for t in tars], shardshuffle=False).decode("l8")
    seen = set()
    for sample in ds:
        image, cloud, meta = sample["png"], sample["npy"], sample["json"]
        assert image.shape == (48, 48) and cloud.dtype == np.float32 and cloud.shape == (1000, 3)
        assert int(sample["cls"]) == meta["category"]
        assert precision(camera_image(cloud, 48), image) > 0.98
        seen.add((meta["category"], meta["instance"]))
    assert len(seen) == 3 * 24


def test_cli_render_verify_preview_and_preset(vgdb, tmp_path):
    def cli(*args):
        return CliRunner().invoke(main, [str(a) for a in args])

    out = tmp_path / "sh"
    small = ["--size", "32", "--points", "800", "--cloud-points", "400", "--instances", "12"]
    result = cli("render", "--db", vgdb, "--shards", out, "--workers", "1", *small)
    assert result.exit_code == 0, result.output
    result = cli("verify", out, "--decode")
    assert result.exit_code == 0 and "36 samples decoded" in result.output, result.output
    result = cli("render", "--db", vgdb, "--shards", tmp_path / "x", "--mix", "original")
    assert result.exit_code == 1 and "--mix does not apply to type vgfractal" in result.output
    result = cli("render", "--db", vgdb, "--shards", tmp_path / "x", "--cloud-points", "0")
    assert result.exit_code == 2 and not (tmp_path / "x").exists()
    sheet = tmp_path / "sheet.png"
    result = cli("preview", "--db", vgdb, "--out", sheet, "--categories", "2", "--instances", "2")
    assert result.exit_code == 0 and sheet.stat().st_size > 0, result.output
    import cv2

    assert cv2.imread(str(sheet)).shape[1] == 4 * (128 + 4) + 4  # image, cloud, image, cloud
    from fdgen.catalog import get_preset

    cfg = get_preset("VG-FractalDB-1k")
    render = vg.RenderSettings(**cfg["render"])
    assert cfg["type"] == "vgfractal" and f3.SearchSettings(**cfg["search"]).categories == 1000
    assert (render.views, render.instances, render.cloud_points, render.size) == (
        "random",
        1000,
        10000,
        224,
    )
