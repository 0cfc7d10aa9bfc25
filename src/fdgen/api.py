"""The library API: what the ``fdgen`` commands do, callable from Python.

``search``, ``render`` and ``verify`` write exactly what ``fdgen search``, ``fdgen render`` and
``fdgen verify`` write; their keyword options are the commands' long options with
underscores (``--fill-rate`` -> ``fill_rate``). They print nothing: ``progress=True`` shows the
CLI's progress bars on stderr, a callable receives a ``fdgen.progress.ProgressEvent`` per
step. Bad input raises ``fdgen.FdgenError``. They leave the process as they found it (no
signal handlers, no warning filters).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fdgen.catalog import all_presets, get_preset, preset_names
from fdgen.errors import FdgenError
from fdgen.families import DEFAULT_TYPE, get_family
from fdgen.progress import Progress, reporting

if TYPE_CHECKING:
    from fdgen.database import Database

_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
_MAPS = ("maps_min", "maps_max")  # the settings the one option ``maps`` (MIN-MAX) sets


def presets() -> dict[str, dict]:
    """Every shipped preset by name: ``type``, ``description``, ``search`` and ``render``."""
    return copy.deepcopy(all_presets())


def load_database(path: str | Path) -> Database:
    """Load an fdgen database folder or a folder of original FractalDB CSV files."""
    from fdgen.database import load_database as load

    return load(path)


def parse_maps(value: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``maps`` as (MIN, MAX) from ``"MIN-MAX"`` or a pair of whole numbers."""
    try:
        low, high = value.split("-") if isinstance(value, str) else value
        if isinstance(low, bool) or isinstance(high, bool):
            raise ValueError
        return int(low), int(high)
    except (TypeError, ValueError):
        raise FdgenError(f"--maps: expected MIN-MAX, e.g. 2-7, got {value!r}") from None


def _check_types(cls, values: dict, where: str) -> None:
    """Values of settings ``cls`` must have their field's type (an int is a float too)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in values.items():
        kinds = _TYPES.get(str(fields[name].type))
        if kinds and (
            not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))
        ):
            option = "--" + ("maps" if name in _MAPS else name).replace("_", "-")
            raise FdgenError(f"{option}: expected {fields[name].type}, got {value!r} ({where})")


def _check_whole(value, option: str, low: int = 1) -> None:
    """A whole-number option (workers, samples per shard, ...) must be an int >= ``low``."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
        raise FdgenError(f"{option}: expected a whole number >= {low}, got {value!r}")


def build_settings(cls, preset_values: dict, given: dict, where: str):
    """A settings dataclass from preset values overridden by the given options (option name
    with underscores: value; ``maps`` is MIN-MAX); an option ``cls`` lacks is an error."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in preset_values.items() if k in fields}
    for name, value in given.items():
        if name == "maps" and set(_MAPS) <= fields:
            values["maps_min"], values["maps_max"] = parse_maps(value)
        elif name in fields and name not in _MAPS:
            values[name] = value
        elif name in _MAPS:
            raise FdgenError(f"{name}: not an option; give both as maps=MIN-MAX (--maps)")
        else:
            option = "--" + name.replace("_", "-")
            raise FdgenError(f"{option} does not apply to {where}")
    _check_types(cls, values, where)
    return cls(**values)


def _options(options: dict) -> dict:
    """The options given: those that are not None."""
    return {name: value for name, value in options.items() if value is not None}


def search_settings(type: str | None = None, preset: str | None = None, **options):
    """(family, search settings) of a search: the family's defaults, then the preset's
    ``search`` section, then ``options`` (None: not given)."""
    preset_cfg = get_preset(preset) if preset else {}
    type_ = type or preset_cfg.get("type", DEFAULT_TYPE)
    if preset_cfg and preset_cfg["type"] != type_:
        raise FdgenError(f"--type {type_} contradicts --preset {preset} ({preset_cfg['type']})")
    family = get_family(type_)
    settings = build_settings(
        family.SearchSettings, preset_cfg.get("search", {}), _options(options), f"--type {type_}"
    )
    return family, settings


def preset_settings(name: str) -> tuple[Any, Any]:
    """The effective (search, render) settings of preset ``name``: its family's defaults
    with the preset's sections on top."""
    cfg = get_preset(name)
    family = get_family(cfg["type"])
    return (
        family.SearchSettings(**cfg.get("search", {})),
        family.RenderSettings(**cfg.get("render", {})),
    )


