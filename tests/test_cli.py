"""The search, info, presets and preview commands as a user meets them."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from fdgen.database import load_database
from tiny_shards import cli, make_db

QUICK = ["--fill-rate", "0.1", "--points", "5000", "--size", "128"]
ONE = [*QUICK, "--workers", "1"]  # no worker processes to start: quicker for small searches


def _assert_clean_error(result, needle):
    assert result.exit_code != 0
    assert needle in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--categories", "0"], "--categories"),
        (["--fill-rate", "1.5"], "--fill-rate"),
        (["--fill-rate", "0"], "--fill-rate"),
        (["--fill-rate", "0.3", "--points", "1000", "--size", "512"], "can never be reached"),
        (["--maps", "5-2"], "--maps"),
        (["--maps", "abc"], "MIN-MAX"),
        (["--type", "bogus"], "unknown type 'bogus'"),
        (["--preset", "bogus"], "unknown preset 'bogus'"),
        (["--size", "10", "--pad", "6"], "--size/--pad"),
        (["--pad", "0"], "pad >= 1"),
        (["--rng", "mt"], "--rng"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_bad_search_options_are_clear_errors(tmp_path, args, needle):
    result = cli("search", "--out", str(tmp_path / "db"), *args)
    _assert_clean_error(result, needle)
    assert not (tmp_path / "db").exists()


def test_search_then_rerun_is_a_noop_and_other_settings_are_refused(tmp_path):
    out = str(tmp_path / "db")
    first = cli("search", "--categories", "2", "--out", out, *QUICK)
    assert first.exit_code == 0, first.output
    before = (tmp_path / "db" / "db.yaml").read_text()
    again = cli("search", "--categories", "2", "--out", out, *QUICK)
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert (tmp_path / "db" / "db.yaml").read_text() == before
    other = cli("search", "--categories", "2", "--seed", "9", "--out", out, *QUICK)
    _assert_clean_error(other, "different settings (seed)")
    forced = cli("search", "--categories", "2", "--seed", "9", "--out", out, "--force", *QUICK)
    assert forced.exit_code == 0, forced.output
    assert yaml.safe_load((tmp_path / "db" / "db.yaml").read_text())["settings"]["seed"] == 9


def test_unfinished_search_needs_resume(tmp_path):
    out = tmp_path / "db"
    (out / "categories").mkdir(parents=True)
    (out / "search-progress.json").write_text(
        '{"settings": {"type": "fractal", "categories": 2, "fill_rate": 0.1, "seed": 0, '
        '"points": 5000, "size": 128, "pad": 6, "maps_min": 2, "maps_max": 7, '
        '"rng": "default"}, "next_candidate": 0, "rng_state": null, "tried": 0, '
        '"diverged": 0, "fill_rates": [], "elapsed_s": 0.0}'
    )
    refused = cli("search", "--categories", "2", "--out", str(out), *QUICK)
    _assert_clean_error(refused, "--resume")
    resumed = cli("search", "--categories", "2", "--out", str(out), "--resume", *QUICK)
    assert resumed.exit_code == 0, resumed.output
    assert (out / "db.yaml").exists()


def _user_files(folder) -> dict[str, str]:
    """A user's thesis, notes and files inside ``categories/`` that fdgen must never touch."""
    files = {
        "thesis/ch1.tex": "\\chapter{One}",
        "notes.txt": "mine",
        ".draft.tmp1": "hidden",
        "categories/readme.csv": "a,b",
        "categories/plot.png": "png",
    }
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return files


def _assert_kept(folder, files):
    for name, text in files.items():
        assert (folder / name).read_text() == text, name


LEFT = "left 5 files that fdgen did not write: .draft.tmp1, categories/plot.png, "
LEFT += "categories/readme.csv, notes.txt, thesis/"


