"""The ``fdgen`` command line: parse and validate options, call the library, report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from fdgen import __version__
from fdgen.errors import FdgenError
from fdgen.families import DEFAULT_TYPE, FAMILIES, get_family
from fdgen.presets import all_presets, get_preset


def _parse_maps(ctx, param, value):
    if value is None:
        return None
    try:
        low, high = (int(v) for v in value.split("-"))
    except ValueError:
        raise click.BadParameter("expected MIN-MAX, e.g. 2-7") from None
    return low, high


def _given(ctx: click.Context, names: list[str]) -> dict:
    """Options the user typed (not defaults), by parameter name."""
    return {
        n: ctx.params[n]
        for n in names
        if ctx.params.get(n) is not None
        and ctx.get_parameter_source(n) != click.core.ParameterSource.DEFAULT
    }


def build_settings(cls, preset_values: dict, given: dict, where: str):
    """A settings dataclass from preset values overridden by typed options."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in preset_values.items() if k in fields}
    for name, value in given.items():
        if name == "maps":
            values["maps_min"], values["maps_max"] = value
            name = "maps_min"
        elif name in fields:
            values[name] = value
        if name not in fields:
            option = "--" + name.replace("_", "-")
            raise FdgenError(f"{option} does not apply to {where}")
    return cls(**values)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fdgen")
def main() -> None:
    """Generate Formula-Driven Supervised Learning datasets (FractalDB and more)."""


SEARCH_OPTIONS = ["categories", "fill_rate", "seed", "points", "size", "pad", "maps", "rng"]
SEARCH_OPTIONS += ["variance"]


@main.command()
@click.option("--type", "type_", default=None, help=f"Formula family: {', '.join(FAMILIES)}.")
@click.option("--preset", default=None, help="Named dataset (see `fdgen presets`).")
@click.option("--categories", type=click.IntRange(min=1), help="Categories to keep [1000].")
@click.option("--fill-rate", type=click.FloatRange(0, 1, min_open=True), help="[0.2]")
@click.option("--variance", type=float, help="fractal3d: minimum variance per axis [0.05].")
@click.option("--seed", type=click.IntRange(min=0), help="Random seed [0].")
@click.option("--points", type=click.IntRange(min=2), help="Orbit points of the test [100000].")
@click.option("--size", type=click.IntRange(min=4, max=8192), help="Test raster size [512].")
@click.option("--pad", type=click.IntRange(min=0), help="Test raster padding [6].")
@click.option("--maps", callback=_parse_maps, help="Maps per category, MIN-MAX [2-7].")
@click.option("--rng", type=click.Choice(["default", "legacy"]), help="Random stream [default].")
@click.option("--workers", type=click.IntRange(min=1), help="Processes [all cores].")
@click.option("--out", type=click.Path(path_type=Path), help="Database folder to write.")
@click.option("--resume", is_flag=True, help="Continue an interrupted search in --out.")
@click.option("--force", is_flag=True, help="Start over: replace fdgen's database in --out.")
@click.pass_context
def search(ctx, type_, preset, workers, out, resume, force, **_):
    """Sample formula parameters and keep those that pass the family's filter."""
    from fdgen.search import run_search

    preset_cfg = get_preset(preset) if preset else {}
    type_ = type_ or preset_cfg.get("type", DEFAULT_TYPE)
    if preset_cfg and preset_cfg["type"] != type_:
        raise FdgenError(f"--type {type_} contradicts --preset {preset} ({preset_cfg['type']})")
    family = get_family(type_)
    settings = build_settings(
        family.SearchSettings,
        preset_cfg.get("search", {}),
        _given(ctx, SEARCH_OPTIONS),
        f"--type {type_}",
    )
    out = out or Path(preset or f"{type_}-{settings.categories}")
    meta = run_search(family, settings, out, workers, resume, force, preset=preset)
    if meta.get("already_complete"):
        click.echo(f"{out}: already holds these {meta['categories']} categories; nothing to do")
        _note_left(out, meta["left"])
        return
    tried = meta["candidates_tried"]
    click.echo(
        f"{out}: {meta['categories']} categories from {tried:,} candidates "
        f"({meta['categories'] / tried:.2%} accepted, {meta['diverged_candidates']} diverged) "
        f"in {meta['elapsed_s']:.1f} s"
    )
    _note_left(out, meta["left"])


