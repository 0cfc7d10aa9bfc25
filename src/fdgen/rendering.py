"""Rendering a database into shards: database -> plan -> tasks -> runner -> writer.

The folder (``fdgen.output.folder.ShardFolder``) says which shards are finished and owns every
file name; a ``fdgen.output.writers.Writer`` turns each task's samples into files.

A render has one or two splits (``Split``): ``train``, the samples the settings describe, and
with ``val`` N > 0 a validation split of N more samples per category (per-image families: N
more images). The validation split renders with the held-out seed ``val_seed(seed)`` = seed +
2**63: every per-sample stream of every family is keyed by (seed, ...), so no validation
sample shares a stream with a training sample. For any training seed below 2**63 the keys
differ already in SeedSequence's second 32-bit word (at least 2**31 for the held-out seed,
below 2**31 for every training key: categories, instances and stream constants are below
2**31), so a validation split never repeats a training sample of any render with such a seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

from fdgen import __version__
from fdgen.database import Database
from fdgen.errors import FdgenError
from fdgen.families import get_family
from fdgen.families.base import Family, Group, Sample
from fdgen.output.folder import (
    DEFAULT_WRITER,
    TRAIN,
    VAL,
    Manifest,
    ShardFolder,
    Sidecar,
    file_sha256,
    shard_name,
)
from fdgen.output.plan import ShardPlan
from fdgen.output.writers import WebDatasetWriter, Writer
from fdgen.progress import progress_bar
from fdgen.runners import BACKENDS, run_tasks


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
    split: str = TRAIN  # the split the shard belongs to (its file names)


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


def _write_error(task: ShardTask, exc: OSError, writer: str = DEFAULT_WRITER) -> FdgenError:
    reason = exc.strerror or str(exc)
    if exc.filename2:  # a rename into place failed: name its target (e.g. a folder there)
        reason += f": {exc.filename2}"
    return FdgenError(
        f"{shard_name(task.index, task.split, writer)}: cannot write it in {task.out} ({reason}); "
        "it is "
        "not marked complete and finished shards are kept: free space or fix the cause, then "
        "rerun the same command"
    )


VAL_SEED_OFFSET = 1 << 63  # the validation split's seed is the training seed plus this


def shard_plan(db: Database, settings, samples_per_shard: int) -> ShardPlan:
    """The plan of a render: which groups of instances go to which shard."""
    units, per_unit, group = get_family(db.type).plan_shape(settings, len(db))
    return ShardPlan(units, per_unit, group, samples_per_shard, settings.seed)


def val_seed(seed: int) -> int:
    """The held-out seed of the validation split of a render with ``seed`` (module doc)."""
    return seed + VAL_SEED_OFFSET


@dataclass(frozen=True)
class Split:
    """One split of a render: its name (``train``, ``val``), the settings its samples render
    with (the validation split's carry the held-out seed) and its shard plan."""

    name: str
    settings: object
    plan: ShardPlan


def render_splits(db: Database, settings, samples_per_shard: int, val: int = 0) -> list[Split]:
    """The splits of a render: ``train`` (what ``settings`` describe) and, when ``val`` > 0,
    ``val``: ``val`` samples per unit (category, or the one unit of per-image families) of the
    same shape, from the held-out seed, planned (and shuffled) by that seed."""
    train = Split(TRAIN, settings, shard_plan(db, settings, samples_per_shard))
    if not val:
        return [train]
    held_out = dataclasses.replace(settings, seed=val_seed(settings.seed))
    plan = dataclasses.replace(train.plan, instances=val, seed=held_out.seed)
    return [train, Split(VAL, held_out, plan)]


def split_named(splits: list[Split], name: str) -> Split:
    """The split ``name`` of ``splits``; a clear error if the render has none."""
    for split in splits:
        if split.name == name:
            return split
    if name == VAL:
        raise FdgenError(
            "split: 'val' needs a validation split: give val_instances (categories) or "
            "val_images (per-image families) > 0"
        )
    raise FdgenError(f"split: must be one of {TRAIN}, {VAL}, got {name!r}")


def shard_task(
    db: Database,
    family: Family,
    settings,
    fmt: str,
    plan: ShardPlan,
    index: int,
    out: str = "",
    split: str = TRAIN,
) -> ShardTask:
    """The self-contained task that renders shard ``index`` of ``plan`` (of ``split``)."""
    members = plan.members(index)
    units = sorted({unit for unit, _, _ in members})
    inputs = {unit: family.unit_input(db, unit) for unit in units}
    return ShardTask(out, index, db.type, settings, fmt, members, inputs, split)


def split_task(db: Database, family: Family, split: Split, fmt: str, index: int, out: str = ""):
    """The task of shard ``index`` of ``split``."""
    return shard_task(db, family, split.settings, fmt, split.plan, index, out, split.name)


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


def render_shard(task: ShardTask, writer: type[Writer] = WebDatasetWriter) -> Sidecar:
    """Render one shard through ``writer``; returns its sidecar record.

    Write errors (a full disk, a file-size limit) become an ``FdgenError`` naming the shard;
    the writer drops what it wrote and no sidecar is written, so the shard stays incomplete.
    """
    try:
        out = writer(ShardFolder(task.out, task.split, writer.name), task.index)
    except OSError as exc:
        raise _write_error(task, exc, writer.name) from None
    try:
        for sample in shard_samples(task):
            out.write(sample)
        return out.commit()
    except OSError as exc:
        out.abort()
        raise _write_error(task, exc, writer.name) from None
    except BaseException:
        out.abort()
        raise


def _identity(db: Database, settings, fmt: str, per_shard: int, val: int, writer: str) -> dict:
    identity = {
        "type": db.type,
        "settings": dataclasses.asdict(settings),
        "format": fmt,
        "samples_per_shard": per_shard,
        "database_digest": db.digest(),
        "writer": writer,
    }
    if val:  # absent without a validation split: manifests of earlier renders still match
        identity[VAL] = val
    return identity


def _rehash(folder: ShardFolder, done: dict, indices: list[int], workers: int) -> list[int]:
    """Shards among ``indices`` whose sha256 differs from their sidecar (same-size damage)."""

    def damaged(j: int) -> bool:
        try:
            if folder.writer == "files":  # the shard is the images its sidecar lists
                files = done[j].files or []
                return any(file_sha256(folder.path / n)[0] != sha for n, _, sha in files)
            return file_sha256(folder.shard(j))[0] != done[j].sha256
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
    writer: type[Writer] = WebDatasetWriter,
    val: int = 0,
) -> dict:
    """Render every instance of every category of ``db`` into shards under ``out``; with
    ``val`` N > 0 also N more per category (per-image families: N more images) from the
    held-out seed into ``val-NNNNNN.tar`` shards (see ``render_splits``).

    Finished shards (sidecar present, size matching; with ``rehash`` also the sha256) are
    kept; the rest are (re)written. With ``num_shards`` N > 1 only the shards j with
    j % N == ``shard_index`` are rendered (one partition of a batch-scheduler array); whichever
    process finds every shard complete writes the index files. ``backend`` is ``local``
    (joblib on this machine) or ``dask`` (``scheduler`` address, or a LocalCluster). The folder
    is locked while it renders; files fdgen did not write are left alone (``force`` removes only
    fdgen's own files of other settings). Returns the manifest (``status`` ``complete`` or
    ``partial``) plus ``left``: the names of the files fdgen did not write. ``writer`` turns
    each shard's samples into files (``fdgen.output.writers``; WebDataset tars by default);
    its name is part of the render's identity, so a rerun with another writer is refused.
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
    if isinstance(val, bool) or not isinstance(val, int) or val < 0:
        raise FdgenError(f"--val-{_val_unit(family)}: expected a whole number >= 0, got {val!r}")
    writer.check_fit(family, settings, fmt, db.names, val)
    splits = render_splits(db, settings, samples_per_shard, val)
    identity = _identity(db, settings, fmt, samples_per_shard, val, writer.name)
    folder = ShardFolder(out, writer=writer.name)
    folder.check_owner(identity, force)  # checked again under the lock; this writes nothing
    try:
        with folder.lock(partition):
            folder = ShardFolder(out.absolute(), writer=writer.name)
            run = _Run(db, family, settings, fmt, splits, identity, folder, partition, writer)
            manifest = _render_locked(run, workers, force, name, backend, scheduler, rehash)
            return manifest | {"left": folder.foreign_files()}
    except OSError as exc:
        where = exc.filename2 or exc.filename or out  # a rename: its target
        raise FdgenError(f"--shards: cannot write {where} ({exc.strerror or exc})") from None


def _val_unit(family: Family) -> str:
    """What the validation count counts for ``family``: ``instances`` or ``images``."""
    return "images" if family.sample_unit == "image" else "instances"


@dataclass(frozen=True)
class _Run:
    """What one render call produces: database, family, settings, format and splits, the
    identity recorded in the manifest, the folder, the partition (None: all shards) and the
    writer of each shard."""

    db: Database
    family: Family
    settings: object
    fmt: str
    splits: list[Split]
    identity: dict
    folder: ShardFolder
    partition: tuple[int, int] | None
    writer: type[Writer]


_RESULT_FIELDS = ("rendered_now", "elapsed_s", "images_per_s", "complete_shards")


def _render_locked(
    run: _Run, workers: int, force: bool, name, backend: str, scheduler, rehash: bool
) -> dict:
    """The body of ``render_dataset``, run while the folder's lock is held."""
    db, family, fmt, splits = run.db, run.family, run.fmt, run.splits
    identity, folder, partition = run.identity, run.folder, run.partition
    index, count = partition or (0, 1)
    train = splits[0].plan
    val = next((s.plan for s in splits if s.name == VAL), None)

    def mine(j: int) -> bool:
        return j % count == index

    held = folder.prepare(identity, force)
    manifest = Manifest(
        fdgen_version=__version__,
        identity=identity,
        database=str(db.path.absolute()),
        # the preset db.yaml names: "identity" holds the settings used, preset or not
        database_preset=db.meta.get("preset") or None,
        categories=len(db),
        num_shards=train.num_shards,
        num_samples=train.num_samples,
        plan=train,
        val=val,
        # "image": each sample is one image of many categories (keys img########, no cls)
        sample_unit=family.sample_unit,
        status="rendering",
    )
    if partition is None or not held:
        # Partitions of one array leave a manifest another partition wrote as it is.
        folder.save_manifest(manifest)
    if partition is None:
        folder.remove_stale_temporaries()
    # every shard of this process, as (split, shard index); a partition takes j % N == I of
    # each split
    own: list[tuple[Split, int]] = []
    done: dict[tuple[str, int], Sidecar | None] = {}
    for split in splits:
        files = folder.of_split(split.name)
        files.remove_partials(mine)
        listed = files.listing().whole()  # sidecars are read only where the listing has them
        for j in range(index, split.plan.num_shards, count):
            own.append((split, j))
            done[split.name, j] = files.read_sidecar(j) if j in listed else None
    if rehash:
        for split in splits:
            files = folder.of_split(split.name)
            finished = [j for (s, j) in own if s is split and done[s.name, j] is not None]
            for j in _rehash(files, {j: done[split.name, j] for j in finished}, finished, workers):
                files.sidecar(j).unlink(missing_ok=True)
                done[split.name, j] = None
    todo = [(split, j) for split, j in own if done[split.name, j] is None]
    lengths = {split.name: split.plan.shard_lengths() for split in splits}
    started = time.perf_counter()
    out = str(folder.path)

    def tasks():
        for split, j in todo:
            yield split_task(db, family, split, fmt, j, out)

    token = hashlib.sha256(f"{out}\0{json.dumps(identity, sort_keys=True)}".encode()).hexdigest()

    def key(task: ShardTask) -> str:
        return f"fdgen-{token[:12]}-{shard_name(task.index, task.split)}"

    rendered = 0
    total = sum(lengths[s.name][j] for s, j in own)
    render = partial(render_shard, writer=run.writer)
    with progress_bar("render", total, "images") as update:
        update(total - sum(lengths[s.name][j] for s, j in todo))
        runs = run_tasks(render, tasks(), workers, backend, scheduler, key) if todo else ()
        for record in runs:
            done[record.split, record.shard] = record
            rendered += record.samples
            rate = rendered / max(time.perf_counter() - started, 1e-9)
            update(record.samples, f"{rate:,.0f} img/s")
    elapsed = time.perf_counter() - started
    records: dict[tuple[str, int], Sidecar | None] = {}
    complete = 0
    every_listed = True
    for split in splits:
        files = folder.of_split(split.name)
        files.remove_partials(mine)  # left by Dask workers lost mid-shard
        listed = files.listing().whole()
        complete += len(listed)
        every_listed &= len(listed) >= split.plan.num_shards
    if every_listed:  # else another partition is at work: count, read nothing
        for split in splits:
            files = folder.of_split(split.name)
            for j in range(split.plan.num_shards):
                records[split.name, j] = files.read_sidecar(j)
        complete = sum(r is not None for r in records.values())
    manifest.rendered_now = rendered
    manifest.elapsed_s = round(elapsed, 3)
    manifest.images_per_s = round(rendered / elapsed, 1) if rendered else None
    manifest.complete_shards = complete
    fields = manifest.to_dict()
    result = {name: fields.get(name) for name in _RESULT_FIELDS}  # None ones too, for callers
    if complete < manifest.total_shards:
        # Another partition is still at work; the last one to finish writes the indexes.
        return fields | result | {"status": "partial", "diverged": None, "bytes": None}
    folder.write_indexes(name or db.path.name, {split.name: split.plan for split in splits})
    manifest.status = "complete"
    manifest.diverged = sum(r.diverged or 0 for r in records.values())
    manifest.bytes = sum(r.bytes for r in records.values())
    folder.save_manifest(manifest)
    return manifest.to_dict() | result
