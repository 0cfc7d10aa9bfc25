"""FractalDB rendering into shards: content, labels, mixing, determinism, fidelity, errors."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from fdgen.encode import encode_image, two_level_png
from fdgen.families import fractal2d
from fdgen.kernels.rng import sample_state
from tiny_shards import cli, leftovers, make_db, render_args, snapshot

from slow_reference import render_variant

CATEGORIES, INSTANCES, SIZE, POINTS = 3, 8, 64, 2000


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("render")
    db = make_db(root / "db", CATEGORIES)
    result = cli(*render_args(db, root / "out"))
    assert result.exit_code == 0, result.output
    return db, root / "out"


def _members(out: Path) -> dict[str, dict[str, list]]:
    """shard file -> sample key -> list of (extension, bytes), read with plain tarfile."""
    shards = {}
    for path in sorted(out.glob("shard-*.tar")):
        samples: dict[str, list] = defaultdict(list)
        with tarfile.open(path) as tar:
            for info in tar:
                key, ext = info.name.split(".", 1)
                assert info.mtime == 0 and info.uid == 0 and info.uname == ""
                samples[key].append((ext, tar.extractfile(info).read()))
        shards[path.name] = samples
    return shards


def test_every_sample_once_with_label_and_json(rendered):
    _, out = rendered
    seen = set()
    for samples in _members(out).values():
        for key, fields in samples.items():
            assert "." not in key
            assert [ext for ext, _ in fields] == ["png", "cls", "json"]
            data = dict(fields)
            meta = json.loads(data["json"])
            assert key == f"c{meta['category']:06d}_i{meta['instance']:06d}"
            assert int(data["cls"]) == meta["category"]
            i = meta["instance"]
            assert meta["flip"] == i % 4 and meta["weight_row"] == (i // 4) % 25
            assert meta["count"] == i // 100 and meta["file"] == f"{meta['category']:05d}.csv"
            assert meta["diverged"] in (True, False)
            seen.add((meta["category"], i))
    assert seen == {(c, i) for c in range(CATEGORIES) for i in range(INSTANCES)}


def test_webdataset_reads_the_shards(rendered):
    _, out = rendered
    urls = [str(p) for p in sorted(out.glob("shard-*.tar"))]
    pairs = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb").to_tuple("png", "cls"))
    assert len(pairs) == CATEGORIES * INSTANCES
    for image, label in pairs:
        assert image.shape == (SIZE, SIZE, 3) and 0 <= label < CATEGORIES
        assert set(np.unique(np.round(image * 255))) <= {0.0, 127.0}
    info = json.loads((out / "_info.json").read_text())["splits"]["train"]
    assert info["num_samples"] == CATEGORIES * INSTANCES
    assert info["filenames"] == [Path(u).name for u in urls]
    assert sum(info["shard_lengths"]) == len(pairs)


def test_shards_mix_categories(tmp_path):
    db = make_db(tmp_path / "db", 6)
    tiny = ["--instances", "40", "--size", "32", "--points", "500", "--samples-per-shard", "40"]
    assert cli(*render_args(db, tmp_path / "out", tiny=tiny)).exit_code == 0
    for samples in _members(tmp_path / "out").values():
        categories = {int(dict(f)["cls"]) for f in samples.values()}
        # 10 groups of 4 drawn from 6 categories of 10 groups: an unshuffled plan puts one
        # category in each shard; a uniform shuffle puts 3 or fewer in one of the 6 shards
        # 5% of the time, 2 or fewer almost never
        assert len(categories) >= 3, categories


def test_images_match_an_independent_slow_rendering(rendered):
    db, out = rendered
    params = np.loadtxt(db / "00001.csv", delimiter=",", ndmin=2)
    factors = fractal2d.weight_table(0.4)
    found = 0
    for samples in _members(out).values():
        for key, fields in samples.items():
            data = dict(fields)
            meta = json.loads(data["json"])
            if meta["category"] != 1:
                continue
            variant = meta["instance"] // 4
            state = int(sample_state(0, 1, variant))
            raster = render_variant(params, factors[variant % 25], state, POINTS, SIZE, 6)
            up = raster[::-1]  # y up, then the flip of this instance
            expected = [up, up[::-1], up[:, ::-1], up[::-1, ::-1]][meta["flip"]]
            decoded = np.array(Image.open(io.BytesIO(data["png"])).convert("L"))
            assert np.array_equal(decoded, expected), key
            found += 1
    assert found == INSTANCES


def test_one_and_two_workers_give_identical_bytes(tmp_path, rendered):
    db, out = rendered
    result = cli(*render_args(db, tmp_path / "two"), "--workers", "2")
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path / "two") == snapshot(out)


def test_rerun_is_a_noop_and_a_damaged_shard_is_redone(tmp_path, rendered):
    db, out = rendered
    copy = tmp_path / "copy"
    assert cli(*render_args(db, copy)).exit_code == 0
    before = snapshot(copy)
    again = cli(*render_args(db, copy))
    assert again.exit_code == 0 and "0 rendered now" in again.output
    # A killed run leaves a partial file and no sidecar: the rerun rewrites that shard.
    (copy / "shard-000001.json").unlink()
    (copy / "shard-000001.tar").write_bytes(b"truncated")
    (copy / "shard-000001.tar.host-1.partial").write_bytes(b"half")
    assert cli(*render_args(db, copy)).exit_code == 0
    assert snapshot(copy) == before
    assert leftovers(copy) == []


def test_different_settings_are_refused_without_force(tmp_path, rendered):
    db, _ = rendered
    out = tmp_path / "out"
    assert cli(*render_args(db, out)).exit_code == 0
    refused = cli(*render_args(db, out), "--seed", "5")
    assert refused.exit_code != 0 and "different" in refused.output
    assert "Traceback" not in refused.output
    forced = cli(*render_args(db, out), "--seed", "5", "--force")
    assert forced.exit_code == 0, forced.output


def test_divergent_variants_are_marked_and_counted(tmp_path):
    # Category whose a = 1.1 turns expanding with weight factor 1.8 (a x 1.8 = 1.98).
    db = tmp_path / "db"
    db.mkdir()
    (db / "00000.csv").write_text("1.1,0,0,0.5,0.1,0,0.5\n0.5,0,0,0.5,0,0.5,0.5\n")
    out = tmp_path / "out"
    tiny = ["--instances", "20", "--size", "32", "--points", "3000", "--samples-per-shard", "20"]
    assert cli(*render_args(db, out, tiny=tiny)).exit_code == 0
    diverged = {}
    for samples in _members(out).values():
        for fields in samples.values():
            meta = json.loads(dict(fields)["json"])
            diverged[meta["instance"]] = meta["diverged"]
    # Instances 16..19 are weight row 4 (a x 1.8); rows 0..3 scale a by at most 1.4 (1.54).
    assert all(diverged[i] for i in range(16, 20))
    assert not any(diverged[i] for i in range(0, 12))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["diverged"] == sum(diverged.values())


@pytest.mark.parametrize("value", [127, 1, 255])
def test_two_level_png_decodes_to_the_same_pixels_everywhere(tmp_path, value):
    rng = np.random.default_rng(value)
    image = (rng.random((37, 45)) < 0.3).astype(np.uint8) * value
    data = two_level_png(image, value)
    assert np.array_equal(np.array(Image.open(io.BytesIO(data)).convert("L")), image)
    rgb = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(rgb, np.repeat(image[:, :, None], 3, axis=2))
    buf = np.frombuffer(data, np.uint8)
    assert np.array_equal(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), image)
    assert np.array_equal(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.dstack([image] * 3))
    # An 8-bit grey PNG of the same image is larger: the 1-bit path is the point.
    assert len(data) < len(encode_image(image, "png"))


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_color_images_keep_rgb_order(fmt):
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, :, 0] = 200  # pure red
    decoded = np.array(Image.open(io.BytesIO(encode_image(image, fmt))).convert("RGB"))
    assert np.abs(decoded.astype(int) - image).max() <= (0 if fmt == "png" else 8)


def test_color_mode_renders_rgb_samples(tmp_path):
    db = make_db(tmp_path / "db", 1)
    out = tmp_path / "out"
    tiny = ["--instances", "4", "--size", "48", "--points", "1500", "--samples-per-shard", "4"]
    result = cli(*render_args(db, out, tiny=tiny), "--draw", "point_color", "--format", "jpg")
    assert result.exit_code == 0, result.output
    urls = [str(p) for p in sorted(out.glob("shard-*.tar"))]
    images = [
        img for (img,) in wds.WebDataset(urls, shardshuffle=False).decode("rgb").to_tuple("jpg")
    ]
    assert len(images) == 4
    assert images[0].shape == (48, 48, 3) and images[0].std(axis=2).max() > 0.05


@pytest.mark.parametrize(
    "content, needle",
    [
        ("1,2,3\n", "line 1: expected 7"),
        ("0.1,0.2,0.3,0.4,0.5,0.6,0.7\n0.1,x,0.3,0.4,0.5,0.6,0.3\n", "line 2: not a number"),
        ("", "no maps"),
        ("0.1,0.2,0.3,0.4,0.5,0.6,-1\n", "line 1: probability"),
        ("0.1,0.2,0.3,0.4,0.5,inf,1\n", "line 1: values must be finite"),
    ],
)
def test_malformed_category_file_is_named_with_its_line(tmp_path, content, needle):
    db = make_db(tmp_path / "db", 2)
    (db / "00001.csv").write_text(content)
    result = cli(*render_args(db, tmp_path / "out"))
    assert result.exit_code != 0
    assert "00001.csv" in result.output and needle in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--db", "NoSuchPreset"], "neither a folder nor a preset"),
        (["--db", "/nonexistent/db"], "no such database folder"),
        (["--instances", "0"], "--instances"),
        (["--size", "10", "--pad", "6"], "--size/--pad"),
        (["--size", "24", "--pad", "3"], "pad >= 4 for patch_gray"),
        (["--pad", "0", "--draw", "point_gray"], "pad >= 1 for point_gray"),
        (["--draw", "sparkle"], "--draw"),
        (["--weight-delta", "0.9"], "--weight-delta"),
    ],
)
def test_bad_render_options_are_clear_errors(tmp_path, args, needle):
    db = make_db(tmp_path / "db", 1)
    result = cli("render", "--db", str(db), "--shards", str(tmp_path / "o"), *args)
    assert result.exit_code != 0
    assert needle in result.output and "Traceback" not in result.output


def test_empty_database_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("render", "--db", str(tmp_path / "empty"), "--shards", str(tmp_path / "o"))
    assert result.exit_code != 0 and "no category files" in result.output


@pytest.mark.parametrize("draw, pad", [("patch_gray", 4), ("patch_color", 4), ("point_gray", 1)])
def test_smallest_allowed_pad_reaches_the_last_pixel_and_no_further(draw, pad):
    settings = fractal2d.RenderSettings(size=24, pad=pad, points=4000, draw=draw)
    params = np.array([[0.5, 0, 0, 0.5, 0, 0, 0.5], [0.5, 0, 0, 0.5, 0.5, 0.5, 0.5]])
    image, _ = fractal2d.Renderer(settings).render_variant(params, 0, 2)
    rows, cols = np.nonzero(image.any(axis=2))
    assert rows.max() == cols.max() == 23  # the patch's far corner or the point on size - pad
    assert rows.min() >= pad and cols.min() >= pad


def _user_files(folder: Path) -> dict[str, str]:
    files = {"thesis/ch1.tex": "\\chapter{One}", "notes.txt": "mine", ".draft.tmp1": "hidden"}
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return files


LEFT = "left 3 files that fdgen did not write: .draft.tmp1, notes.txt, thesis/"


def test_render_goes_alongside_files_fdgen_did_not_write(tmp_path, rendered):
    db, reference = rendered
    out = tmp_path / "busy"
    files = _user_files(out)
    made = cli(*render_args(db, out))
    assert made.exit_code == 0, made.output
    assert LEFT in made.output
    assert snapshot(out) == snapshot(reference)
    fresh = tmp_path / "fresh"
    _user_files(fresh)
    first_forced = cli(*render_args(db, fresh), "--force")
    assert first_forced.exit_code == 0 and LEFT in first_forced.output, first_forced.output
    assert (fresh / "thesis/ch1.tex").exists() and (fresh / "notes.txt").read_text() == "mine"
    assert snapshot(fresh) == snapshot(reference)
    other = tmp_path / "seed5"
    assert cli(*render_args(db, other), "--seed", "5").exit_code == 0
    # --force replaces fdgen's shards of other settings, and only them.
    forced = cli(*render_args(db, out), "--seed", "5", "--force")
    assert forced.exit_code == 0, forced.output
    assert LEFT in forced.output
    assert snapshot(out) == snapshot(other)
    for name, text in files.items():
        assert (out / name).read_text() == text, name
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*snapshot(other), "manifest.json", ".lock", "notes.txt", "thesis", ".draft.tmp1"]
    )


def test_render_refusals_that_name_force_are_solved_by_force(tmp_path, rendered):
    db, reference = rendered
    out = tmp_path / "out"
    # fdgen's shards without their manifest: of unknown settings.
    shutil.copytree(reference, out, ignore=shutil.ignore_patterns("manifest.json"))
    (out / "notes.txt").write_text("mine")
    refused = cli(*render_args(db, out), "--seed", "5")
    assert refused.exit_code != 0 and "no manifest.json" in refused.output
    assert "use --force" in refused.output and "Traceback" not in refused.output
    forced = cli(*render_args(db, out), "--seed", "5", "--force")
    assert forced.exit_code == 0, forced.output
    assert (out / "notes.txt").read_text() == "mine"
    assert cli(*render_args(db, out)).exit_code != 0  # other settings now: refused again
    assert cli(*render_args(db, out), "--force").exit_code == 0
    assert snapshot(out) == snapshot(reference)


def test_a_manifest_fdgen_did_not_write_is_kept_even_with_force(tmp_path, rendered):
    db, _ = rendered
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"files": []}')
    for extra in ([], ["--force"]):
        result = cli(*render_args(db, out), *extra)
        assert result.exit_code != 0 and "not an fdgen manifest" in result.output
        assert "--force" not in result.output and "Traceback" not in result.output
    assert (out / "manifest.json").read_text() == '{"files": []}'
