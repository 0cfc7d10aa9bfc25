"""The ``fdgen`` command line: parse options, call the library (``fdgen.api``), report."""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
from pathlib import Path

import click

from fdgen import __version__
from fdgen.catalog import all_presets
from fdgen.configfile import config_option
from fdgen.errors import FdgenError
from fdgen.families import DEFAULT_TYPE, family_names, get_family

# --- options generated from the families' settings ---------------------------------------

# a command's settings class of a family, by the command's name
_SETTINGS = {
    "search": lambda family: family.SearchSettings,
    "render": lambda family: family.RenderSettings,
}
_MAPS = ("maps_min", "maps_max")


def _settings_classes(kind: str) -> dict:
    """Every family's settings class of command ``kind`` ("search", "render"), by type."""
    return {name: _SETTINGS[kind](get_family(name)) for name in family_names()}


def _family_defaults(kind: str, setting: str) -> dict[str, str]:
    """Each family's default of a setting (``maps``: MIN-MAX), by type; families that do not
    take the setting are left out."""
    defaults = {}
    for name, settings_class in _settings_classes(kind).items():
        fields = {
            f.name: f.metadata.get("default_text", f.default)
            for f in dataclasses.fields(settings_class)
        }
        if setting == "maps" and set(_MAPS) <= set(fields):
            defaults[name] = f"{fields['maps_min']}-{fields['maps_max']}"
        elif setting in fields and setting not in _MAPS:
            defaults[name] = str(fields[setting])
    return defaults


def defaults_text(kind: str, setting: str) -> str:
    """``[A: 362; B, C: 512]``: the families that take a setting, grouped
    by their default; ``[0]`` when every family takes it with the same default."""
    defaults = _family_defaults(kind, setting)
    by_value: dict[str, list[str]] = {}
    for name, value in defaults.items():
        by_value.setdefault(value, []).append(name)
    if len(by_value) == 1 and len(defaults) == len(family_names()):
        return f"[{next(iter(by_value))}]"
    return "[" + "; ".join(f"{', '.join(names)}: {v}" for v, names in by_value.items()) + "]"


class SettingChoice(click.Choice):
    """The choices of a setting, as the families' settings declare them (read on first use)."""

    def __init__(self, kind: str, setting: str):
        super().__init__((), case_sensitive=True)
        self.kind, self.setting = kind, setting

    @property
    def choices(self) -> tuple[str, ...]:
        from fdgen.families.base import setting_choices

        found = [
            setting_choices(cls, self.setting) for cls in _settings_classes(self.kind).values()
        ]
        return tuple(dict.fromkeys(c for choices in found for c in choices))

    @choices.setter
    def choices(self, value) -> None:
        pass


class SettingOption(click.Option):
    """An option that sets a family setting; its help ends with each family's default,
    computed when help is shown (``fdgen --help`` imports no family)."""

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind, self.what = kind, self.help or ""

    def get_help_record(self, ctx):
        self.help = f"{self.what} {defaults_text(self.kind, self.name)}".strip()
        return super().get_help_record(ctx)


def setting(kind: str, setting_name: str, what: str = "", **kwargs):
    """A ``--SETTING-NAME`` option of a command's ``kind`` ("search" or "render") settings."""
    option = "--" + setting_name.replace("_", "-")
    if kwargs.pop("choice", False):
        kwargs["type"] = SettingChoice(kind, setting_name)
    return click.option(option, setting_name, cls=SettingOption, kind=kind, help=what, **kwargs)


