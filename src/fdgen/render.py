"""Rendering a database into shards: plan, skip finished shards, run the rest, index them."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np

from fdgen import __version__
from fdgen.database import Database, write_atomic
from fdgen.encode import encode_image
from fdgen.errors import FdgenError
from fdgen.families import get_family
from fdgen.progress import progress_bar
from fdgen.runners import run_local
from fdgen.shards import (
    INFO_FILE,
    MANIFEST_FILE,
    PARTIAL_SUFFIX,
    SIZES_FILE,
    ShardPlan,
    ShardWriter,
    read_sidecar,
    sample_key,
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
    members: list  # (category, group, instances)
    params: dict  # category -> parameters
    names: dict  # category -> category file name


@lru_cache(maxsize=2)
def _renderer(type_: str, settings):
    return get_family(type_).Renderer(settings)


def shard_images(task: ShardTask) -> Iterator[tuple[str, np.ndarray, dict]]:
    """(key, image, metadata) of every sample of one shard, in writing order.

    The image is a view of the renderer's buffer, valid until the next sample. Shared by
    ``render_shard`` and the on-the-fly dataset (``fdgen.torch``), so both hold the same samples.
    """
    renderer = _renderer(task.type, task.settings)
    for category, group, instances in task.members:
        params = task.params[category]
        for instance, image, fields in renderer.render_group(params, category, group, instances):
            meta = {"category": category, "instance": instance, **fields}
            meta["file"] = task.names[category]
            yield sample_key(category, instance), image, meta


def sample_fields(task: ShardTask, image: np.ndarray, meta: dict) -> dict[str, bytes]:
    """The tar members of one sample: encoded image, class label as text, metadata json."""
    two_level = getattr(_renderer(task.type, task.settings), "two_level_value", None)
    return {
        task.fmt: encode_image(image, task.fmt, two_level),
        "cls": str(meta["category"]).encode(),
        "json": json.dumps(meta, sort_keys=True).encode(),
    }


def render_shard(task: ShardTask) -> dict:
    """Render and write one shard; returns its sidecar record."""
    writer = ShardWriter(Path(task.out), task.index)
    diverged = 0
    try:
        for key, image, meta in shard_images(task):
            diverged += bool(meta.get("diverged", False))
            writer.add(key, sample_fields(task, image, meta))
        return writer.commit({"diverged": diverged})
    except BaseException:
        writer.abort()
        raise


def _identity(db: Database, family: ModuleType, settings, fmt: str, per_shard: int) -> dict:
    return {
        "type": db.type,
        "settings": dataclasses.asdict(settings),
        "format": fmt,
        "samples_per_shard": per_shard,
        "database_digest": db.digest(),
    }


def _prepare(out: Path, identity: dict, force: bool) -> None:
    manifest_path = out / MANIFEST_FILE
    if out.exists() and not out.is_dir():
        raise FdgenError(f"--shards: {out} exists and is not a folder")
    if manifest_path.exists():
        try:
            held = json.loads(manifest_path.read_text())["identity"]
        except (OSError, ValueError, KeyError, TypeError):
            held = None
        if held != identity:
            if not force:
                raise FdgenError(
                    f"--shards: {out} holds shards of a different database or settings; "
                    "use --force to replace them or choose another folder"
                )
            _clear(out)
    elif out.exists() and any(out.iterdir()):
        if not force:
            raise FdgenError(f"--shards: {out} is not empty and holds no fdgen shards; use --force")
        _clear(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob("*" + PARTIAL_SUFFIX):
            stale.unlink()
    except OSError as exc:
        raise FdgenError(f"--shards: cannot write to {out} ({exc.strerror})") from None


def _clear(out: Path) -> None:
    for pattern in ("shard-*", "." + "*.tmp*", "*" + PARTIAL_SUFFIX):
        for path in out.glob(pattern):
            path.unlink()
    for name in (MANIFEST_FILE, INFO_FILE, SIZES_FILE):
        (out / name).unlink(missing_ok=True)
    if any(out.iterdir()):
        shutil.rmtree(out)


def render_dataset(
    db: Database,
    settings,
    out: Path,
    fmt: str = "png",
    samples_per_shard: int = 5000,
    workers: int = 1,
    force: bool = False,
    name: str | None = None,
) -> dict:
    """Render every instance of every category of ``db`` into shards under ``out``.

    Finished shards (sidecar present, size matching) are kept; the rest are (re)written.
    Returns the final manifest.
    """
    out = Path(out)
    family = get_family(db.type)
    plan = ShardPlan(
        len(db), settings.instances, family.group_size(settings), samples_per_shard, settings.seed
    )
    identity = _identity(db, family, settings, fmt, samples_per_shard)
    _prepare(out, identity, force)
    manifest = {
        "fdgen_version": __version__,
        "identity": identity,
        "database": str(db.path),
        "categories": len(db),
        "num_shards": plan.num_shards,
        "num_samples": plan.num_samples,
        "status": "rendering",
    }
    write_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=1))
    done = {j: read_sidecar(out, j) for j in range(plan.num_shards)}
    todo = [j for j, record in done.items() if record is None]
    lengths = plan.shard_lengths()
    started = time.perf_counter()

    def tasks():
        for j in todo:
            members = plan.members(j)
            cats = sorted({c for c, _, _ in members})
            yield ShardTask(
                str(out), j, db.type, settings, fmt, members,
                {c: db.params[c] for c in cats},
                {c: db.names[c] + family.CATEGORY_SUFFIX for c in cats},
            )

    rendered = 0
    with progress_bar("render", plan.num_samples, "images") as update:
        update(plan.num_samples - sum(lengths[j] for j in todo))
        for record in run_local(render_shard, tasks(), workers):
            done[record["shard"]] = record
            rendered += record["samples"]
            rate = rendered / max(time.perf_counter() - started, 1e-9)
            update(record["samples"], f"{rate:,.0f} img/s")
    elapsed = time.perf_counter() - started
    write_indexes(out, name or db.path.name, plan)
    manifest.update(
        status="complete",
        diverged=sum(r["diverged"] for r in done.values()),
        bytes=sum(r["bytes"] for r in done.values()),
        rendered_now=rendered,
        elapsed_s=round(elapsed, 3),
        images_per_s=round(rendered / elapsed, 1) if rendered else None,
    )
    write_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=1))
    return manifest
