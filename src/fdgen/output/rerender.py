"""``verify --rerender``: render chosen samples of a shard again and compare them byte for byte.

fdgen is deterministic, so a fresh render of a sample equals what the shard holds. This
catches what sidecar hashes cannot: wrong pixels written and then sealed by a sidecar (a
faulty node, a changed renderer). The database is loaded from the path the manifest records
(or ``--db``) and must have the digest the manifest records; only the groups that hold the
chosen samples are rendered (the four flips of a FractalDB variant share one rendering).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fdgen.database import load_database
from fdgen.errors import FdgenError
from fdgen.families import get_family
from fdgen.families.base import Family
from fdgen.output.folder import TRAIN, VAL, Manifest, ShardFolder
from fdgen.output.plan import ShardPlan
from fdgen.rendering import ShardTask, Split, render_splits, shard_samples, split_task

ALL = "all"
_CHOICE_KEY = 0x5256  # separates the choice of samples to re-render from every other stream


@dataclass(frozen=True)
class Source:
    """What re-rendering a folder's samples needs: the database, settings, format and plan
    (the training split's), and every split of the render."""

    db: object  # fdgen.database.Database
    settings: object
    fmt: str
    plan: ShardPlan
    splits: tuple[Split, ...] = ()

    @property
    def family(self) -> Family:
        return get_family(self.db.type)

    def split(self, name: str) -> Split:
        """The split ``name`` of the render."""
        for split in self.splits:
            if split.name == name:
                return split
        if name == TRAIN:
            return Split(TRAIN, self.settings, self.plan)
        raise KeyError(name)


def load_source(folder: Path, manifest: Manifest, db_path: Path | None = None) -> Source:
    """The database and settings a shard folder was rendered from, checked against its
    manifest; ``db_path`` overrides the recorded database path (a moved database)."""
    where = ShardFolder(folder).manifest_path
    identity = manifest.identity
    plan = manifest.plan
    needed = {"plan": plan, "database": manifest.database}
    needed |= {f"identity.{k}": identity.get(k) for k in ("type", "format", "database_digest")}
    needed["identity.samples_per_shard"] = identity.get("samples_per_shard")
    lacking = [name for name, value in needed.items() if value is None]
    if lacking:
        raise FdgenError(
            f"--rerender: {where} does not record {', '.join(lacking)} (written by an older "
            "fdgen?); the samples cannot be rebuilt from it"
        )
    option = "--db" if db_path is not None else "--rerender"
    path = Path(db_path if db_path is not None else manifest.database)
    try:
        db = load_database(path)
    except FdgenError as exc:
        hint = "" if db_path is not None else "; pass --db with its location if it moved"
        raise FdgenError(
            f"{option}: cannot load the database these shards were rendered from ({exc}){hint}"
        ) from None
    digest = db.digest()
    if db.type != identity["type"] or digest != identity["database_digest"]:
        raise FdgenError(
            f"{option}: {path} is not the database these shards were rendered from: its digest "
            f"is {digest[:16]}... (type {db.type}), {where} records identity.database_digest "
            f"{identity['database_digest'][:16]}... (type {identity['type']})"
        )
    family = get_family(db.type)
    try:
        settings = family.RenderSettings(**identity["settings"])
    except (TypeError, FdgenError) as exc:
        raise FdgenError(
            f"--rerender: {where}: identity.settings do not fit type {db.type} ({exc})"
        ) from None
    splits = render_splits(db, settings, identity["samples_per_shard"], identity.get(VAL, 0))
    recorded = [split.plan for split in manifest.splits()]
    if [s.plan for s in splits] != recorded or dataclasses.asdict(settings) != identity["settings"]:
        raise FdgenError(
            f"--rerender: {where}: the recorded plan or settings differ from what this fdgen "
            "builds from them; the samples cannot be rebuilt"
        )
    return Source(db, settings, identity["format"], splits[0].plan, tuple(splits))


def chosen_keys(plan: ShardPlan, index: int, family: Family, count: int | str) -> list[str]:
    """The keys of shard ``index`` to re-render, in writing order: ``count`` of them picked by
    a generator seeded from the shard index (the same ones on every run), or every one."""
    keys = [family.sample_key(u, i) for u, _, instances in plan.members(index) for i in instances]
    if count == ALL or count >= len(keys):
        return keys
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([_CHOICE_KEY, index])))
    picks = rng.choice(len(keys), size=count, replace=False)
    return [keys[k] for k in sorted(picks.tolist())]


@dataclass
class ShardRerender:
    """The chosen samples of one shard and the means to render them afresh (picklable)."""

    task: ShardTask  # the shard's task, its members cut down to the chosen instances
    keys: frozenset
    _fresh: dict = field(default_factory=dict, repr=False)

    def compare(self, key: str, stored: dict[str, bytes], members=None) -> list[str]:
        """Problems of stored sample ``key`` against a fresh render (none when identical);
        ``members``: only these members are stored (the files writer keeps the image)."""
        if key not in self._fresh:
            self._render_group_of(key)
        fresh = self._fresh.pop(key)
        if members is not None:
            fresh = {ext: data for ext, data in fresh.items() if ext in members}
        where = f"sample {key}"
        problems = [
            f"{where}: member .{ext} differs from a fresh render"
            for ext in fresh
            if ext in stored and stored[ext] != fresh[ext]
        ]
        lost = [ext for ext in fresh if ext not in stored]
        extra = [ext for ext in stored if ext not in fresh]
        if lost:
            problems.append(f"{where}: a fresh render has member(s) .{', .'.join(lost)} too")
        if extra:
            problems.append(f"{where}: member(s) .{', .'.join(extra)} not in a fresh render")
        return problems

    def _render_group_of(self, key: str) -> None:
        family = get_family(self.task.type)
        for member in self.task.members:
            unit, _, instances = member
            if key in [family.sample_key(unit, i) for i in instances]:
                group = dataclasses.replace(self.task, members=[member])
                for sample in shard_samples(group):
                    self._fresh[sample.key] = sample.encoded()
                return
        raise KeyError(key)  # only chosen keys are compared


def shard_rerender(
    source: Source, index: int, count: int | str, split: str = TRAIN
) -> ShardRerender:
    """The re-render check of shard ``index`` of ``split``: ``count`` seeded samples, or
    ``all``."""
    family = source.family
    chosen = source.split(split)
    keys = set(chosen_keys(chosen.plan, index, family, count))
    task = split_task(source.db, family, chosen, source.fmt, index)
    members = []
    for unit, group, instances in task.members:
        picked = [i for i in instances if family.sample_key(unit, i) in keys]
        if picked:
            members.append((unit, group, picked))
    return ShardRerender(dataclasses.replace(task, members=members), frozenset(keys))
