"""Faults a render must survive (issue 5), each one a test:

SIGKILL mid-shard, a file-size limit and a full disk, damaged shards, two renders at once,
a Dask worker killed mid-run, and malformed category files / db.yaml / presets.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fdgen.shards
from fdgen.database import load_database
from fdgen.errors import FdgenError
from fdgen.families.fractal2d import read_category
from fdgen.presets import parse_preset
from fdgen.shards import read_sidecar, verify_shard
from tiny_shards import (
    FIXTURE_CSVS,
    child,
    cli,
    dask_processes,
    leftovers,
    make_db,
    render_args,
    snapshot,
    wait_for,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(database folder, reference shard folder from one uninterrupted render)."""
    root = tmp_path_factory.mktemp("faults")
    db = make_db(root / "db")
    ref = root / "ref"
    result = cli(*render_args(db, ref))
    assert result.exit_code == 0, result.output
    return db, ref


# --- SIGKILL mid-shard ------------------------------------------------------------------------


def test_sigkill_mid_shard_then_rerun_is_byte_identical(tiny, tmp_path):
    db, ref = tiny
    out = tmp_path / "out"
    args = render_args(db, out)
    # image 12 of 24: shard 0 (8 images) is finished, shard 1 is half written
    killed = child(args, FDGEN_TEST_KILL_AT=12)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert read_sidecar(out, 0) is not None
    assert not (out / "shard-000001.json").exists()
    assert [p for p in leftovers(out) if p.startswith("shard-000001.tar.")], leftovers(out)
    status = cli("status", out)
    assert "1 of 3 shards complete" in status.output
    assert "incomplete 1: shard-000001.tar" in status.output
    rerun = child(args)
    assert rerun.returncode == 0, rerun.stderr
    assert "16 rendered now" in rerun.stdout  # shard 0 was kept
    assert snapshot(out) == snapshot(ref)
    assert leftovers(out) == []


# --- write errors -----------------------------------------------------------------------------


def test_file_size_limit_is_a_clear_error_and_a_rerun_completes(tiny, tmp_path):
    db, ref = tiny
    out = tmp_path / "out"
    args = render_args(db, out)
    # RLIMIT_FSIZE of 20,000 bytes: every 30,720-byte shard hits EFBIG part-way
    limited = child(args, FDGEN_TEST_FSIZE=20000)
    assert limited.returncode == 1, limited.stderr
    assert "Traceback" not in limited.stderr
    assert "Error: shard-000000.tar: cannot write it in" in limited.stderr
    assert "File too large" in limited.stderr
    assert "not marked complete" in limited.stderr
    assert not (out / "shard-000000.json").exists()
    assert leftovers(out) == []
    rerun = child(args)
    assert rerun.returncode == 0, rerun.stderr
    assert snapshot(out) == snapshot(ref)


def test_full_disk_keeps_earlier_shards_and_a_rerun_completes(tiny, tmp_path, monkeypatch):
    db, ref = tiny
    out = tmp_path / "out"
    budget = [45_000]  # bytes of shard data the "disk" takes: shard 0 fits, shard 1 does not
    write = fdgen.shards.ShardWriter._write

    def full_disk(self, data):
        budget[0] -= len(data)
        if budget[0] < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(self, data)

    monkeypatch.setattr(fdgen.shards.ShardWriter, "_write", full_disk)
    result = cli(*render_args(db, out))
    assert result.exit_code == 1
    assert "Error: shard-000001.tar: cannot write it in" in result.output
    assert "No space left on device" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert verify_shard(out, 0, manifest, fdgen.shards.manifest_plan(manifest)).ok
    assert not (out / "shard-000001.json").exists()
    assert not (out / "shard-000002.tar").exists()
    assert leftovers(out) == []
    monkeypatch.undo()  # space freed
    result = cli(*render_args(db, out))
    assert result.exit_code == 0, result.output
    assert "16 rendered now" in result.output
    assert snapshot(out) == snapshot(ref)