@dataclass(frozen=True)
class SearchResult:
    """What a search did: the folder, its ``db.yaml`` content, whether the folder already held
    the database (nothing was searched), and the files there that fdgen did not write."""

    out: Path
    meta: dict
    already_complete: bool = False
    left: list[str] = field(default_factory=list)


def search(
    out: str | Path | None = None,
    *,
    type: str | None = None,
    preset: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    force: bool = False,
    progress: Progress = False,
    **options,
) -> SearchResult:
    """Search a category database into ``out`` (default: the preset's name, else
    ``TYPE-CATEGORIES``), like ``fdgen search``. ``options``: the family's search settings
    (``categories``, ``fill_rate``, ``seed``, ``maps="2-7"``, ...)."""
    from fdgen.searching import run_search

    _check_whole(workers, "--workers")
    family, settings = search_settings(type, preset, **options)
    out = Path(out) if out is not None else Path(preset or f"{family.type}-{settings.categories}")
    with reporting(progress):
        meta = run_search(family, settings, out, workers, resume, force, preset=preset)
    left = meta.pop("left")
    done = bool(meta.pop("already_complete", False))
    return SearchResult(out, meta, done, left)


def resolve_database(
    db: Database | str | Path,
    workers: int | None = None,
    num_shards: int = 1,
    notice: Callable[[str], None] | None = None,
) -> Database:
    """The database ``db`` names: a loaded one, a folder, or a preset name (its folder in the
    working directory, searched first when missing; ``notice`` is told so)."""
    from fdgen.database import Database, load_database, read_meta

    if isinstance(db, Database):
        return db
    db_arg = str(db)
    path = Path(db)
    known = preset_names()  # names only: parsing every preset imports every family
    if db_arg not in known:
        if not path.exists() and "/" not in db_arg:
            names = ", ".join(known)
            raise FdgenError(f"--db: {db_arg} is neither a folder nor a preset ({names})")
        return load_database(path)
    cfg = all_presets()[db_arg]
    family = get_family(cfg["type"])
    settings = family.SearchSettings(**cfg.get("search", {}))
    meta = read_meta(path) if path.exists() else None
    if meta is None:
        if num_shards > 1:
            raise FdgenError(
                f"--num-shards: every partition would run the search of preset {db_arg} at "
                f"once; run `fdgen search --preset {db_arg} --out {db_arg}` first"
            )
        if notice:
            notice(f"{db_arg}: no finished database folder here; running the preset's search")
        from fdgen.searching import run_search

        run_search(family, settings, path, workers, resume=True, preset=db_arg)
    elif (
        meta["type"] != cfg["type"]
        or meta.get("settings") != dataclasses.asdict(settings)
        or meta.get("preset", db_arg) != db_arg
    ):
        raise FdgenError(
            f"--db: the folder {path} holds a database made with other settings than the "
            f"preset {db_arg}; move or rename it, or search the preset into another folder"
        )
    loaded = load_database(path)
    loaded.meta.setdefault("preset", db_arg)  # a folder searched before db.yaml named presets
    return loaded


def render_settings(db: Database, preset: str | None = None, **options):
    """The render settings of ``db``: the family's defaults, then the ``render`` section of
    ``preset`` (default: the preset ``db.yaml`` records), then ``options`` (None: not
    given). ``fdgen info DB`` prints the result without options."""
    from fdgen.database import render_settings as database_settings

    given = _options(options)
    family = get_family(db.type)
    known = {f.name for f in dataclasses.fields(family.RenderSettings)}
    for name in given:
        if name not in known:
            raise FdgenError(f"--{name.replace('_', '-')} does not apply to type {db.type}")
    _check_types(family.RenderSettings, given, f"type {db.type}")
    if preset is None:
        return database_settings(db, **given)
    cfg = get_preset(preset)
    if cfg["type"] != db.type:
        raise FdgenError(f"--preset: {preset} is a {cfg['type']} preset, the database is {db.type}")
    return family.RenderSettings(**{**cfg.get("render", {}), **given})


@dataclass(frozen=True)
class RenderResult:
    """What a render did: the shard folder, its manifest (``status`` ``complete`` or
    ``partial``, ``rendered_now``, ``images_per_s``, ...) and the files fdgen did not write."""

    out: Path
    manifest: dict
    left: list[str] = field(default_factory=list)