def _note_left(out: Path, names: list[str]) -> None:
    """Say which files of ``out`` fdgen did not write and so left as they were."""
    if names:
        more = f", ... ({len(names) - 10} more)" if len(names) > 10 else ""
        shown = ", ".join(names[:10]) + more
        click.echo(f"{out}: left {len(names)} files that fdgen did not write: {shown}")


RENDER_OPTIONS = ["size", "pad", "points", "draw", "weight_delta", "instances", "seed"]
RENDER_OPTIONS += ["views", "models", "view_jitter", "output", "images", "objects", "mask"]


def resolve_database(db_arg: str, workers: int | None):
    """Load ``--db``: a folder, or a preset name (searched first when its folder is missing)."""
    from fdgen.database import load_database, read_meta
    from fdgen.search import run_search

    path = Path(db_arg)
    presets = all_presets()
    if db_arg in presets:
        cfg = presets[db_arg]
        family = get_family(cfg["type"])
        settings = family.SearchSettings(**cfg.get("search", {}))
        meta = read_meta(path) if path.exists() else None
        if meta is None:
            click.echo(f"{db_arg}: no finished database folder here; running the preset's search")
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
        db = load_database(path)
        db.meta.setdefault("preset", db_arg)  # a folder searched before db.yaml named presets
        return db
    if not path.exists() and "/" not in db_arg:
        names = ", ".join(presets)
        raise FdgenError(f"--db: {db_arg} is neither a folder nor a preset ({names})")
    return load_database(path)


@main.command()
@click.option(
    "--db", "db_arg", required=True, help="Database folder, original CSV folder or preset."
)
@click.option("--shards", type=click.Path(path_type=Path), help="Output folder [DB-shards].")
@click.option("--size", type=click.IntRange(min=4, max=8192), help="Image size [362].")
@click.option("--pad", type=click.IntRange(min=0), help="Padding [6].")
@click.option("--points", type=click.IntRange(min=1), help="Orbit points per image [200000].")
@click.option(
    "--draw",
    type=click.Choice(["patch_gray", "patch_color", "point_gray", "point_color"]),
    help="Drawing mode [patch_gray].",
)
@click.option("--weight-delta", type=click.FloatRange(0, 0.5), help="Weight table D [0.4].")
@click.option("--instances", type=click.IntRange(min=1), help="Images per category [1000].")
@click.option("--views", type=click.Choice(["fixed", "random"]), help="fractal3d: views [fixed].")
@click.option("--models", type=click.IntRange(min=1), help="fractal3d: models per category [145].")
@click.option("--view-jitter", type=float, help="fractal3d: fixed-view jitter, degrees [5].")
@click.option(
    "--output", type=click.Choice(["image", "pointcloud"]), help="fractal3d: payload [image]."
)
@click.option("--images", type=click.IntRange(min=1), help="SegRCDB: images in all [20000].")
@click.option("--objects", type=click.IntRange(min=1), help="SegRCDB: objects per image [32].")
@click.option(
    "--mask",
    type=click.Choice(["lines", "ring", "filled"]),
    help="SegRCDB mask: contour lines, ring between first and last contour, filled [lines].",
)
@click.option(
    "--format", "fmt", type=click.Choice(["png", "jpg"]), default="png", show_default=True
)
@click.option("--samples-per-shard", type=click.IntRange(min=1), default=5000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), help="Processes [all cores].")
@click.option("--seed", type=click.IntRange(min=0), help="Random seed [0].")
@click.option("--force", is_flag=True, help="Replace the shards fdgen wrote with other settings.")
@click.option(
    "--backend",
    type=click.Choice(["local", "dask"]),
    help="Where shards render: this machine (joblib) or a Dask cluster [local].",
)
@click.option("--scheduler", help="Dask scheduler address tcp://HOST:PORT [a LocalCluster].")
@click.option(
    "--shard-index",
    type=click.IntRange(min=0),
    default=0,
    help="Render only shards j with j %% NUM_SHARDS == SHARD_INDEX [0].",
)
@click.option(
    "--num-shards",
    type=click.IntRange(min=1),
    default=1,
    help="Partitions of a batch-scheduler array, e.g. SLURM_ARRAY_TASK_COUNT [1].",
)
@click.option("--rehash", is_flag=True, help="Re-hash finished shards; redo damaged ones.")
@click.pass_context
def render(ctx, db_arg, shards, fmt, samples_per_shard, workers, force, backend, scheduler, **kw):
    """Render every instance of every category into WebDataset shards.

    Settings not given as options come from the preset the database was searched from."""
    from fdgen.database import render_settings
    from fdgen.render import render_dataset
    from fdgen.search import default_workers

    workers = workers or default_workers()
    if kw["num_shards"] > 1 and db_arg in all_presets():
        from fdgen.database import read_meta

        if read_meta(Path(db_arg)) is None:
            raise FdgenError(
                f"--num-shards: every partition would run the search of preset {db_arg} at "
                f"once; run `fdgen search --preset {db_arg} --out {db_arg}` first"
            )
    db = resolve_database(db_arg, workers)
    settings = render_settings(db, **_given(ctx, RENDER_OPTIONS))
    out = shards or Path(f"{db.path.name}-shards")
    if backend == "local" and scheduler:
        raise FdgenError("--scheduler applies only to --backend dask")
    manifest = render_dataset(
        db, settings, out, fmt, samples_per_shard, workers, force,
        shard_index=kw["shard_index"], num_shards=kw["num_shards"], rehash=kw["rehash"],
        backend=backend or ("dask" if scheduler else "local"), scheduler=scheduler,
    )  # fmt: skip
    rate = manifest["images_per_s"]
    if manifest["status"] == "partial":
        click.echo(
            f"{out}: partition {kw['shard_index']} of {kw['num_shards']} done "
            f"({manifest['rendered_now']:,} samples rendered now); "
            f"{manifest['complete_shards']} of {manifest['num_shards']} shards complete, "
            "the last partition to finish writes the index files"
        )
        _note_left(out, manifest["left"])
        return
    click.echo(
        f"{out}: {manifest['num_samples']:,} samples in {manifest['num_shards']} shards "
        f"({manifest['rendered_now']:,} rendered now"
        + (f", {rate:,.0f} images/s" if rate else "")
        + f"; {manifest['diverged']:,} from diverged orbits; "
        f"{manifest['bytes'] / 2**20:,.1f} MiB)"
    )
    _note_left(out, manifest["left"])


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--list", "list_all", is_flag=True, help="Name every incomplete and missing shard.")
def status(out: Path, list_all: bool) -> None:
    """Which shards of a shard folder are complete, incomplete or missing."""
    from fdgen.shards import folder_status, shard_name

    st = folder_status(out)
    total, done = st["num_shards"], len(st["complete"])
    samples = st["num_samples"] or 0
    pct = 100 * st["samples_done"] / samples if samples else 100.0
    click.echo(
        f"{out}: {done} of {total} shards complete, {st['samples_done']:,} of {samples:,} "
        f"samples ({pct:.1f}%)"
    )
    for state in ("incomplete", "missing"):
        shown = st[state] if list_all else st[state][:10]
        names = ", ".join(shard_name(j) for j in shown)
        left = len(st[state]) - len(shown)
        more = f", ... ({left} more; --list)" if left else ""
        click.echo(f"  {state:10s} {len(st[state])}" + (f": {names}{more}" if shown else ""))
    finalised = "yes" if st["indexed"] else "no"
    click.echo(f"  indexed    {finalised} (_info.json, sizes.json)")


