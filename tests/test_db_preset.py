"""A database remembers the preset it was searched from: db.yaml names it, and render,
preview and info use the preset's render settings unless an option overrides them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import webdataset as wds
import yaml

from tiny_shards import cli

SMALL_3D = ["--instances", "12", "--size", "32", "--points", "2000"]


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _assert_clean_error(result, needle):
    assert result.exit_code != 0
    assert needle in result.output, result.output
    assert "Traceback" not in result.output


def _samples(shards: Path) -> list[dict]:
    tars = sorted(str(p) for p in shards.glob("shard-*.tar"))
    return [s for t in tars for s in wds.WebDataset(t, shardshuffle=False)]


@pytest.fixture(scope="module")
def ofdb(tmp_path_factory) -> Path:
    """OFDB-1k searched with an overriding option: 3 categories."""
    out = tmp_path_factory.mktemp("ofdb") / "db"
    _ok(cli("search", "--preset", "OFDB-1k", "--categories", "3", "--out", out, "--workers", 1))
    return out


@pytest.fixture(scope="module")
def exdb(tmp_path_factory) -> Path:
    """ExFractalDB-1k searched with 2 categories."""
    out = tmp_path_factory.mktemp("ex") / "db"
    _ok(cli("search", "--preset", "ExFractalDB-1k", "--categories", "2", "--out", out))
    return out


def test_db_yaml_records_the_preset_only_when_one_was_used(ofdb, tmp_path):
    meta = yaml.safe_load((ofdb / "db.yaml").read_text())
    assert meta["preset"] == "OFDB-1k" and meta["categories"] == 3
    assert list(meta)[:5] == ["type", "preset", "fdgen_version", "categories", "settings"]
    plain = tmp_path / "plain"
    quick = ["--fill-rate", "0.1", "--points", "5000", "--size", "128", "--categories", "2"]
    _ok(cli("search", "--out", plain, *quick))
    keys = list(yaml.safe_load((plain / "db.yaml").read_text()))
    assert keys[:4] == ["type", "fdgen_version", "categories", "settings"]
    assert "preset" not in keys


def test_ofdb_searched_then_rendered_gives_one_image_per_category(ofdb, tmp_path):
    shards = tmp_path / "s"
    _ok(cli("render", "--db", ofdb, "--shards", shards, "--workers", 1))
    samples = _samples(shards)
    assert len(samples) == 3
    metas = [json.loads(s["json"]) for s in samples]
    assert sorted(m["category"] for m in metas) == [0, 1, 2]
    assert {(m["instance"], m["weight_row"]) for m in metas} == {(0, 0)}
    image = cv2.imdecode(np.frombuffer(samples[0]["png"], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image.shape == (362, 362)
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["database_preset"] == "OFDB-1k"
    assert manifest["identity"]["settings"]["instances"] == 1


def _fixed_view(meta: dict) -> bool:
    """MV-FractalDB's views: azimuth 30 k + 30 degrees, elevation 0, each within +-5."""
    azimuth = 30 * (meta["instance"] % 12) + 30
    off = abs((meta["azimuth"] - azimuth + 180) % 360 - 180)
    return off <= 5 and abs(meta["elevation"]) <= 5


def test_exfractaldb_searched_then_rendered_has_random_views(exdb, tmp_path):
    shards = tmp_path / "s"
    _ok(cli("render", "--db", exdb, "--shards", shards, "--workers", 1, *SMALL_3D))
    manifest = json.loads((shards / "manifest.json").read_text())
    # the preset's render section (size 224, points 100000, instances 1000, models 145,
    # views random) under the options given, the rest the family's defaults
    assert manifest["identity"]["settings"] == {
        "size": 32,
        "points": 2000,
        "instances": 12,
        "models": 145,
        "views": "random",
        "view_jitter": 5.0,
        "output": "image",
        "seed": 0,
    }
    metas = [json.loads(s["json"]) for s in _samples(shards)]
    assert len(metas) == 24
    assert sum(_fixed_view(m) for m in metas) <= 2  # random directions: hardly ever that close