def render(
    db: Database | str | Path,
    shards: str | Path | None = None,
    *,
    preset: str | None = None,
    format: str = "png",
    samples_per_shard: int = 5000,
    workers: int | None = None,
    force: bool = False,
    backend: str | None = None,
    scheduler: str | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
    rehash: bool = False,
    val_instances: int = 0,
    val_images: int = 0,
    writer: str = "webdataset",
    progress: Progress = False,
    **options,
) -> RenderResult:
    """Render every sample of ``db`` (a ``Database``, a folder or a preset name) into
    WebDataset shards under ``shards`` (default ``DB-shards``), like ``fdgen render``;
    ``writer`` ``files`` writes one image folder per category, ``parquet`` Parquet shards.
    ``options``: the family's render settings (``instances``, ``size``, ``seed``, ...), over
    those of ``preset`` or of the preset the database was searched from. ``val_instances``
    (families whose sample is a category instance) or ``val_images`` (per-image families):
    that many more per category (or images) from a held-out seed, as the ``val`` split in
    ``val-NNNNNN.tar`` (``.parquet``) shards; ``writer`` ``files`` has no validation split."""
    from fdgen.encode import FORMATS
    from fdgen.output.writers import writer_class
    from fdgen.rendering import render_dataset
    from fdgen.runners import default_workers

    if format not in FORMATS:
        raise FdgenError(f"--format: {format!r}: choose from {', '.join(FORMATS)}")
    _check_whole(samples_per_shard, "--samples-per-shard")
    _check_whole(workers, "--workers")
    _check_whole(shard_index, "--shard-index", low=0)
    _check_whole(num_shards, "--num-shards")
    _check_whole(val_instances, "--val-instances", low=0)
    _check_whole(val_images, "--val-images", low=0)
    writer_type = writer_class(writer)
    workers = workers or default_workers()
    with reporting(progress):
        db = resolve_database(db, workers, num_shards)
        val = val_count(db.type, val_instances, val_images)
        settings = render_settings(db, preset, **options)
        out = Path(shards) if shards is not None else Path(f"{db.path.name}-shards")
        if backend == "local" and scheduler:
            raise FdgenError("--scheduler applies only to --backend dask")
        manifest = render_dataset(
            db, settings, out, format, samples_per_shard, workers, force,
            shard_index=shard_index, num_shards=num_shards, rehash=rehash,
            backend=backend or ("dask" if scheduler else "local"), scheduler=scheduler, val=val,
            writer=writer_type,
        )  # fmt: skip
    left = manifest.pop("left")
    return RenderResult(out, manifest, left)


def val_count(type_: str, val_instances: int = 0, val_images: int = 0) -> int:
    """The validation split's samples per unit for family ``type_``: ``val_instances`` for a
    family whose sample is a category instance, ``val_images`` for a per-image family; the
    option that does not fit the family, or a negative count, is an error naming it."""
    _check_whole(val_instances, "--val-instances", low=0)
    _check_whole(val_images, "--val-images", low=0)
    per_image = get_family(type_).sample_unit == "image"
    wrong, right = ("instances", "images") if per_image else ("images", "instances")
    given = {"instances": val_instances, "images": val_images}
    if given[wrong]:
        what = "one image drawn from every category" if per_image else "one category instance"
        raise FdgenError(
            f"--val-{wrong} does not apply to type {type_} (its sample is {what}): use "
            f"--val-{right} N"
        )
    return given[right]


