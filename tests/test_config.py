"""``fdgen search|render --config FILE.yaml`` and the config-driven ``examples/Makefile``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tiny_shards import SRC, cli, make_db, snapshot

from conftest import REPO

QUICK_SEARCH = {"categories": 2, "fill-rate": 0.1, "points": 5000, "size": 128, "workers": 1}
TINY_RENDER = {"instances": 2, "size": 32, "points": 2000, "samples_per_shard": 4, "workers": 1}


def write_yaml(path: Path, values) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def manifest(shards: Path) -> dict:
    return json.loads((shards / "manifest.json").read_text())


def one_line_error(result, *needles: str) -> str:
    """The single ``Error:`` line of a failed command, checked to contain ``needles``."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- precedence ------------------------------------------------------------------------------


def test_search_config_sets_options_and_the_command_line_overrides(tmp_path):
    config = write_yaml(tmp_path / "search.yaml", {**QUICK_SEARCH, "out": str(tmp_path / "db")})
    result = cli("search", "--config", config, "--seed", "3")
    assert result.exit_code == 0, result.output
    meta = yaml.safe_load((tmp_path / "db" / "db.yaml").read_text())
    assert meta["settings"]["categories"] == 2 and meta["settings"]["points"] == 5000
    assert meta["settings"]["fill_rate"] == 0.1 and meta["settings"]["seed"] == 3

    override = cli("search", "--config", config, "--categories", "3", "--force")
    assert override.exit_code == 0, override.output
    assert yaml.safe_load((tmp_path / "db" / "db.yaml").read_text())["categories"] == 3


def test_render_config_with_underscores_dashes_flags_and_overrides(tmp_path):
    db = make_db(tmp_path / "db")
    shards = tmp_path / "shards"
    config = write_yaml(
        tmp_path / "render.yaml", {**TINY_RENDER, "db": str(db), "shards": str(shards)}
    )
    result = cli("render", "--config", config, "--instances", "3")
    assert result.exit_code == 0, result.output
    held = manifest(shards)
    settings = held["identity"]["settings"]
    assert settings["instances"] == 3  # the command line wins
    assert settings["size"] == 32 and settings["points"] == 2000  # from the file
    assert held["identity"]["samples_per_shard"] == 4  # `samples_per_shard` with underscores
    assert held["num_samples"] == 3 * 3

    # other settings are refused without --force, and `force: true` in the file is that flag
    refused = cli("render", "--config", config)
    one_line_error(refused, "--force")
    forced = write_yaml(tmp_path / "forced.yaml", {**yaml.safe_load(config.read_text())})
    forced.write_text(forced.read_text() + "force: true\nweight-delta: 0.05\n")
    again = cli("render", "--config", forced)
    assert again.exit_code == 0, again.output
    settings = manifest(shards)["identity"]["settings"]
    assert settings["instances"] == 2 and settings["weight_delta"] == 0.05


