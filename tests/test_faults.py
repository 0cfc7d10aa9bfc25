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

import fdgen.output.tar
from fdgen.database import load_database
from fdgen.errors import FdgenError
from fdgen.families.fractal2d import read_category
from fdgen.output import Manifest, ShardFolder, verify_shard
from fdgen.presets import parse_preset
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
    assert ShardFolder(out).read_sidecar(0) is not None
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
    write = fdgen.output.tar.TarStream._write

    def full_disk(self, data):
        budget[0] -= len(data)
        if budget[0] < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(self, data)

    monkeypatch.setattr(fdgen.output.tar.TarStream, "_write", full_disk)
    result = cli(*render_args(db, out))
    assert result.exit_code == 1
    assert "Error: shard-000001.tar: cannot write it in" in result.output
    assert "No space left on device" in result.output
    manifest = Manifest.load(out / "manifest.json")
    assert verify_shard(out, 0, manifest, manifest.plan).ok
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
VALID_PRESET = (Path(fdgen.__file__).parent / "presets" / "FractalDB-1k.yaml").read_text()
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


# --- damaged files fdgen reads back (issue 12) -------------------------------------------------

FUZZ_CLI = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HOSTILE = st.sampled_from(
    [10**12, 10**400, -1, 0, 2**63, float("nan"), float("inf"), -1e308, "", "x", None, True, [], {}]
)
hostile_json = st.recursive(
    HOSTILE | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
NESTED = "[" * 100_000 + "]" * 100_000  # deeper than Python's recursion limit


def _paths(obj, prefix=()):
    """Key paths into the mappings (and first list items) of a JSON value."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(obj, list) and obj:
        yield (*prefix, 0)
        yield from _paths(obj[0], (*prefix, 0))


def _mutated(obj, edits):
    """A deep copy of ``obj`` with each (path, delete, value) edit applied."""
    obj = json.loads(json.dumps(obj))
    for path, delete, value in edits:
        parent = obj
        try:
            for step in path[:-1]:
                parent = parent[step]
            if delete and isinstance(parent, dict):
                parent.pop(path[-1])
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):  # an earlier edit removed the path
            pass
    return obj


def damaged_flips(valid: bytes):
    """Hypothesis strategy: truncations and byte flips of ``valid``."""
    flips = st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)), max_size=4)

    def flipped(changes):
        data = bytearray(valid)
        for at, mask in changes:
            data[at] ^= mask
        return bytes(data)

    return st.integers(0, len(valid) - 1).map(lambda n: valid[:n]) | flips.map(flipped)


def damaged_versions(valid: bytes, fmt: str = "json"):
    """Hypothesis strategy: random bytes, truncations and byte flips of ``valid``, random
    structures, and copies of ``valid`` with fields deleted or set to hostile values."""
    if fmt == "json":
        obj = json.loads(valid)

        def dump(value):
            return json.dumps(value).encode()
    else:
        obj = yaml.safe_load(valid)

        def dump(value):
            return yaml.safe_dump(value).encode()

    paths = sorted(set(_paths(obj)), key=str)
    edit = st.tuples(st.sampled_from(paths), st.booleans(), hostile_json)
    return st.one_of(
        st.binary(max_size=200),
        damaged_flips(valid),
        hostile_json.map(dump),
        st.lists(edit, min_size=1, max_size=3).map(lambda edits: dump(_mutated(obj, edits))),
    )


def _assert_clean(result, *names: str) -> None:
    """Success, or exit 1 with exactly one ``Error:`` line and one of ``names`` in the output;
    never an uncaught exception or a traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output,
        result.exc_info,
    )
    assert "Traceback" not in result.output
    if result.exit_code:
        assert result.exit_code == 1, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, result.output
        assert any(name in result.output for name in names), (names, result.output)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """(finished legacy-stream search of 2 categories, unfinished search whose progress holds
    an rng_state and 128 accepted categories, the search arguments of each)."""
    root = tmp_path_factory.mktemp("searched")
    common = ["--type", "fractal", "--rng", "legacy", "--points", "1000", "--size", "64"]
    common += ["--fill-rate", "0.01", "--workers", "1"]
    small, big = [*common, "--categories", "2"], [*common, "--categories", "130"]
    done, unfinished = root / "done", root / "unfinished"
    for args, out in ((small, done), (big, unfinished)):
        result = cli("search", *args, "--out", out)
        assert result.exit_code == 0, result.output
    (unfinished / "db.yaml").unlink()  # as if killed during its last batch
    progress = json.loads((unfinished / "search-progress.json").read_text())
    assert progress["rng_state"] is not None and 0 < len(progress["fill_rates"]) < 130
    return done, unfinished, small, big


def _copy(folder: Path, tmp: str) -> Path:
    import shutil

    return Path(shutil.copytree(folder, Path(tmp) / folder.name))