def test_an_option_overrides_the_preset_render_value(ofdb, exdb, tmp_path):
    small = tmp_path / "small"
    _ok(cli("render", "--db", ofdb, "--shards", small, "--workers", 1, "--size", 64))
    samples = _samples(small)  # OFDB's one instance per category kept, its 362 px replaced
    assert len(samples) == 3
    for sample in samples:
        image = cv2.imdecode(np.frombuffer(sample["png"], np.uint8), cv2.IMREAD_GRAYSCALE)
        assert image.shape == (64, 64)
    shards = tmp_path / "s"
    fixed = ["--views", "fixed"]
    _ok(cli("render", "--db", exdb, "--shards", shards, "--workers", 1, *SMALL_3D, *fixed))
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["identity"]["settings"]["views"] == "fixed"
    metas = [json.loads(s["json"]) for s in _samples(shards)]
    assert len(metas) == 24 and all(_fixed_view(m) for m in metas)


def test_preview_uses_the_preset_render_settings(ofdb, tmp_path):
    sheet = tmp_path / "sheet.png"
    args = ["--categories", "3", "--instances", "4", "--thumb", "32"]
    _ok(cli("preview", "--db", ofdb, "--out", sheet, *args))
    image = cv2.imread(str(sheet))
    # OFDB has 1 instance per category: rows of 2 + 1 first instances, then 1 variant
    # (4 requested, but only instance 0 exists); 36 px per thumbnail with its gap, plus 4
    assert image.shape[:2] == (3 * 36 + 4, 2 * 36 + 4)


def test_info_shows_the_preset_and_the_render_settings(ofdb, tmp_path):
    info = _ok(cli("info", ofdb)).output
    assert "  preset      OFDB-1k\n" in info
    render_line = next(line for line in info.splitlines() if line.startswith("  render "))
    assert '"instances": 1,' in render_line and '"size": 362' in render_line
    shards = tmp_path / "s"
    _ok(cli("render", "--db", ofdb, "--shards", shards, "--workers", 1, "--size", 64))
    shard_info = _ok(cli("info", shards)).output
    assert "  preset      OFDB-1k" in shard_info and '"size": 64' in shard_info


def test_extension_keeps_the_preset_and_another_preset_is_refused(ofdb, tmp_path):
    db = tmp_path / "db"
    shutil.copytree(ofdb, db)
    more = ["--preset", "OFDB-1k", "--categories", "4", "--out", db, "--resume"]
    _ok(cli("search", *more, "--workers", 1))
    meta = yaml.safe_load((db / "db.yaml").read_text())
    assert meta["preset"] == "OFDB-1k" and meta["categories"] == 4
    before = (db / "db.yaml").read_text()
    # FractalDB-1k searches exactly as OFDB-1k, but renders 1,000 images per category
    other = cli("search", "--preset", "FractalDB-1k", "--categories", "4", "--out", db)
    _assert_clean_error(other, "from preset OFDB-1k, this search is from preset FractalDB-1k")
    plain = ["--seed", "1", "--rng", "legacy", "--fill-rate", "0.2", "--categories", "4"]
    none = cli("search", "--type", "fractal", *plain, "--out", db)
    _assert_clean_error(none, "this search is from no preset")
    assert (db / "db.yaml").read_text() == before


@pytest.mark.parametrize(
    "preset, needle",
    [
        ("NoSuchPreset", "db.yaml: preset: unknown preset 'NoSuchPreset'; this fdgen knows"),
        ("ExFractalDB-1k", "db.yaml: preset: ExFractalDB-1k is a fractal3d preset"),
    ],
)
def test_a_preset_db_yaml_cannot_resolve_is_a_clear_error(ofdb, tmp_path, preset, needle):
    db = tmp_path / "db"
    shutil.copytree(ofdb, db)
    meta = yaml.safe_load((db / "db.yaml").read_text())
    (db / "db.yaml").write_text(yaml.safe_dump({**meta, "preset": preset}))
    _assert_clean_error(cli("render", "--db", db, "--shards", tmp_path / "s"), needle)
    assert not (tmp_path / "s").exists()
    _assert_clean_error(cli("preview", "--db", db, "--out", tmp_path / "p.png"), needle)
    assert not (tmp_path / "p.png").exists()