def estimate(
    db: Database | str | Path,
    *,
    preset: str | None = None,
    format: str = "png",
    samples_per_shard: int = 5000,
    val_instances: int = 0,
    val_images: int = 0,
    **options,
):
    """The plan of ``render`` with these arguments and its cost from a short calibration
    render in this process (``fdgen.estimate.Estimate``); writes nothing. ``db`` must be a
    database already searched (a preset name is its folder here, never searched)."""
    from fdgen.database import Database, load_database
    from fdgen.encode import FORMATS
    from fdgen.estimate import estimate_render

    if format not in FORMATS:
        raise FdgenError(f"--format: {format!r}: choose from {', '.join(FORMATS)}")
    _check_whole(samples_per_shard, "--samples-per-shard")
    if not isinstance(db, Database):
        if str(db) in preset_names() and not Path(db).exists():
            raise FdgenError(
                f"--db: {db} is a preset with no database folder here; a dry run searches "
                f"nothing: run `fdgen search --preset {db} --out {db}` first"
            )
        db = load_database(db)
    val = val_count(db.type, val_instances, val_images)
    settings = render_settings(db, preset, **options)
    return estimate_render(db, settings, format, samples_per_shard, val)


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of a verify: per-shard checks (``fdgen.output.ShardCheck``), problems of
    the index files, samples checked, and ``ok``: whether nothing is wrong."""

    out: Path
    manifest: dict
    shards: list
    index_problems: list[str]
    samples: int
    decode: bool = False
    rerender: int | str = 0

    @property
    def ok(self) -> bool:
        return not self.bad and not self.index_problems

    @property
    def bad(self) -> list:
        """The checks of shards with problems."""
        return [c for c in self.shards if not c.ok]

    @property
    def problems(self) -> list[str]:
        """Every problem, one line each, naming the shard (or the folder)."""
        lines = [f"{self.out / c.name}: {p}" for c in self.bad for p in c.problems]
        return lines + [f"{self.out}: {p}" for p in self.index_problems]

    @property
    def summary(self) -> str:
        """One line: shards OK, samples checked (and compared with a fresh render)."""
        total = len(self.shards)
        what = "decoded and checked" if self.decode else "checked"
        line = f"{self.out}: {total - len(self.bad)} of {total} shards OK, {self.samples:,} "
        line += f"samples {what}"
        if self.rerender:
            rerendered = sum(c.rerendered for c in self.shards)
            line += f", {rerendered:,} compared with a fresh render"
        return line

    def failure(self) -> str:
        """The summary with what is wrong and what to do about it (for a report not ``ok``)."""
        from fdgen import __version__
        from fdgen.output import sidecar_name

        bad, index_problems = self.bad, len(self.index_problems)
        names = ", ".join(c.name for c in bad[:5]) + (", ..." if len(bad) > 5 else "")
        fresh = [c for c in bad if any("from a fresh render" in p for p in c.problems)]
        advice = ". Rerun the same `fdgen render` (with --rehash for damage that kept the size)"
        if fresh:
            version = self.manifest.get("fdgen_version")
            advice += (
                f"; samples that differ from a fresh render are sealed by their sidecar: delete "
                f"{sidecar_name(fresh[0].index, fresh[0].split)}"
                + (" (and the others named)" if len(fresh) > 1 else "")
                + " before rerunning it"
                + (
                    f" (the shards were rendered by fdgen {version}, this is {__version__}: "
                    "a changed renderer differs too)"
                    if version and version != __version__
                    else ""
                )
            )
        return (
            f"{self.summary}; {len(bad)} shard(s) with problems"
            + (f" ({names})" if bad else "")
            + (f"; {index_problems} index problem(s)" if index_problems else "")
            + advice
        )


def verify(
    shards: str | Path,
    *,
    decode: bool = False,
    rerender: int | str = 0,
    db: str | Path | None = None,
    workers: int = 1,
    progress: Progress = False,
) -> VerifyReport:
    """Check every shard of a folder against its sidecar and the plan, like ``fdgen verify``;
    ``rerender`` N (or ``"all"``) samples per shard are rendered again and compared byte for
    byte (``db``: the database, if it moved since the render). Problems are in the report,
    not raised: check ``.ok``. A folder that is not a shard folder raises ``FdgenError``."""
    from fdgen.output import ShardFolder, verify_folder
    from fdgen.progress import progress_bar

    out = Path(shards)
    _check_whole(workers, "--workers")
    if rerender != "all" and (
        not isinstance(rerender, int) or isinstance(rerender, bool) or rerender < 0
    ):
        raise FdgenError(f"--rerender: {rerender!r}: expected a whole number >= 0 or 'all'")
    if db is not None and not rerender:
        raise FdgenError("--db applies only with --rerender N (N >= 1) or --rerender all")
    if not out.is_dir():
        raise FdgenError(f"{out}: not an fdgen shard folder (no such folder)")
    manifest = ShardFolder(out).read_manifest()
    source = None
    if rerender:
        from fdgen.output.rerender import load_source

        source = load_source(out, manifest, None if db is None else Path(db))  # before any work
    with reporting(progress), progress_bar("verify", manifest.total_shards, "shards") as update:
        found = verify_folder(out, decode, lambda check: update(1), workers, rerender, source)
    return VerifyReport(
        out, manifest.to_dict(), found.shards, found.index_problems, found.samples, decode, rerender
    )