def _shard_folder_commands(db: Path, out: Path) -> list[list]:
    return [["info", out], ["status", out], ["verify", out], render_args(db, out)]


def test_info_on_a_damaged_manifest_is_one_error_line(tiny, tmp_path):
    """The finding: ``fdgen info`` on a folder with a damaged manifest.json."""
    db, ref = tiny
    out = _copy(ref, str(tmp_path))
    manifest = out / "manifest.json"
    manifest.write_text(manifest.read_text()[:150])
    result = cli("info", out)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    [line] = result.output.splitlines()
    assert line.startswith(f"Error: {manifest}: damaged manifest (not JSON (")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe not utf-8",
        NESTED.encode(),
        b'{"num_shards": 1000000000000}',
        b"NaN",
    ],
    ids=["empty", "not-utf8", "nested", "num_shards-only", "nan"],
)
@pytest.mark.parametrize("name", ["manifest.json", "shard-000001.json", "_info.json"])
def test_special_damage_to_shard_folder_files(tiny, tmp_path, name, content):
    db, ref = tiny
    out = _copy(ref, str(tmp_path))
    (out / name).write_bytes(content)
    for args in _shard_folder_commands(db, out):
        _assert_clean(cli(*args), f"{out / name}", f"{out}: {name}", f"sidecar {name}")


@pytest.mark.parametrize("name", ["manifest.json", "shard-000001.json", "_info.json"])
def test_a_folder_in_place_of_a_shard_folder_file(tiny, tmp_path, name):
    db, ref = tiny
    out = _copy(ref, str(tmp_path))
    (out / name).unlink()
    (out / name).mkdir()
    for args in _shard_folder_commands(db, out):
        _assert_clean(cli(*args), f"{out / name}", f"{out}: {name}", f"sidecar {name}")
    (out / name).rmdir()  # fdgen removes no folder, even one in the place of its own file
    assert (
        cli(*render_args(db, out, *(["--force"] if name == "manifest.json" else []))).exit_code == 0
    )
    assert cli("verify", out).exit_code == 0


def test_hostile_num_shards_is_refused_against_the_plan(tiny, tmp_path):
    db, ref = tiny
    out = _copy(ref, str(tmp_path))
    manifest = json.loads((out / "manifest.json").read_text())
    for num_shards, why in ((10**5, "differ from the plan"), (10**12, "[0, 1000000]")):
        (out / "manifest.json").write_text(json.dumps({**manifest, "num_shards": num_shards}))
        for command in ("info", "status", "verify"):
            result = cli(command, out)
            assert result.exit_code == 1
            assert f"Error: {out / 'manifest.json'}: damaged manifest" in result.output
            assert why in result.output
    # the identity still matches: a rerun rewrites the manifest, renders nothing
    result = cli(*render_args(db, out))
    assert result.exit_code == 0, result.output
    assert "0 rendered now" in result.output
    assert cli("status", out).exit_code == 0


@FUZZ_CLI
@given(data=st.data())
def test_damaged_manifest_never_ends_in_a_traceback(tiny, data):
    db, ref = tiny
    content = data.draw(damaged_versions((ref / "manifest.json").read_bytes()))
    with tempfile.TemporaryDirectory() as tmp:
        out = _copy(ref, tmp)
        (out / "manifest.json").write_bytes(content)
        for args in _shard_folder_commands(db, out)[:3]:
            _assert_clean(cli(*args), str(out / "manifest.json"))
        rerun = cli(*render_args(db, out))
        _assert_clean(rerun, str(out / "manifest.json"), f"--shards: {out} holds shards of")
        if rerun.exit_code == 0:  # the identity was intact: the manifest is whole again
            assert cli("verify", out).exit_code == 0


@FUZZ_CLI
@given(data=st.data())
def test_damaged_sidecar_is_named_by_verify_and_redone_by_render(tiny, data):
    db, ref = tiny
    content = data.draw(damaged_versions((ref / "shard-000001.json").read_bytes()))
    with tempfile.TemporaryDirectory() as tmp:
        out = _copy(ref, tmp)
        (out / "shard-000001.json").write_bytes(content)
        for command in ("info", "status"):
            result = cli(command, out)
            assert result.exit_code == 0, result.output
        verify = cli("verify", out)
        _assert_clean(verify, f"{out / 'shard-000001.tar'}: ")
        if ShardFolder(out).read_sidecar(1) is None:  # not the sidecar of a complete shard
            assert verify.exit_code == 1
        result = cli(*render_args(db, out))
        assert result.exit_code == 0, result.output
        assert ShardFolder(out).read_sidecar(1) is not None


