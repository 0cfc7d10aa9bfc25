"""Category databases: a folder of one parameter file per category plus ``db.yaml``.

Layout written by ``fdgen search``::

    DIR/categories/00000.csv ...   one file per category (format set by the family)
    DIR/db.yaml                    settings, the preset searched from, statistics; written
                                   last, marks the folder done
    DIR/search-progress.json       where an unfinished search stands (for --resume)

A folder of original FractalDB CSV files (flat, or in ``csv0..csvK`` sub-folders) is read too.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path

import numpy as np

from fdgen import readback
from fdgen.atomic import atomic_target, write_atomic
from fdgen.errors import FdgenError
from fdgen.families import DEFAULT_TYPE, category_suffixes, get_family

CATEGORY_DIR = "categories"
META_FILE = "db.yaml"
PROGRESS_FILE = "search-progress.json"


def is_category_name(name: str) -> bool:
    """Whether ``name`` is one fdgen's search gives a category file (``00042.csv``)."""
    stem, _, suffix = name.partition(".")
    return stem.isdigit() and "." + suffix in category_suffixes()


def written_by_search(path: Path, in_categories: bool) -> bool:
    """Whether ``path``, in a database folder (or in its ``categories/`` when
    ``in_categories``), is a file of a name fdgen's search writes there."""
    if not path.is_file():
        return False
    name = atomic_target(path.name)
    return is_category_name(name) if in_categories else name in (META_FILE, PROGRESS_FILE)


def foreign_files(folder: Path) -> list[str]:
    """What a database folder holds that fdgen did not write (sub-folders end in ``/``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = []
    for path in folder.iterdir():
        if path.name == CATEGORY_DIR and path.is_dir() and not path.is_symlink():
            names += [
                f"{CATEGORY_DIR}/{p.name}" + ("/" if p.is_dir() else "")
                for p in path.iterdir()
                if not written_by_search(p, in_categories=True)
            ]
        elif not written_by_search(path, in_categories=False):
            names.append(path.name + ("/" if path.is_dir() else ""))
    return sorted(names)


@dataclass
class Database:
    """Categories in order, with their file names and the search metadata."""

    path: Path
    type: str
    names: list[str]
    params: list[np.ndarray]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.params)

    def digest(self) -> str:
        """sha256 over the type, category names and parameters: identifies the content."""
        family = get_family(self.type)
        h = hashlib.sha256(self.type.encode())
        for name, p in zip(self.names, self.params):
            h.update(name.encode() + b"\0" + family.format_category(p).encode())
        return h.hexdigest()


def database_preset(db: Database) -> dict:
    """The preset ``db.yaml`` says the database was searched from ({} when it names none)."""
    from fdgen.catalog import all_presets

    name = db.meta.get("preset")
    if name is None:
        return {}
    where = f"{db.path / META_FILE}: preset"
    presets = all_presets()
    if not isinstance(name, str) or name not in presets:
        raise FdgenError(f"{where}: unknown preset {name!r}; this fdgen knows {', '.join(presets)}")
    cfg = presets[name]
    if cfg["type"] != db.type:
        raise FdgenError(f"{where}: {name} is a {cfg['type']} preset, the database is {db.type}")
    return cfg


def render_settings(db: Database, **overrides):
    """The settings a render of ``db`` uses: the render section of the preset its
    ``db.yaml`` records (no preset: the family's defaults), with ``overrides`` (setting
    name: value, e.g. ``instances=12``) on top."""
    family = get_family(db.type)
    known = {f.name for f in dataclass_fields(family.RenderSettings)}
    for name in overrides:
        if name not in known:
            raise FdgenError(f"--{name.replace('_', '-')} does not apply to type {db.type}")
    values = database_preset(db).get("render", {})
    return family.RenderSettings(**{**values, **overrides})


def category_files(folder: Path, suffix: str) -> list[Path]:
    """The category files of a search's ``categories/`` folder, by name (one listing; files
    of other names are not fdgen's)."""
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if e.name.endswith(suffix)]
    except FileNotFoundError:
        return []
    return [folder / name for name in sorted(names) if is_category_name(name)]


def original_csv_files(folder: Path) -> list[Path]:
    """Category CSVs of a folder: flat, or in the original csv0..csvK sub-folders, by name."""
    flat = sorted(p for p in folder.glob("*.csv") if p.is_file())
    nested = sorted(
        (p for p in folder.glob("*/*.csv") if p.is_file()), key=lambda p: (p.name, str(p))
    )
    return flat if flat else nested


