"""Help and options that tell the truth per family: defaults, choices, what applies where."""

from __future__ import annotations

import json

import pytest

import checker_family  # noqa: F401  (registers the plug-in type "checker": its defaults show)
from tiny_shards import cli


def _help(command: str) -> str:
    result = cli(command, "--help")
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # unwrapped


def test_render_help_shows_each_familys_defaults_not_fractaldbs_for_all():
    text = _help("render")
    # the published sizes: FractalDB 362, MV-FractalDB and SVD fractals 224, RCDB /
    # VisualAtom / SegRCDB 512; the plug-in family of tests/checker_family.py: 64
    sizes = (
        "[fractal: 362; fractal3d, svdfractal, svdmulti, vgfractal: 224; "
        "rcdb, visualatom, segrcdb, onepfrac: 512; videoperlin: 112; checker: 64]"
    )
    assert f"--size INTEGER RANGE Image size. {sizes}" in text
    instances = (
        "[fractal, rcdb, visualatom, svdfractal, vgfractal, pcfractal: 1000; fractal3d: 1740; "
        "onepfrac: 1; videoperlin: 100; checker: 4]"
    )
    assert f"--instances INTEGER RANGE Samples per category. {instances}" in text
    assert "Camera views. [fractal3d: fixed; vgfractal: random]" in text
    assert "--main-points INTEGER RANGE Points of the category's fractal. [pcfractal: 8000]" in text
    assert (
        "--mix-points INTEGER RANGE Points of the mixed-in fractal (pcscenes: per object). "
        "[pcfractal, pcscenes: 2001]" in text
    )
    assert (
        "--images INTEGER RANGE Images in all. [segrcdb: 20000; svdmulti: 1000000; pcscenes: 10000]"
        in text
    )
    assert "[362]" not in text and "[1000]" not in text
    assert "j % NUM_SHARDS == SHARD_INDEX" in text  # click prints help as written, no %% escape


def test_choices_are_the_families_own():
    render, search = _help("render"), _help("search")
    draw = "patch_gray|patch_color|point_gray|point_color|color_background|color|gray"
    assert f"--draw [{draw}]" in render
    assert "--views [fixed|random]" in render and "--output [image|pointcloud|npy|mp4]" in render
    assert "--mask [lines|ring|filled]" in render
    assert "--cloud-frame [camera|world]" in render and "--mix [sample|original]" in render
    assert "--rng [default|legacy]" in search
    result = cli("render", "--db", "x", "--mask", "bogus")
    assert result.exit_code == 2 and "'bogus' is not one of 'lines', 'ring', 'filled'" in (
        result.output
    )


def test_maps_on_a_family_without_maps_names_maps(tmp_path):
    result = cli("search", "--type", "rcdb", "--maps", "2-5", "--out", tmp_path / "db")
    assert result.exit_code == 1
    assert "Error: --maps does not apply to --type rcdb" in result.output
    assert "--maps-min" not in result.output
    assert not (tmp_path / "db").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--type", "rcdb", "--fill-rate", "0.3"], "--fill-rate does not apply to --type rcdb"),
        (["--type", "segrcdb", "--rng", "legacy"], "--rng does not apply to --type segrcdb"),
        (["--type", "fractal", "--variance", "0.1"], "--variance does not apply to --type fractal"),
    ],
)
def test_search_options_that_do_not_apply_are_rejected(tmp_path, args, needle):
    result = cli("search", "--out", tmp_path / "db", *args)
    assert result.exit_code == 1 and f"Error: {needle}" in result.output, result.output


def test_render_options_that_do_not_apply_are_rejected(tmp_path):
    assert (
        cli("search", "--type", "rcdb", "--categories", "2", "--out", tmp_path / "db").exit_code
        == 0
    )
    for args, needle in [
        (["--draw", "patch_color"], "--draw does not apply to type rcdb"),
        (["--images", "5"], "--images does not apply to type rcdb"),
        (["--preset", "SegRCDB"], "--preset: SegRCDB is a segrcdb preset, the database is rcdb"),
    ]:
        result = cli("render", "--db", tmp_path / "db", "--shards", tmp_path / "s", *args)
        assert result.exit_code == 1 and f"Error: {needle}" in result.output, result.output
    assert not (tmp_path / "s").exists()


def _preset_lines(name: str) -> dict[str, str]:
    result = cli("presets", name)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"preset {name}\n")
    return dict(line.split(None, 1) for line in result.output.splitlines()[1:])


def _settings(text: str) -> dict:
    assert text.endswith(" (options override these)")
    return json.loads(text.removesuffix(" (options override these)"))


def test_presets_name_prints_the_effective_settings():
    lines = _preset_lines("OFDB-1k")
    assert lines["type"] == "fractal" and lines["about"].startswith("OFDB-1k, one image")
    search, render = _settings(lines["search"]), _settings(lines["render"])
    # OFDB-1k: the FractalDB-1k search (legacy stream, seed 1), one instance per category
    assert search["rng"] == "legacy" and search["seed"] == 1 and search["categories"] == 1000
    assert render["instances"] == 1 and render["size"] == 362
    # a setting the preset's section leaves out has the family's default (seed 0)
    assert render["seed"] == 0
    assert _settings(_preset_lines("RCDB-1k")["render"]) == {
        "size": 512,
        "instances": 1000,
        "seed": 0,
    }


def test_presets_unknown_name_is_a_clear_error():
    result = cli("presets", "bogus")
    assert result.exit_code == 1
    assert "Error: NAME: unknown preset 'bogus'; choose from" in result.output
    assert "FractalDB-1k" in result.output


def test_render_preset_takes_that_presets_render_settings(tmp_path):
    db = tmp_path / "db"
    quick = ["--categories", "2", "--fill-rate", "0.1", "--points", "5000", "--size", "128"]
    assert cli("search", *quick, "--workers", "1", "--out", db).exit_code == 0
    small = ["--size", "64", "--points", "2000", "--workers", "1"]
    result = cli("render", "--db", db, "--shards", tmp_path / "s", "--preset", "OFDB-1k", *small)
    assert result.exit_code == 0, result.output
    assert "2 samples in 1 shard " in result.output  # OFDB-1k: one instance per category