def _parse_rerender(ctx, param, value):
    if value is None or value == "all":
        return value or 0
    if not value.isdigit():
        raise click.BadParameter(f"{value!r}: expected a whole number >= 0 or 'all'")
    return int(value)


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--decode", is_flag=True, help="Also decode every image and check its size.")
@click.option(
    "--rerender",
    callback=_parse_rerender,
    metavar="N|all",
    help="Render N samples per shard again (a seeded choice, or all) and compare bytes [0].",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path),
    help="With --rerender: the database, if it moved since the render [the manifest's].",
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
def verify(out: Path, decode: bool, rerender, db_path: Path | None, workers: int) -> None:
    """Check every shard against its sidecar and the plan; exit 1 naming each problem."""
    from fdgen.progress import progress_bar
    from fdgen.shards import read_manifest, shard_name, sidecar_name, verify_folder

    if db_path is not None and not rerender:
        raise FdgenError("--db applies only with --rerender N (N >= 1) or --rerender all")
    manifest = read_manifest(out)
    total = manifest["num_shards"]
    source = None
    if rerender:
        from fdgen.rerender import load_source

        source = load_source(out, manifest, db_path)  # its errors come before any work
    with progress_bar("verify", total, "shards") as update:
        report = verify_folder(out, decode, lambda check: update(1), workers, rerender, source)
    bad = [c for c in report["shards"] if not c.ok]
    for check in bad:
        for problem in check.problems:
            click.echo(f"{out / shard_name(check.index)}: {problem}", err=True)
    for problem in report["index_problems"]:
        click.echo(f"{out}: {problem}", err=True)
    what = "decoded and checked" if decode else "checked"
    summary = f"{out}: {total - len(bad)} of {total} shards OK, {report['samples']:,} samples"
    summary += f" {what}"
    if rerender:
        rerendered = sum(c.rerendered for c in report["shards"])
        summary += f", {rerendered:,} compared with a fresh render"
    index_problems = len(report["index_problems"])
    if bad or index_problems:
        names = ", ".join(shard_name(c.index) for c in bad[:5]) + (", ..." if len(bad) > 5 else "")
        fresh = [c for c in bad if any("from a fresh render" in p for p in c.problems)]
        advice = ". Rerun the same `fdgen render` (with --rehash for damage that kept the size)"
        if fresh:
            version = manifest.get("fdgen_version")
            advice += (
                f"; samples that differ from a fresh render are sealed by their sidecar: delete "
                f"{sidecar_name(fresh[0].index)}"
                + (" (and the others named)" if len(fresh) > 1 else "")
                + " before rerunning it"
                + (
                    f" (the shards were rendered by fdgen {version}, this is {__version__}: "
                    "a changed renderer differs too)"
                    if version and version != __version__
                    else ""
                )
            )
        raise FdgenError(
            f"{summary}; {len(bad)} shard(s) with problems"
            + (f" ({names})" if bad else "")
            + (f"; {index_problems} index problem(s)" if index_problems else "")
            + advice
        )
    click.echo(summary)


