"""Rendering a database into shards: plan, skip finished shards, run the rest, index them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fdgen import __version__, readback
from fdgen.database import Database, atomic_target, write_atomic
from fdgen.errors import FdgenError
from fdgen.families import get_family
from fdgen.families.base import Family, Group, Sample
from fdgen.progress import progress_bar
from fdgen.runners import BACKENDS, run_tasks
from fdgen.shards import (
    INFO_FILE,
    MANIFEST_FILE,
    SIZES_FILE,
    ShardPlan,
    ShardWriter,
    check_manifest,
    file_sha256,
    is_lock_file,
    lock_folder,
    partial_shard_index,
    read_sidecar,
    remove_partials,
    shard_name,
    sidecar_name,
    write_indexes,
)


@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs to write one shard (self-contained, picklable)."""

    out: str
    index: int
    type: str
    settings: object
    fmt: str
    members: list  # (unit, group, instances)
    inputs: dict  # unit -> (parameters, category file name), see Family.unit_input


@lru_cache(maxsize=2)
def _idle_renderers(type_: str, settings) -> list:
    """This process's renderers of ``settings`` that no task is using (kept for their
    buffers: a fresh fractal renderer costs ~4 ms of page faults at the default settings)."""
    return []


@contextmanager
def _borrowed_renderer(type_: str, settings) -> Iterator:
    """A renderer that nothing else uses until the block ends: renderers reuse scratch
    buffers, so tasks in threads (or interleaved generators) must never share one."""
    idle = _idle_renderers(type_, settings)
    try:
        renderer = idle.pop()
    except IndexError:
        renderer = get_family(type_).renderer(settings)
    try:
        yield renderer
    finally:
        idle.append(renderer)


def _write_error(task: ShardTask, exc: OSError) -> FdgenError:
    reason = exc.strerror or str(exc)
    if exc.filename2:  # a rename into place failed: name its target (e.g. a folder there)
        reason += f": {exc.filename2}"
    return FdgenError(
        f"{shard_name(task.index)}: cannot write it in {task.out} ({reason}); it is not marked "
        "complete and finished shards are kept: free space or fix the cause, then rerun the "
        "same command"
    )


def shard_plan(db: Database, settings, samples_per_shard: int) -> ShardPlan:
    """The plan of a render: which groups of instances go to which shard."""
    units, per_unit, group = get_family(db.type).plan_shape(settings, len(db))
    return ShardPlan(units, per_unit, group, samples_per_shard, settings.seed)


def shard_task(
    db: Database, family: Family, settings, fmt: str, plan: ShardPlan, index: int, out: str = ""
) -> ShardTask:
    """The self-contained task that renders shard ``index`` of ``plan``."""
    members = plan.members(index)
    units = sorted({unit for unit, _, _ in members})
    inputs = {unit: family.unit_input(db, unit) for unit in units}
    return ShardTask(out, index, db.type, settings, fmt, members, inputs)


def shard_samples(task: ShardTask) -> Iterator[Sample]:
    """Every sample of one shard, in writing order.

    Array members may be views of the renderer's buffer, valid until the next sample. The
    renderer is this call's alone while it runs, so tasks in threads never draw into each
    other's buffers. Shared by ``render_shard`` and the on-the-fly dataset (``fdgen.torch``),
    so both hold the same samples.
    """
    family = get_family(task.type)
    with _borrowed_renderer(task.type, task.settings) as renderer:
        for unit, number, instances in task.members:
            group = Group(unit, number, instances, *task.inputs[unit])
            yield from family.render_group(renderer, group, task.fmt)


def render_shard(task: ShardTask) -> dict:
    """Render and write one shard; returns its sidecar record.

    Write errors (a full disk, a file-size limit) become an ``FdgenError`` naming the shard;
    the temporary file is removed and no sidecar is written, so the shard stays incomplete.
    """
    try:
        writer = ShardWriter(Path(task.out), task.index)
    except OSError as exc:
        raise _write_error(task, exc) from None
    diverged = 0
    try:
        for sample in shard_samples(task):
            diverged += bool(sample.meta.get("diverged", False))
            writer.add(sample.key, sample.encoded())
        return writer.commit({"diverged": diverged})
    except OSError as exc:
        writer.abort()
        raise _write_error(task, exc) from None
    except BaseException:
        writer.abort()
        raise


def _identity(db: Database, settings, fmt: str, per_shard: int) -> dict:
    return {
        "type": db.type,
        "settings": dataclasses.asdict(settings),
        "format": fmt,
        "samples_per_shard": per_shard,
        "database_digest": db.digest(),
    }


_SHARD_FILE = re.compile(r"shard-\d{6,}\.(tar|json)")  # a shard or its sidecar
_INDEX_FILES = (MANIFEST_FILE, INFO_FILE, SIZES_FILE)