def test_unwritable_folder_is_a_clear_error(tiny, tmp_path):
    db, _ = tiny
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli(*render_args(db, blocker))
    assert result.exit_code == 1
    assert "exists and is not a folder" in result.output
    result = cli(*render_args(db, blocker / "sub"))
    assert result.exit_code == 1
    assert "cannot lock" in result.output


# --- damaged shards ---------------------------------------------------------------------------


def test_damaged_shards_are_found_by_verify_and_redone_by_render(tiny, tmp_path):
    db, ref = tiny
    out = tmp_path / "out"
    assert cli(*render_args(db, out)).exit_code == 0
    shard0 = out / "shard-000000.tar"
    data = bytearray(shard0.read_bytes())
    data[2000] ^= 0x01  # same size, one bit off
    shard0.write_bytes(bytes(data))
    shard1 = out / "shard-000001.tar"
    shard1.write_bytes(shard1.read_bytes()[:12_345])  # truncated
    (out / "shard-000002.json").write_text('{"shard": 2, "byt')  # damaged sidecar
    result = cli("verify", out)
    assert result.exit_code == 1
    for name in ("shard-000000.tar", "shard-000001.tar", "shard-000002.tar"):
        assert name in result.output.split("Error:")[1]
    # A plain rerun checks sizes and sidecars: it redoes shards 1 and 2 ...
    result = cli(*render_args(db, out))
    assert "16 rendered now" in result.output
    assert cli("verify", out).exit_code == 1  # ... but the same-size damage needs --rehash
    result = cli(*render_args(db, out, "--rehash"))
    assert result.exit_code == 0, result.output
    assert "8 rendered now" in result.output
    assert cli("verify", out, "--decode").exit_code == 0
    assert snapshot(out) == snapshot(ref)


# --- two renders at once ----------------------------------------------------------------------


def test_second_render_into_the_same_folder_is_refused(tiny, tmp_path):
    db, ref = tiny
    out = tmp_path / "out"
    args = render_args(db, out)
    first = child(args, wait=False, FDGEN_TEST_SLEEP=0.5)  # ~12 s for 24 images
    try:
        wait_for(lambda: (out / "manifest.json").exists(), what="the first render to start")
        second = cli(*args)
        assert second.exit_code == 1
        assert "is being rendered by another fdgen process" in second.output
        assert f"pid {first.pid}" in second.output
        same_partition = cli(*args, "--shard-index", 0, "--num-shards", 2)
        assert same_partition.exit_code == 1
        assert "being rendered whole" in same_partition.output
    finally:
        first.kill()  # a crash: the kernel drops the lock with the process
        first.communicate()
    third = cli(*args)
    assert third.exit_code == 0, third.output
    assert snapshot(out) == snapshot(ref)
    assert leftovers(out) == []


# --- a Dask worker killed mid-run -------------------------------------------------------------

# Loaded into one worker only: it SIGKILLs its own process at its third image, mid-shard.
KILLER_PRELOAD = """
import os, signal
from fdgen.families.base import Sample
encode, count = Sample.encoded, [0]
def wrapped(*args, **kwargs):
    count[0] += 1
    if count[0] == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return encode(*args, **kwargs)
Sample.encoded = wrapped
"""


@pytest.fixture
def dask_cluster(tmp_path):
    """A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (random
    ports); the first worker kills itself mid-shard. Always torn down."""
    pytest.importorskip("distributed", reason="the optional extra fdgen[dask] is not installed")
    preload = tmp_path / "killer_preload.py"
    preload.write_text(KILLER_PRELOAD)
    killer = ["--nthreads", "1", "--preload", str(preload)]
    with dask_processes(tmp_path, [killer, ["--nthreads", "1"]]) as (address, procs):
        yield address, procs[1]


def test_dask_worker_killed_mid_run_still_completes_identically(tiny, tmp_path, dask_cluster):
    db, ref = tiny
    address, killer = dask_cluster
    out = tmp_path / "out"
    result = cli(*render_args(db, out, "--scheduler", address))
    assert result.exit_code == 0, result.output
    assert killer.wait(timeout=30) == -signal.SIGKILL  # it did die mid-shard
    assert snapshot(out) == snapshot(ref)
    assert leftovers(out) == []


# --- malformed inputs (property-based) --------------------------------------------------------