class UnitOption(click.Option):
    """An option for the families of one sample unit (``category`` or ``image``); its help
    names them, computed when help is shown."""

    def __init__(self, *args, unit: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.unit, self.what = unit, self.help or ""

    def get_help_record(self, ctx):
        names = [n for n in family_names() if get_family(n).sample_unit == self.unit]
        self.help = f"{self.what} [{', '.join(names)}: 0]"
        return super().get_help_record(ctx)


def _given(ctx: click.Context) -> dict:
    """The setting options the user typed (not defaults), by parameter name."""
    names = [p.name for p in ctx.command.params if isinstance(p, SettingOption)]
    return {
        n: ctx.params[n]
        for n in names
        if ctx.params.get(n) is not None
        and ctx.get_parameter_source(n) != click.core.ParameterSource.DEFAULT
    }


FAMILY_DEFAULTS = (
    "An option's [FAMILY: DEFAULT] names the families that take it and their defaults (a "
    "preset's settings come first: `fdgen presets NAME`, `fdgen info DB` print them); a family "
    "not named rejects the option."
)


# --- the commands -------------------------------------------------------------------------


class _Commands(click.Group):
    """The command group: a library error (``FdgenError``) ends as ``Error: ...``, exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FdgenError as exc:
            raise click.ClickException(exc.message) from None


def _ignore_file_size_signal() -> None:
    """Turn a file-size limit (RLIMIT_FSIZE) into a write error (EFBIG) instead of a kill, so
    a render names the shard it could not write (the CLI's choice, not the library's)."""
    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fdgen")
def main() -> None:
    """Generate Formula-Driven Supervised Learning datasets (FractalDB and more)."""
    _ignore_file_size_signal()


@main.command(epilog=FAMILY_DEFAULTS)
@click.option(
    "--type",
    "type_",
    default=None,
    help=f"Formula family: {', '.join(family_names())} [the preset's, else {DEFAULT_TYPE}].",
)
@click.option("--preset", default=None, help="Named dataset (see `fdgen presets`).")
@setting("search", "categories", "Categories to keep.", type=click.IntRange(min=1))
@setting(
    "search", "fill_rate", "Minimum fill rate of the test raster.",
    type=click.FloatRange(0, 1, min_open=True),
)  # fmt: skip
@setting("search", "variance", "Minimum variance per axis.", type=float)
@setting("search", "seed", "Random seed.", type=click.IntRange(min=0))
@setting("search", "points", "Orbit points of the test.", type=click.IntRange(min=2))
@setting("search", "size", "Test raster size.", type=click.IntRange(min=4, max=8192))
@setting("search", "pad", "Test raster padding.", type=click.IntRange(min=0))
@setting("search", "maps", "Maps per category, MIN-MAX.", metavar="MIN-MAX")
@setting("search", "rng", "Random stream.", choice=True)
@setting("search", "sigma", "Sigma-factor of the base system.", type=float)
@setting("search", "delta", "Perturbation range D: factors U(1 - D, 1 + D).", type=float)
@setting("search", "spatial_frequencies", "Spatial frequencies (x and y), e.g. 1,2,4.")
@setting("search", "time_frequencies", "Temporal frequencies, e.g. 1,2.")
@click.option("--workers", type=click.IntRange(min=1), help="Processes [all cores].")
@click.option("--out", type=click.Path(path_type=Path), help="Database folder to write.")
@click.option("--resume", is_flag=True, help="Continue an interrupted search in --out.")
@click.option("--force", is_flag=True, help="Start over: replace fdgen's database in --out.")
@config_option
@click.pass_context
def search(ctx, type_, preset, workers, out, resume, force, **_):
    """Sample formula parameters and keep those that pass the family's filter.

    `fdgen presets NAME` prints the settings a preset searches with."""
    from fdgen import api

    result = api.search(
        out, type=type_ or None, preset=preset, workers=workers, resume=resume, force=force,
        progress=True, **_given(ctx),
    )  # fmt: skip
    out, meta = result.out, result.meta
    if result.already_complete:
        click.echo(f"{out}: already holds these {meta['categories']} categories; nothing to do")
        _note_left(out, result.left)
        return
    tried = meta["candidates_tried"]
    click.echo(
        f"{out}: {meta['categories']} categories from {tried:,} candidates "
        f"({meta['categories'] / tried:.2%} accepted, {meta['diverged_candidates']} diverged) "
        f"in {meta['elapsed_s']:.1f} s"
    )
    _note_left(out, result.left)


def _note_left(out: Path, names: list[str]) -> None:
    """Say which files of ``out`` fdgen did not write and so left as they were."""
    if names:
        more = f", ... ({len(names) - 10} more)" if len(names) > 10 else ""
        shown = ", ".join(names[:10]) + more
        click.echo(f"{out}: left {len(names)} files that fdgen did not write: {shown}")


@main.command(epilog=FAMILY_DEFAULTS)
@click.option(
    "--db", "db_arg", required=True, help="Database folder, original CSV folder or preset."
)
@click.option("--shards", type=click.Path(path_type=Path), help="Output folder [DB-shards].")
@click.option(
    "--preset",
    help="Render settings of this preset instead of those of the preset the database was "
    "searched from (same type).",
)
@setting("render", "size", "Image size.", type=click.IntRange(min=4, max=8192))
@setting("render", "pad", "Padding.", type=click.IntRange(min=0))
@setting("render", "points", "Orbit points per rendering.", type=click.IntRange(min=1))
@setting("render", "draw", "Drawing mode.", choice=True)
@setting("render", "weight_delta", "Weight table D.", type=click.FloatRange(0, 0.5))
@setting("render", "instances", "Samples per category.", type=click.IntRange(min=1))
@setting("render", "views", "Camera views.", choice=True)
@setting("render", "models", "Models per category.", type=click.IntRange(min=1))
@setting("render", "view_jitter", "Fixed-view jitter, degrees.", type=float)
@setting("render", "output", "Payload.", choice=True)
@setting(
    "render", "cloud_points", "Points of the sample's cloud (every k-th of the image's orbit).",
    type=click.IntRange(min=1),
)  # fmt: skip
@setting(
    "render", "cloud_frame", "Frame of the cloud: the view's camera or the model's.", choice=True
)
@setting("render", "main_points", "Points of the category's fractal.", type=click.IntRange(min=1))
@setting(
    "render", "mix_points", "Points of the mixed-in fractal (pcscenes: per object).",
    type=click.IntRange(min=0),
)  # fmt: skip
@setting(
    "render", "mix",
    "FractalNoiseMix seeding: per sample, or the original's sharing.", choice=True,
)  # fmt: skip
@setting("render", "frames", "Frames per clip.", type=click.IntRange(min=1))
@setting("render", "octaves", "Noise octaves.", type=click.IntRange(min=1))
@setting("render", "persistence", "Amplitude ratio of successive octaves.", type=float)
@setting("render", "images", "Images in all.", type=click.IntRange(min=1))
@setting("render", "objects", "Objects per image.", type=click.IntRange(min=1))
@setting(
    "render", "mask",
    "Mask: contour lines, ring between first and last contour, filled.", choice=True,
)  # fmt: skip
@setting("render", "object_poisson", "Mean of the Poisson objects added per scene.", type=float)
@setting("render", "scene_size", "Scene floor side (centres in +-SIZE/2).", type=float)
@setting("render", "tries", "Placements tried per object.", type=click.IntRange(min=1))
@setting("render", "overlap_margin", "Gap kept between footprint circles.", type=float)
@setting("render", "placement_fail", "All tries overlap: end the scene, or skip.", choice=True)
@setting("render", "fit", "Object cloud into its box: per axis, or one factor.", choice=True)
@setting("render", "point_labels", "Per-point object labels (labels.npy).", choice=True)
@click.option(
    "--format", "fmt", type=click.Choice(["png", "jpg"]), default="png", show_default=True
)
@click.option("--samples-per-shard", type=click.IntRange(min=1), default=5000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), help="Processes [all cores].")
@setting("render", "seed", "Random seed.", type=click.IntRange(min=0))
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
    help="Render only shards j with j % NUM_SHARDS == SHARD_INDEX [0].",
)
@click.option(
    "--num-shards",
    type=click.IntRange(min=1),
    default=1,
    help="Partitions of a batch-scheduler array, e.g. SLURM_ARRAY_TASK_COUNT [1].",
)
@click.option("--rehash", is_flag=True, help="Re-hash finished shards; redo damaged ones.")
@click.option(
    "--val-instances",
    cls=UnitOption,
    metavar="N",
    unit="category",
    type=click.IntRange(min=0),
    default=0,
    help="Validation split: N more instances per category from a held-out seed, into "
    "val-NNNNNN.tar (split val of _info.json).",
)
@click.option(
    "--val-images",
    cls=UnitOption,
    metavar="N",
    unit="image",
    type=click.IntRange(min=0),
    default=0,
    help="Validation split of a per-image family: N more images from a held-out seed, into "
    "val-NNNNNN.tar (split val of _info.json).",
)
@click.option(
    "--writer",
    type=click.Choice(["webdataset", "files", "parquet"]),
    default="webdataset",
    show_default=True,
    help="Shards: WebDataset tars, one image folder per category (ImageFolder), or Parquet.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan, disk size and core-hours (from a short calibration); write nothing.",
)
@config_option
@click.pass_context
def render(ctx, db_arg, shards, preset, fmt, samples_per_shard, workers, force, **kw):
    """Render every instance of every category into WebDataset shards (or --writer).

    Settings not given as options come from the preset the database was searched from
    (`fdgen info DB` prints them), else from the family's defaults. --val-instances or
    --val-images adds a validation split beside the training shards."""
    from fdgen import api
    from fdgen.runners import default_workers

    val = {"val_instances": kw["val_instances"], "val_images": kw["val_images"]}
    if kw["dry_run"]:
        given = _given(ctx)
        est = api.estimate(
            db_arg, preset=preset, format=fmt, samples_per_shard=samples_per_shard, **val,
            **given,
        )  # fmt: skip
        for line in est.lines(kw["num_shards"]):
            click.echo(line)
        return
    workers = workers or default_workers()
    with_notes = dict(workers=workers, num_shards=kw["num_shards"], notice=click.echo)
    db = api.resolve_database(db_arg, **with_notes)
    result = api.render(
        db, shards, preset=preset, format=fmt, samples_per_shard=samples_per_shard,
        workers=workers, force=force, backend=kw["backend"], scheduler=kw["scheduler"],
        shard_index=kw["shard_index"], num_shards=kw["num_shards"], rehash=kw["rehash"],
        writer=kw["writer"], progress=True, **val, **_given(ctx),
    )  # fmt: skip
    out, manifest = result.out, result.manifest
    rate = manifest["images_per_s"]
    val_split = manifest.get("val")
    total_shards = manifest["num_shards"] + (val_split["num_shards"] if val_split else 0)
    if manifest["status"] == "partial":
        click.echo(
            f"{out}: partition {kw['shard_index']} of {kw['num_shards']} done "
            f"({manifest['rendered_now']:,} samples rendered now); "
            f"{manifest['complete_shards']} of {total_shards} shards complete, "
            "the last partition to finish writes the index files"
        )
        _note_left(out, result.left)
        return
    held_out = (
        f" + val {val_split['num_samples']:,} samples in {_shards(val_split['num_shards'])}"
        if val_split
        else ""
    )
    click.echo(
        f"{out}: {manifest['num_samples']:,} samples in {_shards(manifest['num_shards'])}"
        f"{held_out} ({manifest['rendered_now']:,} rendered now"
        + (f", {rate:,.0f} images/s" if rate else "")
        + f"; {manifest['diverged']:,} from diverged orbits; "
        f"{manifest['bytes'] / 2**20:,.1f} MiB)"
    )
    _note_left(out, result.left)


def _shards(count: int) -> str:
    return f"{count:,} shard" + ("" if count == 1 else "s")


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--list", "list_all", is_flag=True, help="Name every incomplete and missing shard.")
def status(out: Path, list_all: bool) -> None:
    """Which shards of a shard folder are complete, incomplete or missing (every split)."""
    from fdgen.output import ShardFolder, folder_status, shard_name

    splits = [split.name for split in ShardFolder(out).read_manifest().splits()]
    for split in splits:
        st = folder_status(out, split)
        total, done = st.num_shards, len(st.complete)
        samples = st.num_samples or 0
        pct = 100 * st.samples_done / samples if samples else 100.0
        which = f" ({split} split)" if len(splits) > 1 else ""
        click.echo(
            f"{out}{which}: {done} of {total} shards complete, {st.samples_done:,} of "
            f"{samples:,} samples ({pct:.1f}%)"
        )
        for state, indices in (("incomplete", st.incomplete), ("missing", st.missing)):
            shown = indices if list_all else indices[:10]
            names = ", ".join(shard_name(j, split, st.writer) for j in shown)
            left = len(indices) - len(shown)
            more = f", ... ({left} more; --list)" if left else ""
            click.echo(f"  {state:10s} {len(indices)}" + (f": {names}{more}" if shown else ""))
    finalised = "yes" if st.indexed else "no"
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
    from fdgen import api

    report = api.verify(
        out, decode=decode, rerender=rerender, db=db_path, workers=workers, progress=True
    )
    for problem in report.problems:
        click.echo(problem, err=True)
    if not report.ok:
        raise FdgenError(report.failure())
    click.echo(report.summary)


@main.command("presets")
@click.argument("name", required=False)
def list_presets(name: str | None) -> None:
    """List the named datasets, or print one's type, description and effective settings."""
    if name is None:
        for preset, cfg in all_presets().items():
            click.echo(f"{preset:16s} {cfg['type']:12s} {cfg.get('description', '')}")
        return
    from fdgen import api

    cfg = api.presets().get(name)
    if cfg is None:
        names = ", ".join(all_presets())
        raise FdgenError(f"NAME: unknown preset {name!r}; choose from {names}")
    search_settings, render_settings = api.preset_settings(name)
    click.echo(f"preset {name}")
    click.echo(f"  type        {cfg['type']}")
    click.echo(f"  about       {cfg.get('description', '')}")
    for label, settings in (("search", search_settings), ("render", render_settings)):
        values = json.dumps(dataclasses.asdict(settings))
        click.echo(f"  {label:11s} {values} (options override these)")


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def info(path: Path) -> None:
    """Describe a database folder or a shard folder."""
    from fdgen.output import ShardFolder
    from fdgen.output.folder import SPLITS, WRITER_SUFFIXES

    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    folder = ShardFolder(path)
    if folder.manifest_path.exists():
        manifest = folder.read_manifest()
        folder = ShardFolder(path, writer=manifest.writer)
        click.echo(f"shard folder {path}")
        click.echo(f"  type        {manifest.identity['type']}")
        splits = manifest.splits()
        complete = sum(
            folder.of_split(s.name).read_sidecar(j) is not None
            for s in splits
            for j in range(s.num_shards)
        )
        click.echo(f"  samples     {manifest.num_samples:,} in {manifest.num_shards} shards")
        for split in splits[1:]:
            click.echo(
                f"  {split.name:11s} {split.num_samples:,} in {split.num_shards} shards "
                f"{SPLITS[split.name]}-NNNNNN{WRITER_SUFFIXES[manifest.writer]} (held-out seed "
                f"{split.plan.seed})"
            )
        click.echo(f"  complete    {complete} of {manifest.total_shards} shards")
        click.echo(f"  categories  {manifest.categories:,}")
        if manifest.database_preset:
            click.echo(f"  preset      {manifest.database_preset} (the database's)")
        click.echo(f"  settings    {json.dumps(manifest.identity['settings'])}")
        click.echo(f"  format      {manifest.identity['format']}")
        click.echo(f"  writer      {manifest.writer}")
    else:
        from fdgen import api

        db = api.load_database(path)
        click.echo(f"database {path}")
        click.echo(f"  type        {db.type}")
        if "preset" in db.meta:
            click.echo(f"  preset      {db.meta['preset']}")
        click.echo(f"  categories  {len(db):,}")
        if "settings" in db.meta:
            click.echo(f"  settings    {json.dumps(db.meta['settings'])}")
        effective = dataclasses.asdict(api.render_settings(db))
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
    from fdgen import api
    from fdgen.preview import contact_sheet

    db = api.resolve_database(db_arg, notice=click.echo)
    family = get_family(db.type)
    settings = api.render_settings(db)
    contact_sheet(db, settings, out, categories, instances, thumb)
    click.echo(f"{out}: {family.preview_text(db, categories, instances)}")
