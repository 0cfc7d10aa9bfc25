"""The FractalDB category search: legacy reproduction, determinism, database, resume."""

from __future__ import annotations

import importlib
import json
import shutil
import signal

import numpy as np
import pytest
import yaml

from fdgen.database import load_database
from fdgen.errors import FdgenError
from fdgen.families import fractal2d, get_family
from fdgen.searching import run_search
from tiny_shards import cli, search_child

from slow_reference import fill_rate, legacy_orbit, splitmix64


def _search(out, workers=1, **kw):
    settings = fractal2d.SearchSettings(**kw)
    return run_search(get_family("fractal"), settings, out, workers=workers)


def _assert_reproduces(out, fixtures, n):
    db = load_database(out)
    assert len(db) == n
    for i in range(n):
        published = fixtures / f"{i:05d}.csv"
        assert np.array_equal(db.params[i], np.loadtxt(published, delimiter=",", ndmin=2)), i
        assert (out / "categories" / f"{i:05d}.csv").read_text() == published.read_text(), i


def test_legacy_stream_reproduces_first_100_published_categories(tmp_path, fractaldb_1k):
    meta = _search(tmp_path / "db", workers=2, categories=100, seed=1, rng="legacy")
    _assert_reproduces(tmp_path / "db", fractaldb_1k, 100)
    # REFERENCE 1.1: 4,536 candidates for the first 100 at fill rate 0.2.
    assert meta["candidates_tried"] == 4536


@pytest.mark.slow
def test_legacy_stream_reproduces_all_1000_published_categories(tmp_path, fractaldb_1k):
    _search(tmp_path / "db", workers=2, categories=1000, seed=1, rng="legacy")
    _assert_reproduces(tmp_path / "db", fractaldb_1k, 1000)


def test_default_stream_is_identical_for_any_worker_count(tmp_path):
    kw = dict(categories=6, seed=3, fill_rate=0.15, points=20000, size=128)
    one = _search(tmp_path / "w1", workers=1, **kw)
    two = _search(tmp_path / "w2", workers=2, **kw)
    for i in range(6):
        name = f"categories/{i:05d}.csv"
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()
    assert one["candidates_tried"] == two["candidates_tried"]
    assert one["fill_rates"] == two["fill_rates"]


def test_accepted_categories_pass_the_filter_by_an_independent_check(tmp_path):
    meta = _search(tmp_path / "db", categories=4, seed=5, fill_rate=0.15, points=20000, size=128)
    db = load_database(tmp_path / "db")
    for i, params in enumerate(db.params):
        assert 2 <= len(params) <= 7
        assert np.all(np.abs(params[:, :6]) <= 1)
        assert np.isclose(params[:, 6].sum(), 1.0)
        # Re-derive the candidate's orbit from its stream and measure with the slow version.
        _, state = fractal2d.default_candidate(
            fractal2d.SearchSettings(seed=5, points=20000, size=128), _index_of(db, i, tmp_path)
        )
        uniforms = _slow_uniforms(int(state), 20000)
        rate = fill_rate(legacy_orbit(params, uniforms, 20000), size=128)
        assert rate >= 0.15
        assert rate == pytest.approx(meta["fill_rates"][i], abs=1e-6)


def _slow_uniforms(state: int, count: int) -> list[float]:
    out = []
    for _ in range(count):
        state, bits = splitmix64(state)
        out.append((bits >> 11) / 2**53)
    return out


def _index_of(db, i, tmp_path):
    settings = fractal2d.SearchSettings(seed=5, points=20000, size=128)
    for k in range(10_000):
        params, _ = fractal2d.default_candidate(settings, k)
        if np.array_equal(params, db.params[i]):
            return k
    raise AssertionError("category not found in the stream")


def test_database_folder_format(tmp_path):
    out = tmp_path / "db"
    _search(out, categories=3, seed=2, fill_rate=0.15, points=20000, size=128)
    meta = yaml.safe_load((out / "db.yaml").read_text())
    assert meta["type"] == "fractal" and meta["categories"] == 3
    assert meta["settings"]["seed"] == 2 and meta["settings"]["rng"] == "default"
    assert len(meta["fill_rates"]) == 3 and meta["candidates_tried"] >= 3
    assert "elapsed_s" in meta and "fdgen_version" in meta
    files = sorted(p.name for p in (out / "categories").iterdir())
    assert files == ["00000.csv", "00001.csv", "00002.csv"]
    for line in (out / "categories" / "00000.csv").read_text().splitlines():
        fields = line.split(",")
        assert len(fields) == 7 and all("e" in f and len(f.split("e")[0]) >= 20 for f in fields)