def _written_by_fdgen(path: Path) -> bool:
    """Whether ``path`` is a file of a name fdgen writes into a shard folder: shards, sidecars,
    indexes, the manifest, their temporary and partial files, the lock files."""
    if not path.is_file():
        return False
    if is_lock_file(path) or partial_shard_index(path) is not None:
        return True
    name = atomic_target(path.name)
    return name in _INDEX_FILES or _SHARD_FILE.fullmatch(name) is not None


def foreign_files(out: Path) -> list[str]:
    """Names of what ``out`` holds that fdgen did not write (sub-folders end in ``/``)."""
    if not out.is_dir():
        return []
    return sorted(
        p.name + ("/" if p.is_dir() else "") for p in out.iterdir() if not _written_by_fdgen(p)
    )


def _check(out: Path, identity: dict, force: bool) -> tuple[bool, bool]:
    """Refuse a folder whose fdgen files belong to another render (unless ``force``) or whose
    manifest is not fdgen's. Returns (the folder holds a manifest of this render, that
    manifest is whole); a manifest of this render whose other fields are damaged is rewritten.
    """
    manifest_path = out / MANIFEST_FILE
    if manifest_path.exists() and not manifest_path.is_file():
        raise FdgenError(
            f"--shards: {manifest_path} is not a file; fdgen writes its manifest there: move it "
            "away or choose another folder"
        )
    if manifest_path.is_file():
        try:
            held = readback.mapping(readback.parse_json(manifest_path))
        except (OSError, readback.BadContent) as exc:
            if force:
                return False, False
            reason = exc.strerror if isinstance(exc, OSError) else exc
            raise FdgenError(
                f"{manifest_path}: damaged manifest ({reason}); the shards beside it cannot be "
                "matched to this render: use --force to replace them (only files fdgen wrote "
                "are removed) or choose another folder"
            ) from None
        if not isinstance(held.get("identity"), dict):
            raise FdgenError(
                f"--shards: {manifest_path} is not an fdgen manifest; move it away or choose "
                "another folder"
            )
        if held["identity"] != identity:
            if not force:
                raise FdgenError(
                    f"--shards: {out} holds shards of a different database or settings; use "
                    "--force to replace them (only files fdgen wrote are removed) or choose "
                    "another folder"
                )
            return False, False
        try:
            check_manifest(held)
        except readback.BadContent:
            return True, False
        return True, True
    if not force and out.is_dir():
        unknown = sorted(
            p.name
            for p in out.iterdir()
            if _written_by_fdgen(p) and (p.name in _INDEX_FILES or _SHARD_FILE.fullmatch(p.name))
        )
        if unknown:
            raise FdgenError(
                f"--shards: {out} holds fdgen shard files ({', '.join(unknown[:3])}"
                f"{', ...' if len(unknown) > 3 else ''}) but no {MANIFEST_FILE}, so their "
                "settings are unknown; use --force to replace them or choose another folder"
            )
    return False, False


def _prepare(out: Path, identity: dict, force: bool) -> bool:
    """Check ``out`` against the requested render; with ``force`` remove the files fdgen wrote
    for other settings. Returns whether it holds a whole manifest of this render."""
    same, whole = _check(out, identity, force)
    if force and not same:
        for path in out.iterdir():
            if _written_by_fdgen(path) and not is_lock_file(path):  # locks: held by this process
                path.unlink()
    return whole


def _rehash(out: Path, done: dict, indices: list[int], workers: int) -> list[int]:
    """Shards among ``indices`` whose sha256 differs from their sidecar (same-size damage)."""

    def damaged(j: int) -> bool:
        try:
            return file_sha256(out / shard_name(j))[0] != done[j]["sha256"]
        except OSError:
            return True

    with ThreadPoolExecutor(max(1, workers)) as pool:  # hashlib releases the GIL
        flags = list(pool.map(damaged, indices))
    return [j for j, bad in zip(indices, flags, strict=True) if bad]