def test_an_empty_config_changes_nothing(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing set here\n")
    db = make_db(tmp_path / "db")
    args = ["--db", db, "--shards", tmp_path / "s", *_flags(TINY_RENDER)]
    result = cli("render", "--config", empty, *args)
    assert result.exit_code == 0, result.output
    assert manifest(tmp_path / "s")["identity"]["settings"]["instances"] == 2


def _flags(values: dict) -> list[str]:
    return [a for k, v in values.items() for a in ("--" + k.replace("_", "-"), str(v))]


@pytest.mark.parametrize("command", ["search", "render"])
def test_help_tells_about_config(command):
    result = cli(command, "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--config FILE.yaml" in text and "override it" in text


# --- a config file fdgen cannot use: one line naming the file and the key ------------------

BAD_VALUES = [
    ({"instance": 3}, ["key 'instance' is not an option of fdgen render", "allowed:", "instances"]),
    ({"instances": "3"}, ["key 'instances' must be a whole number, found '3'"]),
    ({"instances": 2.5}, ["key 'instances' must be a whole number, found 2.5"]),
    ({"instances": True}, ["key 'instances' must be a whole number, found True"]),
    ({"instances": None}, ["key 'instances' must be a whole number, found None"]),
    ({"instances": 0}, ["key 'instances'", "0 is not in the range x>=1"]),
    ({"force": 1}, ["key 'force' must be true or false, found 1"]),
    ({"draw": "pencil"}, ["key 'draw'", "'pencil' is not one of", "patch_gray"]),
    ({"format": 5}, ["key 'format' must be text (one of png, jpg), found 5"]),
    ({"weight-delta": "small"}, ["key 'weight-delta' must be a number"]),
    ({"samples-per-shard": 3, "samples_per_shard": 4}, ["sets --samples-per-shard a second"]),
    ({"config": "other.yaml"}, ["key 'config' is not an option"]),
]


@pytest.mark.parametrize("values, needles", BAD_VALUES)
def test_bad_config_values_are_one_line_errors(tmp_path, values, needles):
    config = write_yaml(tmp_path / "bad.yaml", values)
    result = cli("render", "--config", config, "--db", tmp_path / "nowhere")
    one_line_error(result, f"{config}: ", *needles)
    assert not (tmp_path / "nowhere-shards").exists()


BAD_FILES = [
    (b"- 1\n- 2\n", ["must be a mapping of option names to values, found [1, 2]"]),
    (b"just text\n", ["must be a mapping", "'just text'"]),
    (b"instances: [\n", ["not YAML"]),
    (b"size: 3\nsize: 4\n", ["not YAML", "key 'size' given twice"]),
    (b"\xff\xfe\n", ["not UTF-8"]),
    (b"when: 2020-01-01\n", ["values other than numbers, text"]),
]


@pytest.mark.parametrize("content, needles", BAD_FILES)
@pytest.mark.parametrize("command", ["search", "render"])
def test_bad_config_files_are_one_line_errors(tmp_path, command, content, needles):
    config = tmp_path / "bad.yaml"
    config.write_bytes(content)
    where = ["--out", tmp_path / "db"] if command == "search" else ["--db", tmp_path / "db"]
    result = cli(command, "--config", config, *where)
    one_line_error(result, f"{config}: ", *needles)


def test_search_names_its_own_allowed_keys(tmp_path):
    config = write_yaml(tmp_path / "bad.yaml", {"instances": 3})
    line = one_line_error(cli("search", "--config", config), "not an option of fdgen search")
    allowed = line.split("allowed: ")[1].split(", ")
    assert "fill-rate" in allowed and "resume" in allowed and "instances" not in allowed


@pytest.mark.parametrize("make_path", ["missing", "folder"])
def test_unreadable_config_is_a_one_line_error(tmp_path, make_path):
    config = tmp_path / "config.yaml"
    if make_path == "folder":
        config.mkdir()
    result = cli("render", "--config", config, "--db", "x")
    reason = "No such file" if make_path == "missing" else "Is a directory"
    one_line_error(result, f"{config}: cannot read the config file", reason)


def test_installed_command_reports_a_bad_config_without_traceback(tmp_path):
    config = write_yaml(tmp_path / "bad.yaml", {"size": "large"})
    run = subprocess.run(
        [sys.executable, "-c", "from fdgen.cli import main; main()", "render", "--config",
         str(config), "--db", "x"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert run.returncode == 1
    assert (
        run.stderr.strip() == f"Error: {config}: key 'size' must be a whole number, found 'large'"
    )


# --- examples/Makefile: a changed config re-renders exactly what it affects -----------------


@pytest.fixture
def make_examples(tmp_path):
    """Run ``make -C examples TARGET`` with this checkout's fdgen, tiny sizes, configs copied
    into ``tmp_path`` (so a test can edit them) and ``OUT=tmp_path/data``; returns the
    runner (extra ``VAR=value`` arguments, returns make's output)."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    fdgen = tmp_path / "fdgen"
    fdgen.write_text(
        f"#!/bin/sh\nPYTHONPATH={SRC} exec {sys.executable} "
        "-c 'from fdgen.cli import main; main()' \"$@\"\n"
    )
    fdgen.chmod(0o755)
    for name in ("search", "render"):
        shutil.copy(REPO / f"examples/configs/fractaldb-{name}.yaml", tmp_path / f"{name}.yaml")

    def run(*variables: str, target: str = "render") -> str:
        args = ["make", "-C", str(REPO / "examples"), target, f"FDGEN={fdgen}"]
        args += [f"OUT={tmp_path / 'data'}", "CATEGORIES=2", "SIZE=32", "WORKERS=1"]
        args += [f"SEARCH_CONFIG={tmp_path / 'search.yaml'}"]
        args += [f"RENDER_CONFIG={tmp_path / 'render.yaml'}", *variables]
        done = subprocess.run(args, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    return run


def _times(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


def test_examples_makefile_rebuilds_exactly_what_a_config_change_affects(tmp_path, make_examples):
    data = tmp_path / "data"
    db, shards = data / "fractaldb-2", data / "fractaldb-2-shards"
    first = make_examples("INSTANCES=3")
    assert " search " in first and " render " in first
    info = json.loads((shards / "_info.json").read_text())
    assert info["splits"]["train"]["num_samples"] == 2 * 3

    # nothing changed: no fdgen command runs and no file is touched
    before = {**_times(db), **_times(shards)}
    again = make_examples("INSTANCES=3")
    assert " search " not in again and " render " not in again, again
    assert {**_times(db), **_times(shards)} == before

    # a changed variable re-renders (and only renders); a user's file in the folder stays
    (shards / "notes.txt").write_text("mine")
    old_shards, db_yaml = snapshot(shards), (db / "db.yaml").read_bytes()
    out = make_examples("INSTANCES=4")
    assert " render " in out and " search " not in out
    assert json.loads((shards / "_info.json").read_text())["splits"]["train"]["num_samples"] == 8
    assert snapshot(shards) != old_shards and (db / "db.yaml").read_bytes() == db_yaml
    assert (shards / "notes.txt").read_text() == "mine"
    assert " render " not in make_examples("INSTANCES=4")

    # a changed render setting in the config file re-renders
    render_config = tmp_path / "render.yaml"
    render_config.write_text(render_config.read_text().replace("format: png", "format: jpg"))
    out = make_examples("INSTANCES=4")
    assert " render " in out and " search " not in out
    assert manifest(shards)["identity"]["format"] == "jpg"
    assert any(name.endswith(".tar") for name in snapshot(shards))

    # a changed search setting searches again and re-renders
    old_shards = snapshot(shards)
    search_config = tmp_path / "search.yaml"
    search_config.write_text(search_config.read_text() + "fill-rate: 0.25\n")
    out = make_examples("INSTANCES=4")
    assert " search " in out and " render " in out
    meta = yaml.safe_load((db / "db.yaml").read_text())
    assert meta["settings"]["fill_rate"] == 0.25
    assert snapshot(shards) != old_shards
    assert (shards / "notes.txt").read_text() == "mine"
    after = {**_times(db), **_times(shards)}
    assert " search " not in make_examples("INSTANCES=4")
    assert {**_times(db), **_times(shards)} == after


def test_examples_makefile_resumes_an_interrupted_render(tmp_path, make_examples):
    shards = tmp_path / "data" / "fractaldb-2-shards"
    render_config = tmp_path / "render.yaml"
    render_config.write_text(render_config.read_text().replace("1000", "4"))
    make_examples("INSTANCES=4")  # 2 x 4 samples in 2 shards of 4
    complete = snapshot(shards)
    assert manifest(shards)["num_shards"] == 2
    # as a render killed after its first shard leaves it: no second shard, no index files
    for name in ("shard-000001.tar", "shard-000001.json", "_info.json", "sizes.json"):
        (shards / name).unlink()
    first_shard = (shards / "shard-000000.tar").stat().st_mtime_ns
    out = make_examples("INSTANCES=4")
    assert " render " in out and "4 rendered now" in out, out
    assert (shards / "shard-000000.tar").stat().st_mtime_ns == first_shard  # kept, not redone
    assert snapshot(shards) == complete


def test_examples_makefile_resumes_an_interrupted_search(tmp_path, make_examples):
    db = tmp_path / "data" / "fractaldb-2"
    shards = tmp_path / "data" / "fractaldb-2-shards"
    make_examples("INSTANCES=2")
    categories = {p.name: p.read_bytes() for p in (db / "categories").iterdir()}
    rendered, first_shard = snapshot(shards), (shards / "shard-000000.tar").stat().st_mtime_ns
    # as a search killed before its last write leaves it: the progress file, no db.yaml
    (db / "db.yaml").unlink()
    out = make_examples("INSTANCES=2")
    assert "--resume" in out and "--force" not in out.split(" render ")[0], out
    assert {p.name: p.read_bytes() for p in (db / "categories").iterdir()} == categories
    # the same database: the render finds its shards complete and keeps them
    assert snapshot(shards) == rendered
    assert (shards / "shard-000000.tar").stat().st_mtime_ns == first_shard
