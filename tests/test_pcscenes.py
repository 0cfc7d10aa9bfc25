"""PC-FractalDB detection scenes: the published layout ranges and count distribution, boxes
that never overlap (checked by an independent separating-axis test), every object's points
inside its box, read back with webdataset, the same bytes for 1 or 2 workers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import webdataset as wds

from fdgen.families import pcscenes
from tiny_shards import cli

CATEGORIES = 3
RENDER = ["--images", "6", "--points", "400", "--mix-points", "100", "--samples-per-shard", "4"]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pcscenes") / "db"
    result = cli("search", "--type", "pcscenes", "--categories", str(CATEGORIES),
                 "--points", "2000", "--workers", "1", "--out", folder)  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder


def _render(db, out, *extra):
    result = cli("render", "--db", db, "--shards", out, *RENDER, *extra)
    assert result.exit_code == 0, result.output
    return out


def _read(folder):
    urls = sorted(str(p) for p in folder.glob("shard-*.tar"))
    return list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode())


# --- an independent overlap test: separating axes of two rotated rectangles ---------------


def _corners(obj) -> np.ndarray:
    (sx, sy, _), (cx, cy, _), t = obj["size"], obj["c_pos"], obj["theta"]
    c, s = math.cos(t), math.sin(t)
    local = [(-sx / 2, -sy / 2), (sx / 2, -sy / 2), (sx / 2, sy / 2), (-sx / 2, sy / 2)]
    return np.array([(cx + c * x - s * y, cy + s * x + c * y) for x, y in local])


def _rectangles_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """True unless some edge normal of either rectangle separates their projections."""
    for poly in (a, b):
        for k in range(4):
            edge = poly[(k + 1) % 4] - poly[k]
            normal = np.array([-edge[1], edge[0]])
            pa, pb = a @ normal, b @ normal
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


def test_the_overlap_check_itself_detects_overlap():
    box = {"size": [1.0, 1.0, 1.0], "c_pos": [0.0, 0.0, 0.5], "theta": 0.0}
    turned = {"size": [1.0, 1.0, 1.0], "c_pos": [1.05, 0.0, 0.5], "theta": math.pi / 4}
    apart = {"size": [1.0, 1.0, 1.0], "c_pos": [1.25, 0.0, 0.5], "theta": math.pi / 4}
    assert _rectangles_overlap(_corners(box), _corners(turned))  # the corner reaches in
    assert not _rectangles_overlap(_corners(box), _corners(apart))
    assert not _rectangles_overlap(_corners(box), _corners({**box, "c_pos": [1.05, 0, 0.5]}))


# --- the layout: published ranges and distributions ---------------------------------------


def test_layout_follows_the_published_ranges_and_count_distribution():
    settings = pcscenes.RenderSettings()
    layouts = [pcscenes.scene_layout(settings, 1000, k) for k in range(400)]
    extra = np.array([lay.requested - 15 for lay in layouts])
    assert extra.min() >= 0
    assert abs(extra.mean() - 5) < 0.4 and 3.8 < extra.var() < 6.4  # Poisson(5): both 5
    pmf = [math.exp(-5) * 5**k / math.factorial(k) for k in range(15)]
    for k in (3, 5, 7):  # the histogram follows the Poisson pmf (about 70, 70, 42 of 400)
        assert abs(np.mean(extra == k) - pmf[k]) < 0.05, k
    boxes = [box for lay in layouts for box in lay.boxes]
    # with "stop" a scene holds the boxes placed before the first failure, all others placed
    for lay in layouts:
        assert len(lay.boxes) == lay.requested - lay.failed and lay.failed in (0, 1)
    assert np.mean([lay.failed == 0 for lay in layouts]) > 0.9
    size = np.array([b.size for b in boxes])
    centre = np.array([b.centre for b in boxes])
    theta = np.array([b.theta for b in boxes])
    classes = np.array([b.category for b in boxes] + [b.mix for b in boxes])
    assert 0.75 <= size[:, 0].min() and size[:, 0].max() < 1.25
    aspects = size[:, 1:] / size[:, :1]
    assert 0.9 <= aspects.min() and aspects.max() < 1.1
    assert abs(size[:, 0].mean() - 1.0) < 0.01 and abs(aspects.mean() - 1.0) < 0.005
    assert np.abs(centre[:, :2]).max() <= 7.5 and np.abs(centre[:, :2]).max() > 7.3
    assert np.array_equal(centre[:, 2], size[:, 2] / 2)  # z = half the height
    assert -math.pi <= theta.min() < -3.0 and 3.0 < theta.max() <= math.pi
    assert abs(theta.mean()) < 0.1
    assert classes.min() == 0 and classes.max() == 999
    assert abs(np.bincount(classes // 100, minlength=10) / len(classes) - 0.1).max() < 0.02


def test_every_try_failing_ends_the_scene_or_skips_the_object():
    # A 3 x 3 floor holds few boxes of size ~1 with 0.25 gaps: most of 25 objects must fail.
    stop = pcscenes.RenderSettings(objects=25, object_poisson=0, scene_size=3.0)
    skip = pcscenes.RenderSettings(**{**stop.__dict__, "placement_fail": "skip"})
    for k in range(5):
        first, every = pcscenes.scene_layout(stop, 10, k), pcscenes.scene_layout(skip, 10, k)
        assert first.failed == 1 and len(first.boxes) < 25 and first.requested == 25
        assert every.failed == 25 - len(every.boxes) and every.failed > 1
        # both start alike: the boxes before the first failure are the same
        assert every.boxes[: len(first.boxes)] == first.boxes


# --- rendered scenes ----------------------------------------------------------------------


def _check_scene(sample, fit):
    meta, points, labels = sample["json"], sample["npy"], sample["labels.npy"]
    assert points.dtype == np.float32 and points.ndim == 2 and points.shape[1] == 3
    assert labels.dtype == np.int16 and labels.shape == (len(points), 2)
    objects = meta["objects"]
    assert 15 <= meta["requested_objects"] and len(objects) <= meta["requested_objects"]
    assert sample["__key__"] == f"scene{meta['image']:08d}"
    for j, obj in enumerate(objects):
        assert set(obj) >= {"size", "c_pos", "theta", "class_name", "class", "mix_class"}
        assert obj["class_name"] == f"{obj['class']:06d}" and 0 <= obj["class"] < CATEGORIES
        start, main, mix = obj["points"]
        assert (main, mix) == (400, 100) and not obj["diverged"]
        assert np.array_equal(labels[start : start + main + mix, 0], np.full(main + mix, j))
        assert labels[start : start + main, 1].max() == 0 and labels[start + main :, 1][0] == 1
        # into the box's own frame: every point inside, and (stretch) the box is tight
        (cx, cy, cz), t, half = obj["c_pos"], obj["theta"], np.array(obj["size"]) / 2
        p = points[start : start + main + mix].astype(np.float64) - [cx, cy, cz]
        local = np.column_stack(
            [
                math.cos(t) * p[:, 0] + math.sin(t) * p[:, 1],
                -math.sin(t) * p[:, 0] + math.cos(t) * p[:, 1],
                p[:, 2],
            ]
        )
        assert (np.abs(local) <= half + 1e-5).all(), j
        reach = np.abs(local).max(axis=0) / half
        if fit == "stretch":
            np.testing.assert_allclose(reach, 1.0, atol=1e-4)
        else:
            assert np.isclose(reach.max(), 1.0, atol=1e-4)
        assert local[:, 2].min() + cz >= -1e-5  # on the floor, not below it
    assert len(points) == sum(o["points"][1] + o["points"][2] for o in objects)
    for a in range(len(objects)):
        for b in range(a):
            assert not _rectangles_overlap(_corners(objects[a]), _corners(objects[b]))


@pytest.mark.parametrize("fit", ["stretch", "keep-aspect"])
def test_scenes_read_back_with_boxes_around_their_points(db, tmp_path, fit):
    shards = _render(db, tmp_path / "shards", "--fit", fit, "--workers", "1")
    assert cli("verify", shards, "--decode").exit_code == 0
    samples = _read(shards)
    assert sorted(s["__key__"] for s in samples) == [f"scene{k:08d}" for k in range(6)]
    for sample in samples:
        assert set(sample) - {"__key__", "__url__", "__local_path__"} == {
            "npy",
            "json",
            "labels.npy",
        }
        assert sample["json"]["fit"] == fit
        _check_scene(sample, fit)


def test_boxes_never_overlap_over_many_layouts():
    settings = pcscenes.RenderSettings()
    for k in range(60):
        boxes = pcscenes.scene_layout(settings, 1000, k).boxes
        objects = [{"size": b.size, "c_pos": b.centre, "theta": b.theta} for b in boxes]
        for a in range(len(objects)):
            for b in range(a):
                assert not _rectangles_overlap(_corners(objects[a]), _corners(objects[b]))


def test_same_bytes_with_one_or_two_workers_and_labels_optional(db, tmp_path):
    one = _render(db, tmp_path / "one", "--workers", "1")
    two = _render(db, tmp_path / "two", "--workers", "2")
    tars = sorted(p.name for p in one.glob("shard-*.tar"))
    assert tars == ["shard-000000.tar", "shard-000001.tar"]
    for name in tars:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    bare = _render(db, tmp_path / "bare", "--workers", "1", "--point-labels", "none")
    for full, plain in zip(_read(one), _read(bare)):
        assert "labels.npy" not in plain and np.array_equal(full["npy"], plain["npy"])
        assert full["json"] == plain["json"]


def test_seed_changes_scenes_and_preview_draws_them(db, tmp_path):
    a = _read(_render(db, tmp_path / "a", "--workers", "1"))
    b = _read(_render(db, tmp_path / "b", "--workers", "1", "--seed", "1"))
    assert a[0]["json"]["objects"] != b[0]["json"]["objects"]
    sheet = tmp_path / "sheet.png"
    result = cli("preview", "--db", db, "--out", sheet, "--categories", "2", "--instances", "2")
    assert result.exit_code == 0 and "2 scenes from above" in result.output, result.output
    import cv2

    image = cv2.imread(str(sheet))
    assert image is not None and (image.max(axis=2) > 100).sum() > 200  # boxes and points drawn


def test_bad_options_are_clear_errors(db, tmp_path):
    result = cli("render", "--db", db, "--shards", tmp_path / "x", "--overlap-margin", "-1")
    assert result.exit_code != 0 and "--overlap-margin: must be in [0, 10]" in result.output
    result = cli("render", "--db", db, "--shards", tmp_path / "x", "--size", "64")
    assert result.exit_code != 0 and "--size does not apply to type pcscenes" in result.output


def test_preset_is_the_published_scene_set():
    from fdgen.catalog import get_preset

    cfg = get_preset("PC-FractalDB-scenes")
    assert cfg["type"] == "pcscenes"
    render = pcscenes.RenderSettings(**cfg["render"])
    assert (render.images, render.objects, render.object_poisson) == (10_000, 15, 5.0)
    assert (render.scene_size, render.tries, render.overlap_margin) == (15.0, 100, 0.25)
    assert (render.points, render.mix_points, render.placement_fail) == (8000, 2001, "stop")
    assert cfg["search"]["categories"] == 1000 and cfg["search"]["variance"] == 0.05


def test_categories_are_the_fractal3d_search(db, tmp_path):
    folder = tmp_path / "f3"
    result = cli("search", "--type", "fractal3d", "--categories", str(CATEGORIES),
                 "--points", "2000", "--workers", "1", "--out", folder)  # fmt: skip
    assert result.exit_code == 0, result.output
    ours = sorted((db / "categories").iterdir())
    assert [p.name for p in ours] == [p.name for p in sorted((folder / "categories").iterdir())]
    for path in ours:
        assert path.read_bytes() == (folder / "categories" / path.name).read_bytes()


def test_on_the_fly_dataset_gives_the_shards_scenes(db, tmp_path):
    from fdgen.torch import RenderedDataset

    shards = _render(db, tmp_path / "shards", "--workers", "1")
    settings = pcscenes.RenderSettings(images=6, points=400, mix_points=100)
    fly = list(RenderedDataset(db, settings, samples_per_shard=4, output="dict"))
    written = _read(shards)
    assert [s["__key__"] for s in fly] == [s["__key__"] for s in written]
    for a, b in zip(fly, written):
        assert np.array_equal(a["image"], b["npy"]) and a["json"] == b["json"]