def read_meta(folder: Path) -> dict | None:
    """The checked ``db.yaml`` of a folder, or None if there is none."""
    meta_path = Path(folder) / META_FILE
    if not meta_path.exists():
        return None
    try:
        meta = readback.parse_yaml(meta_path)
    except OSError as exc:
        raise FdgenError(f"{meta_path}: not a readable YAML file ({exc.strerror or exc})") from None
    except readback.BadContent as exc:
        raise FdgenError(f"{meta_path}: not a readable YAML file ({exc})") from None
    if not isinstance(meta, dict) or "type" not in meta or "categories" not in meta:
        raise FdgenError(f"{meta_path}: not an fdgen database file (needs 'type' and 'categories')")
    if not isinstance(meta["type"], str):
        raise FdgenError(f"{meta_path}: 'type' must name a formula family")
    count = meta["categories"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise FdgenError(f"{meta_path}: 'categories' must be a whole number >= 1")
    try:
        readback.sub_mapping(meta, "settings", optional=True)
        readback.integer(meta, "candidates_tried", optional=True)
        readback.integer(meta, "diverged_candidates", optional=True)
    except readback.BadContent as exc:
        raise FdgenError(f"{meta_path}: not an fdgen database file ({exc})") from None
    return meta


def load_database(path: str | Path) -> Database:
    """Load an fdgen database folder or a folder of original FractalDB CSV files."""
    folder = Path(path)
    if not folder.exists():
        raise FdgenError(f"{folder}: no such database folder")
    if not folder.is_dir():
        raise FdgenError(f"{folder}: a database must be a folder")
    meta = read_meta(folder)
    if meta is None and (folder / PROGRESS_FILE).exists():
        raise FdgenError(
            f"{folder}: the search that writes this database did not finish (no {META_FILE}); "
            "rerun it with --resume"
        )
    if meta is None:
        files = original_csv_files(folder)
        meta = {"type": DEFAULT_TYPE, "source": "original FractalDB CSV folder"}
        family = get_family(DEFAULT_TYPE)
    else:
        family = get_family(meta["type"], where=f"{folder / META_FILE}: type")
        files = category_files(folder / CATEGORY_DIR, family.category_suffix)
        if len(files) != meta["categories"]:
            raise FdgenError(
                f"{folder}: {META_FILE} lists {meta['categories']} categories but "
                f"{CATEGORY_DIR}/ holds {len(files)} files"
            )
    if not files:
        raise FdgenError(f"{folder}: no category files found")
    params = [family.read_category(f) for f in files]
    meta.setdefault("categories", len(params))
    return Database(folder, meta["type"], [f.stem for f in files], params, meta)


def save_progress(folder: Path, progress: dict) -> None:
    """Record how far an unfinished search got (atomically)."""
    write_atomic(Path(folder) / PROGRESS_FILE, json.dumps(progress))


def load_progress(folder: Path) -> dict | None:
    """The saved progress of a search (checked: every field the search uses, with types), or
    None."""
    path = Path(folder) / PROGRESS_FILE
    if not path.exists():
        return None
    try:
        return check_progress(readback.parse_json(path))
    except OSError as exc:
        reason = exc.strerror or exc
        raise FdgenError(f"{path}: unreadable search progress ({reason}); use --force") from None
    except readback.BadContent as exc:
        raise FdgenError(f"{path}: unreadable search progress ({exc}); use --force") from None


_COUNT_MAX = 2**53  # candidate numbers and counts: exact in JSON, far past any real search


def check_progress(progress) -> dict:
    """``progress`` if it holds every field ``run_search`` uses, with types and ranges."""
    progress = readback.mapping(progress)
    readback.sub_mapping(progress, "settings")
    for name in ("next_candidate", "tried", "diverged"):
        readback.integer(progress, name, 0, _COUNT_MAX)
    readback.number(progress, "elapsed_s")
    scores = progress.get("fill_rates")
    if not isinstance(scores, list) or not all(
        s is None or readback.is_finite_number(s) for s in scores
    ):
        raise readback.BadContent("field fill_rates must be a list of numbers or nulls")
    if not _is_legacy_rng_state(progress.get("rng_state", 0)):
        raise readback.BadContent(
            "field rng_state must be null or an MT19937 state [name, 624 keys, pos, "
            "has_gauss, cached]"
        )
    return progress


def _is_legacy_rng_state(state) -> bool:
    """None, or the legacy stream's generator state as ``RandomState.get_state`` gives it
    in JSON: ["MT19937", 624 uint32 keys, position in [0, 624], has_gauss 0/1, cached]."""
    if state is None:
        return True
    if not (isinstance(state, list) and len(state) == 5):
        return False
    name, keys, pos, has_gauss, cached = state
    return (
        name == "MT19937"
        and isinstance(keys, list)
        and len(keys) == 624
        and all(type(k) is int and 0 <= k < 2**32 for k in keys)
        and type(pos) is int
        and 0 <= pos <= 624
        and type(has_gauss) is int
        and has_gauss in (0, 1)
        and readback.is_finite_number(cached)
    )