@main.command("presets")
def list_presets() -> None:
    """List the named datasets."""
    for name, cfg in all_presets().items():
        click.echo(f"{name:16s} {cfg['type']:12s} {cfg.get('description', '')}")


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def info(path: Path) -> None:
    """Describe a database folder or a shard folder."""
    from fdgen.shards import MANIFEST_FILE

    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    if (path / MANIFEST_FILE).exists():
        from fdgen.shards import read_manifest, read_sidecar

        manifest = read_manifest(path)
        done = [read_sidecar(path, j) for j in range(manifest["num_shards"])]
        complete = sum(r is not None for r in done)
        click.echo(f"shard folder {path}")
        click.echo(f"  type        {manifest['identity']['type']}")
        click.echo(f"  samples     {manifest['num_samples']:,} in {manifest['num_shards']} shards")
        click.echo(f"  complete    {complete} of {manifest['num_shards']} shards")
        click.echo(f"  categories  {manifest['categories']:,}")
        if "database_preset" in manifest:
            click.echo(f"  preset      {manifest['database_preset']} (the database's)")
        click.echo(f"  settings    {json.dumps(manifest['identity']['settings'])}")
        click.echo(f"  format      {manifest['identity']['format']}")
    else:
        from fdgen.database import load_database, render_settings

        db = load_database(path)
        click.echo(f"database {path}")
        click.echo(f"  type        {db.type}")
        if "preset" in db.meta:
            click.echo(f"  preset      {db.meta['preset']}")
        click.echo(f"  categories  {len(db):,}")
        if "settings" in db.meta:
            click.echo(f"  settings    {json.dumps(db.meta['settings'])}")
        effective = dataclasses.asdict(render_settings(db))
        click.echo(f"  render      {json.dumps(effective)} (options override these)")
        if "candidates_tried" in db.meta:
            click.echo(f"  candidates  {db.meta['candidates_tried']:,} tried")
        for label, text in get_family(db.type).describe(db):
            click.echo(f"  {label:11s} {text}")
    click.echo(f"  disk        {size / 2**20:,.1f} MiB")


@main.command()
@click.option(
    "--db", "db_arg", required=True, help="Database folder, original CSV folder or preset."
)
@click.option("--out", type=click.Path(path_type=Path), default="preview.png", show_default=True)
@click.option("--categories", type=click.IntRange(min=1), default=16, show_default=True)
@click.option(
    "--instances",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Instances of the first category shown in the last row.",
)
@click.option("--thumb", type=click.IntRange(min=16, max=1024), default=128, show_default=True)
def preview(db_arg, out, categories, instances, thumb):
    """Write a contact sheet: the first categories, then instances of the first one."""
    from fdgen.database import render_settings
    from fdgen.preview import contact_sheet

    db = resolve_database(db_arg, None)
    family = get_family(db.type)
    settings = render_settings(db)
    contact_sheet(db, settings, out, categories, instances, thumb)
    click.echo(f"{out}: {family.preview_text(db, categories, instances)}")
