"""The shard folder: every file name fdgen writes there, its typed records, lock and indexes.

A folder holds the shards of one or two splits: the training split's ``shard-NNNNNN.tar``
and, with a validation split, ``val-NNNNNN.tar`` (``.parquet`` with ``--writer parquet``; with
``--writer files`` a shard is the images it lists in category folders, training split only);
one sidecar per complete shard (``shard-NNNNNN.json``, ``val-NNNNNN.json``: ``Sidecar``),
``manifest.json`` (``Manifest``), the index files trainers read (``_info.json``,
``sizes.json``), per-process ``.partial`` files of shards being written, atomic-write
temporaries and the render lock files. A split is a name (``train``, ``val``) and the file
prefix of its shards (``SPLITS``); ``ShardFolder(path, split, writer)`` names that split's
files as that writer writes them. It is the only code that knows these names, so it alone can
tell fdgen's files from the user's.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fdgen import readback
from fdgen.atomic import atomic_target, write_atomic
from fdgen.errors import FdgenError
from fdgen.output.plan import PLAN_VERSION, ShardPlan

FORMAT_VERSION = 1  # of manifest.json and the sidecars; files without the field are version 1
INFO_FILE = "_info.json"
SIZES_FILE = "sizes.json"
MANIFEST_FILE = "manifest.json"
PARTIAL_SUFFIX = ".partial"
LOCK_FILE = ".lock"
HASH_CHUNK = 1 << 20
MAX_SHARDS = 10**6  # shard names have six digits
MAX_SAMPLES = 10**9  # bounds the samples one plan may describe
_PLAN_FIELDS = {"categories": 1, "instances": 1, "group_size": 1, "samples_per_shard": 1}
TRAIN, VAL = "train", "val"
SPLITS = {TRAIN: "shard", VAL: "val"}  # split name -> file prefix of its shards and sidecars
_SHARD_FILE = re.compile(r"(shard|val)-\d{6,}\.(tar|parquet|json)")  # a shard or its sidecar
# The file of one shard by writer ("files": none, the shard is the images its sidecar lists).
WRITER_SUFFIXES = {"webdataset": ".tar", "files": "", "parquet": ".parquet"}
DEFAULT_WRITER = "webdataset"
_INDEX_FILES = (MANIFEST_FILE, INFO_FILE, SIZES_FILE)


def _prefix(split: str) -> str:
    try:
        return SPLITS[split]
    except KeyError:
        raise FdgenError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}") from None


def shard_name(index: int, split: str = TRAIN, writer: str = DEFAULT_WRITER) -> str:
    """File name of shard ``index`` of ``split`` as ``writer`` writes it (``shard-NNNNNN.tar``,
    ``val-NNNNNN.parquet``; ``files``: the shard's name, ``shard-NNNNNN``)."""
    return f"{_prefix(split)}-{index:06d}{WRITER_SUFFIXES[writer]}"


def sidecar_name(index: int, split: str = TRAIN) -> str:
    """File name of the sidecar that marks shard ``index`` of ``split`` complete."""
    return f"{_prefix(split)}-{index:06d}.json"


def split_of(name: str) -> str:
    """The split a shard or sidecar file name belongs to (by its prefix)."""
    prefix = name.partition("-")[0]
    return next(split for split, p in SPLITS.items() if p == prefix)


def partition_lock_name(index: int, count: int) -> str:
    """Lock file of partition ``index`` of ``count`` (``--shard-index/--num-shards``)."""
    return f"{LOCK_FILE}-{index}-of-{count}"


def partial_shard_index(path: Path, split: str | None = TRAIN) -> int | None:
    """The shard index of a temporary ``shard-NNNNNN.tar.*.partial`` file of ``split`` (None:
    of any split), else None."""
    name = Path(path).name
    for prefix in SPLITS.values() if split is None else (_prefix(split),):
        start = prefix + "-"
        if name.startswith(start) and name.endswith(PARTIAL_SUFFIX):
            digits = name[len(start) : len(start) + 6]
            return int(digits) if digits.isdigit() else None
    return None


def is_journal(path: Path) -> bool:
    """Whether ``path`` is the journal of a shard being written by the files writer
    (``shard-NNNNNN.HOST-PID.partial``: the images it has started, one per line)."""
    name = Path(path).name
    if partial_shard_index(path, None) is None:
        return False
    rest = name.partition("-")[2][6:]  # after PREFIX-NNNNNN
    return not any(rest.startswith(s + ".") for s in WRITER_SUFFIXES.values() if s)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (the user's files, or other shards' images), or gone
        pass


def is_lock_file(path: Path) -> bool:
    """Whether ``path`` is one of the render lock files (kept in the folder between runs)."""
    return Path(path).name == LOCK_FILE or Path(path).name.startswith(LOCK_FILE + "-")


def process_tag() -> str:
    """Host and process id: unique among the writers of one (possibly shared) folder."""
    return f"{socket.gethostname().replace('/', '_')}-{os.getpid()}"


def file_sha256(path: Path) -> tuple[str, int]:
    """sha256 hex digest and size of a file, read in chunks."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def _check_version(record: dict) -> None:
    """Refuse a record of a format newer than this fdgen reads (absent: version 1)."""
    version = readback.integer(record, "version", 1, optional=True) or 1
    if version > FORMAT_VERSION:
        raise readback.BadContent(
            f"format version {version}, written by a newer fdgen; this fdgen reads version "
            f"{FORMAT_VERSION}: upgrade fdgen"
        )


# --- sidecars ----------------------------------------------------------------------------


def check_sidecar(record, index: int, split: str = TRAIN) -> dict:
    """The sidecar ``record`` of shard ``index`` of ``split`` if it holds every field of one,
    with types; ``BadContent`` naming the first wrong field otherwise."""
    record = readback.mapping(record)
    _check_version(record)
    readback.integer(record, "shard", index, index)
    readback.text(record, "file", tuple(shard_name(index, split, w) for w in WRITER_SUFFIXES))
    readback.integer(record, "samples")
    readback.integer(record, "bytes")
    readback.integer(record, "diverged", optional=True)
    sha = record.get("sha256")
    if not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= set("0123456789abcdef")):
        raise readback.BadContent("field sha256 must be 64 hexadecimal digits")
    files = record.get("files")
    if files is not None:
        if not isinstance(files, list):
            raise readback.BadContent("field files must be a list")
        for entry in files:
            if not (
                isinstance(entry, list)
                and len(entry) == 3
                and isinstance(entry[0], str)
                and is_member_path(entry[0])
                and isinstance(entry[1], int)
                and isinstance(entry[2], str)
                and len(entry[2]) == 64
            ):
                raise readback.BadContent(
                    "field files must hold [CATEGORY/KEY.EXT, bytes, sha256] entries"
                )
    return record


def is_member_path(name: str) -> bool:
    """Whether ``name`` is a path the files writer writes: ``CATEGORY/KEY.EXT``, one level,
    no hidden or parent parts (so a damaged record can never name a file outside the folder)."""
    parts = name.split("/")
    return len(parts) == 2 and all(p and not p.startswith(".") for p in parts) and "." in parts[1]


@dataclass(frozen=True)
class Sidecar:
    """The record that marks one shard complete: its file, samples, size and sha256.

    ``diverged`` counts samples from diverged orbits (None when the writer did not count).
    ``files`` lists the files of a shard of the files writer, ``[CATEGORY/KEY.EXT, bytes,
    sha256]`` each (``bytes`` is their sum, ``sha256`` the digest of that list).
    """

    shard: int
    file: str
    samples: int
    bytes: int
    sha256: str
    diverged: int | None = None
    version: int = FORMAT_VERSION
    files: list | None = None

    @classmethod
    def from_dict(cls, record, index: int, split: str = TRAIN) -> Sidecar:
        """The sidecar of shard ``index`` of ``split`` in ``record``; ``BadContent`` naming a
        wrong field."""
        record = check_sidecar(record, index, split)
        return cls(
            record["shard"],
            record["file"],
            record["samples"],
            record["bytes"],
            record["sha256"],
            record.get("diverged"),
            record.get("version", 1),
            record.get("files"),
        )

    @classmethod
    def load(cls, path: Path, index: int, split: str = TRAIN) -> Sidecar:
        """The sidecar file ``path`` of shard ``index`` of ``split``: ``OSError`` when
        unreadable, ``BadContent`` when damaged or foreign."""
        return cls.from_dict(readback.parse_json(path), index, split)

    @property
    def split(self) -> str:
        """The split of the shard (from its file name)."""
        return split_of(self.file)

    def to_dict(self) -> dict:
        """The JSON fields, in the order fdgen writes them."""
        record = {
            "version": self.version,
            "shard": self.shard,
            "file": self.file,
            "samples": self.samples,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }
        if self.diverged is not None:
            record["diverged"] = self.diverged
        if self.files is not None:
            record["files"] = self.files
        return record

    def save(self, path: Path) -> None:
        """Write the sidecar atomically (a reader never sees half of it)."""
        write_atomic(path, json.dumps(self.to_dict(), indent=1))


# --- the manifest ------------------------------------------------------------------------


class StalePlan(readback.BadContent):
    """A manifest whose shard plan orders samples as an older fdgen did."""


def _check_plan_version(manifest: dict, plan: dict) -> None:
    version = plan.get("version", 1)
    if version == PLAN_VERSION:
        return
    writer = manifest.get("fdgen_version")
    raise StalePlan(
        f"shard plan version {version!r}, written by fdgen {writer or '(unknown)'}; this fdgen "
        f"orders samples by plan version {PLAN_VERSION}, so these shards cannot be resumed, "
        "checked or indexed by it: re-render into a new folder (or this one with --force)"
    )


def check_manifest(manifest) -> dict:
    """``manifest`` if it holds every field status, info, verify and render use, with types
    and ranges, and its shard counts agree with its plan; ``BadContent`` otherwise."""
    manifest = readback.mapping(manifest)
    _check_version(manifest)
    num_shards = readback.integer(manifest, "num_shards", 0, MAX_SHARDS)
    num_samples = readback.integer(manifest, "num_samples", 0, MAX_SAMPLES)
    readback.integer(manifest, "categories", 0, MAX_SAMPLES)
    identity = readback.sub_mapping(manifest, "identity")
    for name in ("type", "format"):
        try:
            readback.text(identity, name)
        except readback.BadContent as exc:
            raise readback.BadContent(str(exc).replace("field ", "field identity.", 1)) from None
    readback.sub_mapping(identity, "settings")
    try:
        readback.text(identity, "writer", tuple(WRITER_SUFFIXES), optional=True)
    except readback.BadContent as exc:
        raise readback.BadContent(str(exc).replace("field ", "field identity.", 1)) from None
    readback.text(manifest, "status", optional=True)
    readback.text(manifest, "sample_unit", ("category", "image"), optional=True)
    plan = readback.sub_mapping(manifest, "plan", optional=True)
    if plan is not None:
        _check_plan(manifest, plan, num_shards, num_samples, "plan")
    val = readback.sub_mapping(manifest, VAL, optional=True)
    if val is not None:
        try:
            val_shards = readback.integer(val, "num_shards", 1, MAX_SHARDS)
            val_samples = readback.integer(val, "num_samples", 1, MAX_SAMPLES)
            val_plan = readback.sub_mapping(val, "plan")
        except readback.BadContent as exc:
            raise readback.BadContent(str(exc).replace("field ", "field val.", 1)) from None
        _check_plan(manifest, val_plan, val_shards, val_samples, "val.plan")
    return manifest


def _check_plan(manifest: dict, plan: dict, num_shards: int, num_samples: int, where: str):
    """Check the plan record at field ``where`` against the shard and sample counts beside it."""
    _check_plan_version(manifest, plan)
    plan = {k: v for k, v in plan.items() if k != "version"}
    if set(plan) != {*_PLAN_FIELDS, "seed"}:
        raise readback.BadContent(
            f"field {where} must hold version, {', '.join([*_PLAN_FIELDS, 'seed'])}, found "
            f"{sorted(plan)}"
        )
    try:
        for name, low in _PLAN_FIELDS.items():
            readback.integer(plan, name, low, MAX_SAMPLES)
        readback.integer(plan, "seed")
    except readback.BadContent as exc:
        raise readback.BadContent(str(exc).replace("field ", f"field {where}.", 1)) from None
    shard_plan = ShardPlan(**plan)
    if shard_plan.num_samples > MAX_SAMPLES:
        raise readback.BadContent(f"the {where} holds more than {MAX_SAMPLES} samples")
    if (num_shards, num_samples) != (shard_plan.num_shards, shard_plan.num_samples):
        raise readback.BadContent(
            f"num_shards {num_shards} and num_samples {num_samples} differ from the {where}'s "
            f"{shard_plan.num_shards} and {shard_plan.num_samples}"
        )


def _plan_of(record: dict | None) -> ShardPlan | None:
    """The ``ShardPlan`` of a checked plan record (None for none)."""
    if record is None:
        return None
    return ShardPlan(**{k: v for k, v in record.items() if k != "version"})


def _plan_record(plan: ShardPlan) -> dict:
    return {"version": PLAN_VERSION, **dataclasses.asdict(plan)}


@dataclass(frozen=True)
class SplitRecord:
    """One split of a render as its manifest records it: name, shard and sample counts, plan
    (None for a manifest that predates the recorded plan)."""

    name: str
    num_shards: int
    num_samples: int
    plan: ShardPlan | None


_MANIFEST_ORDER = (
    "version", "fdgen_version", "identity", "database", "database_preset", "categories",
    "num_shards", "num_samples", "plan", "val", "sample_unit", "status", "rendered_now",
    "elapsed_s", "images_per_s", "complete_shards", "diverged", "bytes",
)  # fmt: skip


@dataclass
class Manifest:
    """``manifest.json``: what a shard folder holds and how it was rendered.

    ``identity`` (type, settings, format, samples_per_shard, database_digest) decides whether
    a folder's shards belong to a render; the rest describes the render and its progress.
    Manifests of fdgen before the format had a ``version`` load as version 1; those that
    predate the recorded plan load with ``plan`` None (status and verify then skip what needs
    it). ``num_shards``, ``num_samples`` and ``plan`` are the training split's; ``val`` is the
    plan of the validation split (None without one), written as ``"val": {num_shards,
    num_samples, plan}``; ``splits()`` lists both.
    """

    identity: dict
    categories: int
    num_shards: int
    num_samples: int
    plan: ShardPlan | None = None
    val: ShardPlan | None = None
    status: str | None = None
    sample_unit: str | None = None
    fdgen_version: str | None = None
    database: str | None = None  # absolute path, so verify --rerender loads it from anywhere
    database_preset: str | None = None  # the preset db.yaml names
    rendered_now: int | None = None
    elapsed_s: float | None = None
    images_per_s: float | None = None
    complete_shards: int | None = None
    diverged: int | None = None
    bytes: int | None = None
    version: int = FORMAT_VERSION

    @property
    def writer(self) -> str:
        """The writer of the shards (``identity.writer``; manifests before it: webdataset)."""
        return self.identity.get("writer", DEFAULT_WRITER)

    @classmethod
    def from_dict(cls, record) -> Manifest:
        """The manifest in ``record`` (see ``check_manifest``); unknown fields are ignored."""
        record = check_manifest(record)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        values["version"] = record.get("version", 1)
        values["plan"] = _plan_of(record.get("plan"))
        values["val"] = _plan_of(record[VAL]["plan"]) if VAL in record else None
        return cls(**values)

    def splits(self) -> list[SplitRecord]:
        """The splits of the render: ``train``, then ``val`` if it has one."""
        found = [SplitRecord(TRAIN, self.num_shards, self.num_samples, self.plan)]
        if self.val is not None:
            found.append(SplitRecord(VAL, self.val.num_shards, self.val.num_samples, self.val))
        return found

    @property
    def total_shards(self) -> int:
        """Shards of every split."""
        return sum(split.num_shards for split in self.splits())

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """The manifest file ``path``: ``OSError`` when unreadable, ``BadContent`` when
        damaged or foreign."""
        return cls.from_dict(readback.parse_json(path))

    def to_dict(self) -> dict:
        """The JSON fields in the order fdgen writes them; unset optional fields are left out."""
        record: dict = {}
        values = vars(self)
        for name in _MANIFEST_ORDER:
            value = values[name]
            if value is not None:
                if name == "plan":
                    value = _plan_record(value)
                elif name == VAL:
                    value = {
                        "num_shards": value.num_shards,
                        "num_samples": value.num_samples,
                        "plan": _plan_record(value),
                    }
                record[name] = value
        return record

    def save(self, path: Path) -> None:
        """Write the manifest atomically."""
        write_atomic(path, json.dumps(self.to_dict(), indent=1))


@dataclass(frozen=True)
class Listing:
    """Shard indices by the files of theirs a folder listing shows."""

    tars: set[int]
    sidecars: set[int]
    partials: set[int]

    def whole(self) -> set[int]:
        """Shards with both a tar and a sidecar: complete if the sidecar checks out."""
        return self.tars & self.sidecars

    def touched(self) -> set[int]:
        """Shards with any file at all."""
        return self.tars | self.sidecars | self.partials


# --- locking -------------------------------------------------------------------------------


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return f" ({text})" if text else ""


def _flock(path: Path, mode: int) -> int | None:
    """An open descriptor of ``path`` holding ``mode`` (non-blocking), or None if taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        raise
    return fd


def _stamp(fd: int) -> None:
    """Write who holds a lock into its file (for the message the next process prints)."""
    text = f"host {socket.gethostname()}, pid {os.getpid()}, since {time.strftime('%H:%M:%S')}"
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)


