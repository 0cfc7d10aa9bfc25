"""Helpers for the scale-out and fault tests: a tiny database, its reference render, snapshots.

The dataset is 3 categories x 8 instances of 64 px images from 2,000 points, 8 samples per
shard (3 shards); every render here takes well under a second once numba has compiled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

import fdgen
from fdgen.cli import main

SRC = Path(fdgen.__file__).resolve().parents[1]
FIXTURE_CSVS = Path(__file__).resolve().parents[2] / "shared/fixtures/fractaldb-1k-categories"
TINY = ["--instances", "8", "--size", "64", "--points", "2000", "--samples-per-shard", "8"]


def make_db(folder: Path, categories: int = 3) -> Path:
    """A folder of the first ``categories`` published FractalDB-1k category CSVs."""
    if not FIXTURE_CSVS.is_dir():
        pytest.fail(f"missing test fixtures at {FIXTURE_CSVS}")
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(categories):
        shutil.copy(FIXTURE_CSVS / f"{k:05d}.csv", folder / f"{k:05d}.csv")
    return folder


def render_args(db: Path, out: Path, *extra: str, tiny=TINY) -> list[str]:
    """``fdgen render`` arguments for the tiny dataset."""
    return ["render", "--db", str(db), "--shards", str(out), "--workers", "1", *tiny, *extra]


def cli(*args: str):
    """Run the CLI in-process; returns click's Result."""
    return CliRunner().invoke(main, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Bytes of every shard, sidecar and index file (the manifest holds timings; left out)."""
    keep = [
        p
        for p in Path(folder).iterdir()
        if p.name.startswith("shard-") or p.name in ("_info.json", "sizes.json")
    ]
    return {p.name: p.read_bytes() for p in sorted(keep)}


def leftovers(folder: Path) -> list[str]:
    """Temporary files in a shard folder (half-written shards, atomic-write temporaries)."""
    return sorted(
        p.name for p in Path(folder).iterdir() if p.name.endswith(".partial") or ".tmp" in p.name
    )


def subprocess_env() -> dict[str, str]:
    """Environment for child processes that must import this fdgen."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(SRC) + (os.pathsep + path if path else "")}


# A child process running the CLI with ``Sample.encoded`` wrapped: it can sleep before every
# image (FDGEN_TEST_SLEEP seconds) or SIGKILL itself at image FDGEN_TEST_KILL_AT, so that a
# fault lands mid-shard deterministically. The library itself has no test hooks.
CHILD = """
import os, signal, sys, time
from fdgen.families.base import Sample
encode, count = Sample.encoded, [0]
sleep = float(os.environ.get("FDGEN_TEST_SLEEP", "0"))
kill_at = int(os.environ.get("FDGEN_TEST_KILL_AT", "0"))
def wrapped(*args, **kwargs):
    count[0] += 1
    if count[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(sleep)
    return encode(*args, **kwargs)
Sample.encoded = wrapped
if os.environ.get("FDGEN_TEST_FSIZE"):
    import resource
    limit = int(os.environ["FDGEN_TEST_FSIZE"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from fdgen.cli import main
main(sys.argv[1:], prog_name="fdgen")
"""


def child(args: list[str], wait: bool = True, **env: str):
    """Run the CLI in a child process (see CHILD); returns CompletedProcess or Popen."""
    cmd = [sys.executable, "-c", CHILD, *map(str, args)]
    full_env = subprocess_env() | {k: str(v) for k, v in env.items()}
    if wait:
        return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=120)
    return subprocess.Popen(
        cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# A child process running the CLI that SIGKILLs itself just before the FDGEN_TEST_KILL_AT-th
# change (a rename or a deletion) inside the folder FDGEN_TEST_OUT: a deterministic point in a
# search's sequence of writes, counted only there (numba's cache writes elsewhere).
SEARCH_CHILD = """
import os, signal, sys
out = os.path.abspath(os.environ["FDGEN_TEST_OUT"]) + os.sep
kill_at, count = int(os.environ["FDGEN_TEST_KILL_AT"]), [0]
def counted(real):
    def change(path, *args, **kwargs):
        if os.path.abspath(os.fspath(path)).startswith(out):
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(path, *args, **kwargs)
    return change
os.replace, os.unlink = counted(os.replace), counted(os.unlink)
from fdgen.cli import main
main(sys.argv[1:], prog_name="fdgen")
"""


def search_child(args: list[str], out: Path, kill_at: int):
    """Run the CLI in a child process that kills itself at change ``kill_at`` in ``out``."""
    cmd = [sys.executable, "-c", SEARCH_CHILD, *map(str, args)]
    env = subprocess_env() | {"FDGEN_TEST_OUT": str(out), "FDGEN_TEST_KILL_AT": str(kill_at)}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def dask_processes(folder: Path, workers: list[list[str]]) -> Iterator[tuple[str, list]]:
    """A real ``dask scheduler`` and one ``dask worker`` per entry of ``workers`` (its extra
    arguments), as child processes on 127.0.0.1 with ports the OS picks and no dashboards.
    Yields (scheduler address, [scheduler, worker...] Popen objects) once every worker has
    joined; kills them all on exit."""
    import distributed

    scheduler_file = Path(folder) / "scheduler.json"
    env = subprocess_env()
    dask = [sys.executable, "-m", "dask"]
    common = ["--scheduler-file", str(scheduler_file), "--no-dashboard"]
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = []
    try:
        scheduler = [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", *common]
        procs.append(subprocess.Popen(scheduler, **quiet))
        wait_for(scheduler_file.exists, what="the dask scheduler")
        worker = [*dask, "worker", *common, "--no-nanny", "--host", "127.0.0.1"]
        for extra in workers:
            procs.append(subprocess.Popen([*worker, *extra], **quiet))
        address = json.loads(scheduler_file.read_text())["address"]
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(len(workers), timeout=60)
        yield address, procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=30)


def copy_folder(ref: Path, dest: Path) -> Path:
    """A copy of a shard folder to damage in a test."""
    shutil.copytree(ref, dest)
    return dest