def render_dataset(
    db: Database,
    settings,
    out: Path,
    fmt: str = "png",
    samples_per_shard: int = 5000,
    workers: int = 1,
    force: bool = False,
    name: str | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
    backend: str = "local",
    scheduler: str | None = None,
    rehash: bool = False,
) -> dict:
    """Render every instance of every category of ``db`` into shards under ``out``.

    Finished shards (sidecar present, size matching; with ``rehash`` also the sha256) are
    kept; the rest are (re)written. With ``num_shards`` N > 1 only the shards j with
    j % N == ``shard_index`` are rendered (one partition of a batch-scheduler array); whichever
    process finds every shard complete writes the index files. ``backend`` is ``local``
    (joblib on this machine) or ``dask`` (``scheduler`` address, or a LocalCluster). The folder
    is locked while it renders; files fdgen did not write are left alone (``force`` removes only
    fdgen's own files of other settings). Returns the manifest (``status`` ``complete`` or
    ``partial``) plus ``left``: the names of the files fdgen did not write.
    """
    out = Path(out)
    if backend not in BACKENDS:
        raise FdgenError(
            f"--backend: unknown backend {backend!r}; choose from {', '.join(BACKENDS)}"
        )
    if scheduler and backend != "dask":
        raise FdgenError("--scheduler applies only to --backend dask")
    if not 0 <= shard_index < num_shards:
        raise FdgenError(
            f"--shard-index: must be in [0, {num_shards - 1}] for --num-shards {num_shards}"
        )
    partition = (shard_index, num_shards) if num_shards > 1 else None
    if partition and force:
        raise FdgenError(
            "--force cannot be combined with --num-shards: partitions share the folder; "
            "empty it once before starting them"
        )
    if out.exists() and not out.is_dir():
        raise FdgenError(f"--shards: {out} exists and is not a folder")
    family = get_family(db.type)
    plan = shard_plan(db, settings, samples_per_shard)
    identity = _identity(db, settings, fmt, samples_per_shard)
    _check(out, identity, force)  # checked again under the lock; this one writes nothing
    try:
        with lock_folder(out, partition):
            run = _Run(db, family, settings, fmt, plan, identity, out.absolute(), partition)
            manifest = _render_locked(run, workers, force, name, backend, scheduler, rehash)
            return manifest | {"left": foreign_files(out)}
    except OSError as exc:
        where = exc.filename2 or exc.filename or out  # a rename: its target
        raise FdgenError(f"--shards: cannot write {where} ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class _Run:
    """What one render call produces: database, family, settings, format and plan, the
    identity recorded in the manifest, the folder, and the partition (None: all shards)."""

    db: Database
    family: Family
    settings: object
    fmt: str
    plan: ShardPlan
    identity: dict
    out: Path
    partition: tuple[int, int] | None


def _render_locked(
    run: _Run, workers: int, force: bool, name, backend: str, scheduler, rehash: bool
) -> dict:
    """The body of ``render_dataset``, run while the folder's lock is held."""
    db, family, settings, fmt, plan = run.db, run.family, run.settings, run.fmt, run.plan
    identity, out, partition = run.identity, run.out, run.partition
    index, count = partition or (0, 1)

    def mine(j: int) -> bool:
        return j % count == index

    held = _prepare(out, identity, force)
    manifest = {
        "fdgen_version": __version__,
        "identity": identity,
        "database": str(db.path.absolute()),  # verify --rerender loads it from anywhere
        # the preset db.yaml names: "identity" holds the settings used, preset or not
        **({"database_preset": db.meta["preset"]} if db.meta.get("preset") else {}),
        "categories": len(db),
        "num_shards": plan.num_shards,
        "num_samples": plan.num_samples,
        "plan": dataclasses.asdict(plan),
        # "image": each sample is one image of many categories (keys img########, no cls)
        "sample_unit": family.sample_unit,
        "status": "rendering",
    }
    if partition is None or not held:
        # Partitions of one array leave a manifest another partition wrote as it is.
        write_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=1))
    remove_partials(out, mine)
    if partition is None:
        for stale in out.glob("." + "*.tmp*"):
            if _written_by_fdgen(stale):
                stale.unlink(missing_ok=True)
    own = [j for j in range(plan.num_shards) if mine(j)]
    done = {j: read_sidecar(out, j) for j in own}
    if rehash:
        for j in _rehash(out, done, [j for j in own if done[j] is not None], workers):
            (out / sidecar_name(j)).unlink(missing_ok=True)
            done[j] = None
    todo = [j for j in own if done[j] is None]
    lengths = plan.shard_lengths()
    started = time.perf_counter()

    def tasks():
        for j in todo:
            yield shard_task(db, family, settings, fmt, plan, j, str(out))

    token = hashlib.sha256(f"{out}\0{json.dumps(identity, sort_keys=True)}".encode()).hexdigest()

    def key(task: ShardTask) -> str:
        return f"fdgen-{token[:12]}-{shard_name(task.index)}"

    rendered = 0
    total = sum(lengths[j] for j in own)
    with progress_bar("render", total, "images") as update:
        update(total - sum(lengths[j] for j in todo))
        runs = run_tasks(render_shard, tasks(), workers, backend, scheduler, key) if todo else ()
        for record in runs:
            done[record["shard"]] = record
            rendered += record["samples"]
            rate = rendered / max(time.perf_counter() - started, 1e-9)
            update(record["samples"], f"{rate:,.0f} img/s")
    elapsed = time.perf_counter() - started
    remove_partials(out, mine)  # left by Dask workers lost mid-shard
    records = {j: read_sidecar(out, j) for j in range(plan.num_shards)}
    complete = sum(r is not None for r in records.values())
    manifest.update(
        rendered_now=rendered,
        elapsed_s=round(elapsed, 3),
        images_per_s=round(rendered / elapsed, 1) if rendered else None,
        complete_shards=complete,
    )
    if complete < plan.num_shards:
        # Another partition is still at work; the last one to finish writes the indexes.
        return manifest | {"status": "partial", "diverged": None, "bytes": None}
    write_indexes(out, name or db.path.name, plan)
    manifest.update(
        status="complete",
        diverged=sum(r.get("diverged", 0) for r in records.values()),
        bytes=sum(r["bytes"] for r in records.values()),
    )
    write_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=1))
    return manifest