# --- the folder ----------------------------------------------------------------------------


class ShardFolder:
    """A shard folder: the paths of its files, its records, its lock, and which of its files
    fdgen wrote. The per-shard names (``shard``, ``sidecar``, ``partial``, ``listing``, ...)
    are those of ``split`` as ``writer`` writes them (``WRITER_SUFFIXES``: a tar or a Parquet
    file per shard, or, ``files``, images in one folder per category); ``of_split`` gives the
    same folder for another split (so a writer opened on it writes that split's files)."""

    def __init__(self, path: Path | str, split: str = TRAIN, writer: str = DEFAULT_WRITER):
        self.path = Path(path)
        self.prefix = _prefix(split)
        self.split = split
        if writer not in WRITER_SUFFIXES:
            raise FdgenError(
                f"--writer: unknown writer {writer!r}; choose from {', '.join(WRITER_SUFFIXES)}"
            )
        self.writer = writer

    def __repr__(self) -> str:
        return f"ShardFolder({str(self.path)!r}, {self.split!r}, {self.writer!r})"

    def of_split(self, split: str) -> ShardFolder:
        """This folder (same writer), naming the shards of ``split``."""
        return ShardFolder(self.path, split, self.writer)

    def shard(self, index: int) -> Path:
        """Path of shard ``index`` of this folder's split (for the files writer: a name, no
        file is there)."""
        return self.path / shard_name(index, self.split, self.writer)

    def sidecar(self, index: int) -> Path:
        """Path of the sidecar of shard ``index``."""
        return self.path / sidecar_name(index, self.split)

    def partial(self, index: int) -> Path:
        """This process's temporary name for shard ``index`` while it is written: a shard
        rendered twice at once (a Dask task rerun while its first try still runs) never
        shares a half-written file."""
        name = shard_name(index, self.split, self.writer)
        return self.path / f"{name}.{process_tag()}{PARTIAL_SUFFIX}"

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def info_path(self) -> Path:
        return self.path / INFO_FILE

    @property
    def sizes_path(self) -> Path:
        return self.path / SIZES_FILE

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    # records

    def read_manifest(self) -> Manifest:
        """The checked manifest; a clear error when there is none or it is damaged."""
        path = self.manifest_path
        try:
            return Manifest.load(path)
        except FileNotFoundError:
            raise FdgenError(
                f"{self.path}: not an fdgen shard folder (no {MANIFEST_FILE})"
            ) from None
        except OSError as exc:
            raise FdgenError(f"{path}: unreadable manifest ({exc.strerror or exc})") from None
        except StalePlan as exc:
            raise FdgenError(f"{path}: {exc}") from None
        except readback.BadContent as exc:
            raise FdgenError(f"{path}: damaged manifest ({exc})") from None

    def save_manifest(self, manifest: Manifest) -> None:
        """Write ``manifest.json`` atomically."""
        manifest.save(self.manifest_path)

    def read_sidecar(self, index: int) -> Sidecar | None:
        """The sidecar of shard ``index`` if the shard looks complete (a valid sidecar,
        matching size); None otherwise, so that a damaged sidecar means the shard is redone."""
        try:
            record = Sidecar.load(self.sidecar(index), index, self.split)
            if record.file != shard_name(index, self.split, self.writer):
                return None  # a shard of another writer
            if self.writer == "files":
                files = record.files or []
                sizes = [(self.path / name).stat().st_size for name, _, _ in files]
                if files and sizes == [size for _, size, _ in files]:
                    return record
            elif self.shard(index).stat().st_size == record.bytes:
                return record
        except (OSError, readback.BadContent):
            pass
        return None

    def save_sidecar(self, record: Sidecar) -> None:
        """Write the sidecar of shard ``record.shard``, marking it complete."""
        record.save(self.sidecar(record.shard))

    def index_records(self, name: str, plans: dict[str, ShardPlan]) -> tuple[dict, dict]:
        """The contents of ``_info.json`` (timm's wds format: one entry per split, so
        ``--train-split train --val-split val`` finds each) and ``sizes.json`` (open_clip:
        samples by shard file name, every split) for the plans of the splits by name."""
        splits, sizes = {}, {}
        for split, plan in plans.items():
            names = [shard_name(j, split, self.writer) for j in range(plan.num_shards)]
            lengths = plan.shard_lengths()
            splits[split] = {
                "name": split,
                "num_samples": plan.num_samples,
                "filenames": names,
                "shard_lengths": lengths,
            }
            sizes.update(zip(names, lengths, strict=True))
        return {"name": name, "splits": splits}, sizes

    def write_indexes(self, name: str, plans: dict[str, ShardPlan]) -> None:
        """``_info.json`` and ``sizes.json`` for the splits' plans (see ``index_records``)."""
        info, sizes = self.index_records(name, plans)
        write_atomic(self.info_path, json.dumps(info, indent=1))
        write_atomic(self.sizes_path, json.dumps(sizes, indent=1))

    def listing(self) -> Listing:
        """Which shards have a tar, a sidecar or a partial file, from one directory listing
        (no file opened or stat'ed: a folder of 420,000 shard slots is listed in one pass)."""
        found = Listing(set(), set(), set())
        start = self.prefix + "-"
        try:
            with os.scandir(self.path) as entries:
                names = [e.name for e in entries if e.name.startswith(start)]
        except (FileNotFoundError, NotADirectoryError):
            return found
        suffix = WRITER_SUFFIXES[self.writer]
        for name in names:
            if _SHARD_FILE.fullmatch(name):
                index = int(name[len(start) :].partition(".")[0])
                if name.endswith(".json"):
                    found.sidecars.add(index)
                elif suffix and name.endswith(suffix):
                    found.tars.add(index)
            elif (index := partial_shard_index(Path(name), self.split)) is not None:
                found.partials.add(index)
        if not suffix:  # files: the sidecar lists the shard's files, read_sidecar checks them
            found.tars.update(found.sidecars)
        return found

    # temporary files

    def partial_indices(self) -> set[int]:
        """Shards with a temporary (partial) file in the folder."""
        pattern = self.prefix + "-*" + PARTIAL_SUFFIX
        found = (partial_shard_index(p, self.split) for p in self.path.glob(pattern))
        return {j for j in found if j is not None}

    def remove_partials(self, mine: Callable[[int], bool] = lambda index: True) -> int:
        """Delete the temporary shard files of the shards ``mine`` selects; returns how many."""
        removed = 0
        for path in self.path.glob(self.prefix + "-*" + PARTIAL_SUFFIX):
            index = partial_shard_index(path, self.split)
            if index is not None and mine(index):
                if is_journal(path):
                    self.drop_journal(path, keep_written=self.read_sidecar(index) is not None)
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def drop_journal(self, journal: Path, keep_written: bool = False) -> None:
        """Remove the images a files-writer journal lists (their temporaries always; the
        images themselves unless ``keep_written``: another process completed the shard)."""
        tag = journal.name.partition("-")[2][len("000000.") : -len(PARTIAL_SUFFIX)]
        try:
            names = journal.read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            return
        dirs = set()
        for name in names:
            if not is_member_path(name):
                continue  # a torn last line, or not fdgen's journal: touch nothing
            target = self.path / name
            Path(f"{target}.{tag}{PARTIAL_SUFFIX}").unlink(missing_ok=True)
            if not keep_written:
                target.unlink(missing_ok=True)
            dirs.add(target.parent)
        for folder in dirs:
            _remove_if_empty(folder)

    def _drop_listed(self, sidecar: Path) -> None:
        """Remove the images a sidecar of the files writer lists (``--force``)."""
        try:
            files = readback.parse_json(sidecar).get("files")
        except (OSError, readback.BadContent, AttributeError):
            return
        dirs = set()
        for entry in files if isinstance(files, list) else []:
            if isinstance(entry, list) and entry and isinstance(entry[0], str):
                if is_member_path(entry[0]):
                    (self.path / entry[0]).unlink(missing_ok=True)
                    dirs.add((self.path / entry[0]).parent)
        for folder in dirs:
            _remove_if_empty(folder)

    def category_dirs(self) -> set[str]:
        """Names of the category folders the sidecars of a files render list (empty for the
        other writers: their shards are files in the folder itself)."""
        if self.writer != "files":
            return set()
        found = set()
        for index in self.listing().sidecars:
            try:
                files = Sidecar.load(self.sidecar(index), index).files or []
            except (OSError, readback.BadContent):
                continue
            found.update(name.partition("/")[0] for name, _, _ in files)
        return found

    def remove_stale_temporaries(self) -> None:
        """Delete atomic-write temporaries of fdgen's files (left by a crash)."""
        for stale in self.path.glob("." + "*.tmp*"):
            if self.written_by_fdgen(stale):
                stale.unlink(missing_ok=True)

    # ownership

    def written_by_fdgen(self, path: Path) -> bool:
        """Whether ``path`` is a file of a name fdgen writes into a shard folder: shards,
        sidecars, indexes, the manifest, their temporary and partial files, the lock files."""
        path = Path(path)
        if not path.is_file():
            return False
        if is_lock_file(path) or partial_shard_index(path, None) is not None:
            return True
        name = atomic_target(path.name)
        return name in _INDEX_FILES or _SHARD_FILE.fullmatch(name) is not None

    def foreign_files(self) -> list[str]:
        """Names of what the folder holds that fdgen did not write (sub-folders end in ``/``;
        the category folders of a files render are fdgen's)."""
        if not self.path.is_dir():
            return []
        ours = self.category_dirs()
        return sorted(
            p.name + ("/" if p.is_dir() else "")
            for p in self.path.iterdir()
            if not self.written_by_fdgen(p) and not (p.is_dir() and p.name in ours)
        )

    def check_owner(self, identity: dict, force: bool) -> tuple[bool, bool]:
        """Refuse a folder whose fdgen files belong to another render (unless ``force``) or
        whose manifest is not fdgen's. Returns (the folder holds a manifest of the render of
        ``identity``, that manifest is whole); a manifest of this render whose other fields
        are damaged is rewritten by the render."""
        out, manifest_path = self.path, self.manifest_path
        if manifest_path.exists() and not manifest_path.is_file():
            raise FdgenError(
                f"--shards: {manifest_path} is not a file; fdgen writes its manifest there: move "
                "it away or choose another folder"
            )
        if manifest_path.is_file():
            try:
                held = readback.mapping(readback.parse_json(manifest_path))
            except (OSError, readback.BadContent) as exc:
                if force:
                    return False, False
                reason = exc.strerror if isinstance(exc, OSError) else exc
                raise FdgenError(
                    f"{manifest_path}: damaged manifest ({reason}); the shards beside it cannot "
                    "be matched to this render: use --force to replace them (only files fdgen "
                    "wrote are removed) or choose another folder"
                ) from None
            if not isinstance(held.get("identity"), dict):
                raise FdgenError(
                    f"--shards: {manifest_path} is not an fdgen manifest; move it away or "
                    "choose another folder"
                )
            held_identity = {"writer": DEFAULT_WRITER, **held["identity"]}  # before --writer
            if held_identity != identity:
                if not force:
                    what = "a different database or settings"
                    rest = {k: v for k, v in held_identity.items() if k != VAL}
                    if rest == {k: v for k, v in identity.items() if k != VAL}:
                        had, asked = held_identity.get(VAL, 0), identity.get(VAL, 0)
                        what = (
                            f"the same settings with a validation split of {had} per category "
                            f"or image (this render asks {asked})"
                        )
                    raise FdgenError(
                        f"--shards: {out} holds shards of {what}; use --force to replace them "
                        "(only files fdgen wrote are removed) or choose another folder"
                    )
                return False, False
            try:
                check_manifest(held)
            except StalePlan as exc:
                if force:
                    return False, False
                raise FdgenError(f"{manifest_path}: {exc}") from None
            except readback.BadContent:
                return True, False
            return True, True
        if not force and out.is_dir():
            unknown = sorted(
                p.name
                for p in out.iterdir()
                if self.written_by_fdgen(p)
                and (p.name in _INDEX_FILES or _SHARD_FILE.fullmatch(p.name))
            )
            if unknown:
                raise FdgenError(
                    f"--shards: {out} holds fdgen shard files ({', '.join(unknown[:3])}"
                    f"{', ...' if len(unknown) > 3 else ''}) but no {MANIFEST_FILE}, so their "
                    "settings are unknown; use --force to replace them or choose another folder"
                )
        return False, False

    def prepare(self, identity: dict, force: bool) -> bool:
        """Check the folder against the render of ``identity``; with ``force`` remove the
        files fdgen wrote for other settings (never the user's). Returns whether it holds a
        whole manifest of this render."""
        same, whole = self.check_owner(identity, force)
        if force and not same:
            for path in self.path.iterdir():
                # the lock files are held by this process
                if self.written_by_fdgen(path) and not is_lock_file(path):
                    if is_journal(path):
                        self.drop_journal(path)
                    elif _SHARD_FILE.fullmatch(path.name) and path.suffix == ".json":
                        self._drop_listed(path)  # the images of a files render
                    path.unlink()
        return whole

    @contextmanager
    def lock(self, partition: tuple[int, int] | None = None) -> Iterator[None]:
        """Hold the render lock of the folder for the duration of the block.

        A whole render takes an exclusive ``flock`` on ``FOLDER/.lock``. A partition render
        (``--shard-index I --num-shards N``) takes a shared lock on ``.lock`` plus an exclusive
        lock on ``.lock-I-of-N``, so the partitions of a SLURM array run side by side while a
        second copy of one partition, or a whole render beside them, is refused. The kernel
        drops ``flock`` locks when the process exits, however it exits: no stale lock.
        """
        folder, main_lock = self.path, self.lock_path
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fds = []
            if partition is None:
                fd = _flock(main_lock, fcntl.LOCK_EX)
                if fd is None:
                    raise FdgenError(
                        f"--shards: {folder} is being rendered by another fdgen process"
                        f"{_holder(main_lock)} (lock {main_lock}); two renders into one folder "
                        "are refused: wait for it to finish or choose another folder"
                    )
                fds.append(fd)
                _stamp(fd)
            else:
                index, count = partition
                fd = _flock(main_lock, fcntl.LOCK_SH)
                if fd is None:
                    raise FdgenError(
                        f"--shards: {folder} is being rendered whole by another fdgen process"
                        f"{_holder(main_lock)} (lock {main_lock}); a partition render beside it "
                        "is refused"
                    )
                fds.append(fd)
                part_lock = folder / partition_lock_name(index, count)
                fd = _flock(part_lock, fcntl.LOCK_EX)
                if fd is None:
                    os.close(fds.pop())
                    raise FdgenError(
                        f"--shard-index {index} --num-shards {count}: this partition of {folder} "
                        f"is being rendered by another fdgen process{_holder(part_lock)} "
                        f"(lock {part_lock}); the second copy is refused"
                    )
                fds.append(fd)
                _stamp(fd)
        except OSError as exc:
            raise FdgenError(f"--shards: cannot lock {folder} ({exc.strerror or exc})") from None
        try:
            yield
        finally:
            for fd in reversed(fds):
                os.close(fd)
