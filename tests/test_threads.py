"""Tasks run in threads give the bytes of a sequential run (issue 12).

A multi-threaded ``dask worker``, a thread pool over ``render_shard`` and a thread pool over a
search's ``evaluate_candidates`` are each compared with one thread doing the same work. The
data is large enough (6 categories x 100 instances, 60k points, 13 shards of 48 samples) that
threads switch mid-shard, where a shared scratch buffer would be overwritten.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from fdgen.database import load_database
from fdgen.families import fractal2d, fractal3d, get_family
from fdgen.render import render_shard, shard_plan, shard_samples, shard_task
from fdgen.search import run_search
from tiny_shards import cli, dask_processes, make_db, render_args, snapshot

THREADS = 4
CATEGORIES = 6
SETTINGS = fractal2d.RenderSettings(size=128, points=60_000, instances=100)
PER_SHARD = 50
ARGS = ["--instances", "100", "--size", "128", "--points", "60000"]
ARGS += ["--samples-per-shard", str(PER_SHARD)]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A folder of the first 6 published FractalDB-1k categories."""
    return make_db(tmp_path_factory.mktemp("threads") / "db", CATEGORIES)


@pytest.fixture(scope="module")
def local_render(published, tmp_path_factory) -> dict[str, bytes]:
    """Shards, sidecars and indexes of one single-process render."""
    out = tmp_path_factory.mktemp("threads") / "local"
    result = cli(*render_args(published, out, tiny=ARGS))
    assert result.exit_code == 0, result.output
    return snapshot(out)


def _differing(got: dict[str, bytes], want: dict[str, bytes]) -> list[str]:
    return sorted(name for name in want.keys() | got.keys() if got.get(name) != want.get(name))


def test_multithreaded_dask_worker_matches_a_local_render(published, local_render, tmp_path):
    pytest.importorskip("distributed", reason="the optional extra fdgen[dask] is not installed")
    with dask_processes(tmp_path, [["--nthreads", str(THREADS)]]) as (address, _):
        out = tmp_path / "dask"
        result = cli(*render_args(published, out, "--scheduler", address, tiny=ARGS))
        assert result.exit_code == 0, result.output
    assert len([n for n in local_render if n.endswith(".tar")]) == 13
    assert _differing(snapshot(out), local_render) == []


def _shard_bytes(tasks, run) -> list[bytes]:
    records = list(run(render_shard, tasks))
    assert sorted(r.shard for r in records) == [t.index for t in tasks]
    return [(Path(t.out) / f"shard-{t.index:06d}.tar").read_bytes() for t in tasks]


def _tasks(db, settings, out: Path, per_shard: int):
    family = get_family(db.type)
    plan = shard_plan(db, settings, per_shard)
    out.mkdir()
    return [
        shard_task(db, family, settings, "png", plan, j, str(out)) for j in range(plan.num_shards)
    ]


def _threaded(fn, items):
    """``fn`` over ``items`` on a pool of threads that switch at every chance they get (as on a
    busy worker), so that tasks interleave between two kernel calls of one sample."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            return list(pool.map(fn, items))
    finally:
        sys.setswitchinterval(interval)


@pytest.fixture(scope="module")
def db3(tmp_path_factory):
    """A small 3D database (its renderer reuses a point buffer and an image buffer)."""
    out = tmp_path_factory.mktemp("threads") / "db3"
    settings = fractal3d.SearchSettings(categories=2)
    run_search(get_family("fractal3d"), settings, out, workers=1, show_progress=False)
    return load_database(out)


@pytest.mark.parametrize("family", ["fractal", "fractal3d"])
def test_render_shard_in_threads_matches_sequential(family, published, db3, tmp_path):
    if family == "fractal":
        db, settings, per_shard = load_database(published), SETTINGS, PER_SHARD
    else:
        db, per_shard = db3, 24
        settings = fractal3d.RenderSettings(size=96, points=30_000, instances=96, models=8)
    sequential = _shard_bytes(_tasks(db, settings, tmp_path / "seq", per_shard), map)
    threaded = _shard_bytes(_tasks(db, settings, tmp_path / "thr", per_shard), _threaded)
    assert len(sequential) >= 2 * THREADS
    assert [k for k, (a, b) in enumerate(zip(sequential, threaded, strict=True)) if a != b] == []


def test_interleaved_shards_in_one_thread_match_one_at_a_time(published):
    """Two shards' samples drawn alternately (e.g. zipped datasets) are each shard's own."""
    db = load_database(published)
    plan = shard_plan(db, SETTINGS, PER_SHARD)
    family = get_family("fractal")
    tasks = [shard_task(db, family, SETTINGS, "png", plan, j) for j in (0, 1)]
    alone = [[sample.encoded() for sample in shard_samples(t)] for t in tasks]
    together = [[], []]
    for pair in zip(*(shard_samples(t) for t in tasks), strict=True):
        for k, sample in enumerate(pair):
            together[k].append(sample.encoded())
    assert len(alone[0]) == len(alone[1]) == 48
    assert together == alone


def _summary(batch) -> list[tuple]:
    return [(c.index, c.params.tobytes(), c.score, c.diverged, c.accepted) for c in batch]


@pytest.mark.parametrize("rng", ["default", "legacy"])
def test_search_batches_in_threads_match_sequential(rng):
    settings = fractal2d.SearchSettings(rng=rng, fill_rate=0.05)
    specs = [spec for spec, _ in islice(fractal2d.candidate_specs(settings, 0, None, 16), 8)]

    def evaluate(spec):
        return _summary(fractal2d.evaluate_candidates(settings, spec))

    sequential = [evaluate(spec) for spec in specs]
    threaded = _threaded(evaluate, specs)
    rates = [rate for batch in sequential for _, _, rate, _, _ in batch]
    assert len(set(rates)) > 100  # 128 distinct candidates, not one repeated
    assert np.mean([accepted for batch in sequential for *_, accepted in batch]) > 0
    assert [k for k, (a, b) in enumerate(zip(sequential, threaded, strict=True)) if a != b] == []