def test_search_goes_alongside_files_fdgen_did_not_write(tmp_path):
    out = tmp_path / "busy"
    files = _user_files(out)
    made = cli("search", "--categories", "2", "--out", out, *ONE)
    assert made.exit_code == 0, made.output
    assert LEFT in made.output
    _assert_kept(out, files)
    assert len(load_database(out)) == 2
    again = cli("search", "--categories", "2", "--out", out, *ONE)
    assert "nothing to do" in again.output and LEFT in again.output
    forced = cli("search", "--categories", "3", "--seed", "9", "--out", out, "--force", *ONE)
    assert forced.exit_code == 0, forced.output
    assert LEFT in forced.output
    _assert_kept(out, files)
    db = load_database(out)
    assert len(db) == 3 and db.meta["settings"]["seed"] == 9
    fresh = tmp_path / "fresh"
    assert cli("search", "--categories", "3", "--seed", "9", "--out", fresh, *ONE).exit_code == 0
    assert load_database(fresh).digest() == db.digest()


def _finished(out):
    assert cli("search", "--categories", "2", "--out", out, *ONE).exit_code == 0


def _stray_category_file(out):
    (out / "categories").mkdir(parents=True)
    (out / "categories" / "00000.csv").write_text("0.1,0,0,0.1,0,0,1\n")


def _unreadable_progress(out):
    out.mkdir()
    (out / "search-progress.json").write_text("{")


def _half_done(out):
    """An extension killed after it marked the database unfinished."""
    _finished(out)
    (out / "db.yaml").unlink()


@pytest.mark.parametrize(
    "make, args",
    [
        (_finished, ["--seed", "9"]),  # other settings
        (_finished, ["--categories", "1"]),  # fewer categories than it holds
        (_half_done, ["--seed", "9"]),
        (_stray_category_file, []),
        (_unreadable_progress, []),
    ],
)
def test_every_search_refusal_that_names_force_is_solved_by_force(tmp_path, make, args):
    out = tmp_path / "db"
    make(out)
    (out / "notes.txt").write_text("mine")
    cmd = ["search", "--categories", "2", "--out", out, *ONE, *args]
    refused = cli(*cmd)
    _assert_clean_error(refused, "use --force")
    forced = cli(*cmd, "--force")
    assert forced.exit_code == 0, forced.output
    assert (out / "notes.txt").read_text() == "mine"
    assert len(load_database(out)) == int(dict(zip(cmd, cmd[1:]))["--categories"])


def test_a_db_yaml_fdgen_did_not_write_is_refused_even_with_force(tmp_path):
    out = tmp_path / "db"
    out.mkdir()
    (out / "db.yaml").write_text("services: [web]\n")
    for extra in ([], ["--force"]):
        result = cli("search", "--categories", "2", "--out", out, *ONE, *extra)
        _assert_clean_error(result, "not an fdgen database file")
        assert "--force" not in result.output
    assert (out / "db.yaml").read_text() == "services: [web]\n"


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    _assert_clean_error(cli("search", "--out", str(tmp_path / "file" / "db"), *QUICK), "--out")


def test_preset_with_an_override_reproduces_published_categories(tmp_path, fractaldb_1k):
    out = tmp_path / "db"
    result = cli("search", "--preset", "FractalDB-1k", "--categories", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    meta = yaml.safe_load((out / "db.yaml").read_text())
    assert meta["settings"]["rng"] == "legacy" and meta["settings"]["seed"] == 1
    for i in range(3):
        published = np.loadtxt(fractaldb_1k / f"{i:05d}.csv", delimiter=",")
        mine = np.loadtxt(out / "categories" / f"{i:05d}.csv", delimiter=",")
        assert np.array_equal(mine, published)


def test_presets_info_and_preview(tmp_path):
    listing = cli("presets")
    assert listing.exit_code == 0
    assert "FractalDB-1k" in listing.output and "FractalDB-10k" in listing.output
    db = make_db(tmp_path / "db", 3)
    info = cli("info", str(db))
    assert info.exit_code == 0 and "categories  3" in info.output
    sheet = tmp_path / "sheet.png"
    result = cli("preview", "--db", str(db), "--out", str(sheet), "--instances", "4")
    assert result.exit_code == 0, result.output
    import cv2

    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[0] > 128 and image.max() > 100


def test_a_preset_name_refuses_a_folder_of_that_name_with_other_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = cli("search", "--categories", "2", "--out", "FractalDB-1k", *QUICK)
    assert made.exit_code == 0, made.output
    result = cli("render", "--db", "FractalDB-1k", "--shards", "s", "--instances", "4")
    _assert_clean_error(result, "other settings than the preset FractalDB-1k")
    assert not (tmp_path / "s").exists()