def test_original_csv_folder_layouts_are_read(tmp_path, fractaldb_1k):
    nested = tmp_path / "orig"
    for i in range(4):
        sub = nested / f"csv{i // 2}"
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy(fractaldb_1k / f"{i:05d}.csv", sub)
    db = load_database(nested)
    assert db.names == ["00000", "00001", "00002", "00003"]
    assert np.array_equal(db.params[3], np.loadtxt(fractaldb_1k / "00003.csv", delimiter=","))


def test_interrupted_search_resumes_to_the_same_result(tmp_path, monkeypatch):
    kw = dict(categories=5, seed=4, fill_rate=0.15, points=20000, size=128)
    _search(tmp_path / "full", **kw)
    # Small batches so that the interruption falls mid-search (the result must not depend on it).
    monkeypatch.setattr(importlib.import_module("fdgen.searching"), "BATCH", 4)
    real = fractal2d.evaluate_candidates
    calls = {"n": 0}

    def flaky(settings, spec):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(settings, spec)

    monkeypatch.setattr(fractal2d.FractalDB, "evaluate_candidates", staticmethod(flaky))
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path / "part", **kw)
    assert not (tmp_path / "part" / "db.yaml").exists()
    monkeypatch.setattr(fractal2d.FractalDB, "evaluate_candidates", staticmethod(real))
    settings = fractal2d.SearchSettings(**kw)
    run_search(get_family("fractal"), settings, tmp_path / "part", workers=1, resume=True)
    for i in range(5):
        name = f"categories/{i:05d}.csv"
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "part" / name).read_bytes()


def test_legacy_search_can_be_extended_exactly(tmp_path, fractaldb_1k):
    out = tmp_path / "db"
    _search(out, categories=3, seed=1, rng="legacy")
    settings = fractal2d.SearchSettings(categories=8, seed=1, rng="legacy")
    run_search(get_family("fractal"), settings, out, workers=1, resume=True)
    _assert_reproduces(out, fractaldb_1k, 8)


EXTEND = ["--seed", "4", "--fill-rate", "0.1", "--points", "5000", "--size", "128"]
EXTEND += ["--workers", "1"]


def _database_bytes(folder) -> dict[str, object]:
    """Category file bytes, db.yaml and the saved progress, without their timings."""
    found: dict[str, object] = {
        p.name: p.read_bytes() for p in sorted((folder / "categories").iterdir())
    }
    meta = yaml.safe_load((folder / "db.yaml").read_text())
    progress = json.loads((folder / "search-progress.json").read_text())
    for record in (meta, progress):
        record.pop("elapsed_s")
    return found | {"db.yaml": meta, "search-progress.json": progress}


@pytest.fixture(scope="module", params=["default", "legacy"])
def extension(request, tmp_path_factory):
    """(rng, a finished 30-category search, an uninterrupted 200-category one) per stream."""
    root = tmp_path_factory.mktemp(f"extend-{request.param}")
    args = [*EXTEND, "--rng", request.param]
    assert cli("search", "--categories", "30", "--out", root / "30", *args).exit_code == 0
    assert cli("search", "--categories", "200", "--out", root / "200", *args).exit_code == 0
    assert len(load_database(root / "200")) == 200
    return request.param, root / "30", root / "200"


# Changes (renames, deletions) in the folder while 30 categories are extended to 200: 1 is
# the removal of db.yaml, 2-31 the redone last batch's files, 237 the final db.yaml.
@pytest.mark.parametrize("kill_at", [1, 2, 16, 31, 32, 120, 236, 237])
def test_a_killed_extension_is_never_taken_for_complete_and_resumes_exactly(
    tmp_path, extension, kill_at
):
    rng, thirty, uninterrupted = extension
    out = tmp_path / "db"
    shutil.copytree(thirty, out)
    before = load_database(thirty)
    args = ["search", "--categories", "200", "--out", out, *EXTEND, "--rng", rng]
    killed = search_child([*args, "--resume"], out, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    # The folder is the complete 30-category database it was, or refused as unfinished.
    try:
        db = load_database(out)
    except FdgenError as exc:
        assert "did not finish" in str(exc) and "--resume" in str(exc), str(exc)
    else:
        assert db.meta["categories"] == 30 and db.digest() == before.digest()
    plain = cli(*args)
    assert plain.exit_code != 0 and "pass --resume" in plain.output, plain.output
    resumed = cli(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert _database_bytes(out) == _database_bytes(uninterrupted)


def test_every_familys_category_files_are_known_as_fdgens():
    # --force and the stale-file cleanup remove only names with a family's category suffix.
    from fdgen.database import is_category_name
    from fdgen.families import FAMILIES, category_suffixes, get_family

    for name in FAMILIES:
        suffix = get_family(name).category_suffix
        assert suffix in category_suffixes() and is_category_name("00042" + suffix), name
    assert not is_category_name("readme.csv") and not is_category_name("00042.png")