FUZZ = settings(
    max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
VALID_CSV = (FIXTURE_CSVS / "00000.csv").read_text() if FIXTURE_CSVS.is_dir() else "1,0,0,1,0,0,1\n"
VALID_PRESET = (Path(fdgen.shards.__file__).parent / "presets" / "FractalDB-1k.yaml").read_text()
VALID_DB_YAML = "type: fractal\ncategories: 1\nsettings: {seed: 0}\n"

csv_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="0123456789.,-+eE \n\tnaif", max_size=300),
    st.lists(
        st.lists(
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers()),
            min_size=0,
            max_size=9,
        ).map(lambda row: ",".join(map(str, row))),
        max_size=8,
    ).map("\n".join),
    st.integers(0, len(VALID_CSV)).map(lambda n: VALID_CSV[:n]),
)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
meta_like = st.fixed_dictionaries(
    {},
    optional={
        "type": json_like | st.just("fractal"),
        "categories": json_like | st.just(1),
        "settings": json_like,
        "fill_rates": json_like,
    },
)


def _yaml_texts(valid: str, structured):
    return st.one_of(
        st.text(max_size=300),
        st.integers(0, len(valid)).map(lambda n: valid[:n]),
        structured.map(lambda obj: yaml.safe_dump(obj)),
    )


def _category_ok(params) -> bool:
    return (
        isinstance(params, np.ndarray)
        and params.ndim == 2
        and params.shape[1] == 7
        and np.isfinite(params).all()
        and (params[:, 6] >= 0).all()
        and params[:, 6].sum() > 0
    )


@FUZZ
@given(text=csv_text)
def test_random_category_files_load_or_fail_clearly(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "00000.csv"
        path.write_text(text)
        try:
            params = read_category(path)
        except FdgenError as exc:
            assert str(path) in exc.message
        else:
            assert _category_ok(params)


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_as_category_file_load_or_fail_clearly(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "00000.csv"
        path.write_bytes(data)
        try:
            assert _category_ok(read_category(path))
        except FdgenError as exc:
            assert str(path) in exc.message


@FUZZ
@given(text=_yaml_texts(VALID_DB_YAML, meta_like))
def test_random_db_yaml_loads_or_fails_clearly(text):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "categories").mkdir()
        (folder / "categories" / "00000.csv").write_text(VALID_CSV)
        (folder / "db.yaml").write_text(text)
        try:
            db = load_database(folder)
        except FdgenError as exc:
            assert str(folder) in exc.message
        else:
            assert db.type == "fractal" and len(db) == 1


@FUZZ
@given(
    text=_yaml_texts(
        VALID_PRESET,
        st.fixed_dictionaries(
            {},
            optional={
                "type": json_like | st.just("fractal"),
                "search": json_like
                | st.dictionaries(st.sampled_from(["seed", "points", "size"]), json_like),
                "render": json_like
                | st.dictionaries(st.sampled_from(["size", "draw", "pad"]), json_like),
            },
        ),
    )
)
def test_random_presets_parse_or_fail_clearly(text):
    try:
        cfg = parse_preset(text, "fuzz.yaml")
    except FdgenError as exc:
        assert exc.message.startswith("fuzz.yaml")
    else:
        assert cfg["type"] == "fractal"


@settings(max_examples=15, deadline=5000, derandomize=True)
@given(meta=_yaml_texts(VALID_DB_YAML, meta_like), csv=csv_text)
def test_cli_on_malformed_database_exits_cleanly(meta, csv):
    """Through the CLI: exit code 0, or 1/2 with an ``Error:`` line; never a traceback."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "db"
        (folder / "categories").mkdir(parents=True)
        (folder / "categories" / "00000.csv").write_text(csv)
        (folder / "db.yaml").write_text(meta)
        for args in (
            ["info", folder],
            [
                "preview",
                "--db",
                folder,
                "--out",
                Path(tmp) / "p.png",
                "--categories",
                "1",
                "--instances",
                "1",
            ],
        ):
            result = cli(*args)
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                result.output,
                result.exc_info,
            )
            if result.exit_code:
                assert "Error:" in result.output