@FUZZ_CLI
@given(data=st.data())
def test_damaged_index_files_are_named_by_verify_and_rewritten(tiny, data):
    db, ref = tiny
    name = data.draw(st.sampled_from(["_info.json", "sizes.json"]))
    content = data.draw(damaged_versions((ref / name).read_bytes()))
    with tempfile.TemporaryDirectory() as tmp:
        out = _copy(ref, tmp)
        (out / name).write_bytes(content)
        for command in ("info", "status"):
            assert cli(command, out).exit_code == 0
        _assert_clean(cli("verify", out), f"{out}: {name}")
        assert cli(*render_args(db, out)).exit_code == 0
        assert cli("verify", out).exit_code == 0


YAML_ONLY = st.sampled_from(
    [
        "type: fractal\ncategories: 2\nsettings: 2020-01-01\n",
        "type: fractal\ncategories: 2\nsettings: &a [*a]\n",
        "type: fractal\ncategories: 2\nsettings: !!binary aGk=\n",
        "type: fractal\ncategories: 2\ncandidates_tried: many\n",
        "type: fractal\ncategories: 2\nsettings: !!python/object:os.system {}\n",
    ]
).map(str.encode)


@FUZZ_CLI
@given(data=st.data())
def test_damaged_db_yaml_never_ends_in_a_traceback(searched, data):
    done, _, small, _ = searched
    valid = (done / "db.yaml").read_bytes()
    content = data.draw(damaged_versions(valid, "yaml") | YAML_ONLY)
    with tempfile.TemporaryDirectory() as tmp:
        folder = _copy(done, tmp)
        (folder / "db.yaml").write_bytes(content)
        shards = Path(tmp) / "shards"
        for args in (
            ["info", folder],
            ["search", *small, "--out", folder],
            render_args(folder, shards, tiny=["--instances", "4", "--size", "32"]),
        ):
            _assert_clean(cli(*args), str(folder))


@FUZZ_CLI
@given(data=st.data())
def test_damaged_search_progress_never_ends_in_a_traceback(searched, data):
    _, unfinished, _, big = searched
    valid = (unfinished / "search-progress.json").read_bytes()
    content = data.draw(damaged_versions(valid))
    with tempfile.TemporaryDirectory() as tmp:
        folder = _copy(unfinished, tmp)
        (folder / "search-progress.json").write_bytes(content)
        _assert_clean(cli("info", folder), str(folder))
        resumed = cli("search", *big, "--out", folder, "--resume")
        _assert_clean(resumed, str(folder))
        if resumed.exit_code == 0:
            assert len(load_database(folder)) == 130


def test_progress_with_more_categories_than_asked_is_refused(searched, tmp_path):
    """It used to search forever: the loop stopped only at exactly --categories accepted."""
    _, unfinished, _, big = searched
    folder = _copy(unfinished, str(tmp_path))
    accepted = len(json.loads((folder / "search-progress.json").read_text())["fill_rates"])
    fewer = [*big[:-1], str(accepted - 1)]
    result = cli("search", *fewer, "--out", folder, "--resume")
    assert result.exit_code == 1
    path = folder / "search-progress.json"
    assert f"{path}: records {accepted} accepted categories, more than" in result.output
    assert cli("search", *big, "--out", folder, "--resume").exit_code == 0


@pytest.mark.parametrize(
    "family",
    ["rcdb", "visualatom", "fractal3d"],
)
@FUZZ
@given(data=st.data())
def test_random_category_files_of_other_families_load_or_fail_clearly(family, data):
    """Contour YAML (contour_base.read_record) and 3D CSV (ifs_csv.read_rows)."""
    from fdgen.families import get_family

    module = get_family(family)
    if family == "fractal3d":
        valid = ",".join(["0.5"] * 12 + ["1"]) + "\n" + ",".join(["-0.25"] * 12 + ["2"]) + "\n"
        texts = st.one_of(st.binary(max_size=200), csv_text.map(str.encode))
        content = data.draw(texts | damaged_flips(valid.encode()))
    else:
        valid = module.format_category(module.sample_category(0, 0))
        content = data.draw(damaged_versions(valid.encode(), "yaml") | YAML_ONLY)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"00000{module.category_suffix}"
        path.write_bytes(content)
        try:
            params = module.read_category(path)
        except FdgenError as exc:
            assert exc.message.startswith(str(path))
            return
        if family == "fractal3d":
            assert params.ndim == 2 and params.shape[1] == 13 and np.isfinite(params).all()
            assert (params[:, 12] >= 0).all() and params[:, 12].sum() > 0
        else:  # a valid record: it writes and reads back to itself
            path.write_text(module.format_category(params))
            assert module.read_category(path) == params


@pytest.mark.parametrize("name", ["db.yaml", "categories/00000.yaml"])
def test_deeply_nested_yaml_is_an_error_naming_the_file(tmp_path, name):
    folder = tmp_path / "db"
    assert cli("search", "--type", "rcdb", "--categories", "1", "--out", folder).exit_code == 0
    (folder / name).write_text("vertices: " + "[" * 2000 + "]" * 2000 + "\n")
    result = cli("info", folder)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {folder / name}: ")
    assert "Traceback" not in result.output
