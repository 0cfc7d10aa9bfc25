"""Verifying a shard folder: every shard against its sidecar and the plan, and the indexes.

Each shard is read once, as a tar stream that is hashed while it is parsed: readable tar,
sample count, size, sha256, each sample's members (the family's schema), labels in range, the
plan's sample keys; with ``decode`` every image is decoded; with ``rerender`` chosen samples
are rendered again and compared byte for byte (``fdgen.output.rerender``).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fdgen import readback
from fdgen.errors import FdgenError
from fdgen.families import get_family
from fdgen.output.folder import (
    DEFAULT_WRITER,
    HASH_CHUNK,
    INFO_FILE,
    SIZES_FILE,
    TRAIN,
    Manifest,
    ShardFolder,
    Sidecar,
    file_sha256,
    shard_name,
    sidecar_name,
)
from fdgen.output.plan import ShardPlan
from fdgen.output.status import shard_state

if TYPE_CHECKING:
    from fdgen.families.base import Family


class _HashingReader:
    """A read-only file wrapper that hashes what is read (one pass for tar parsing + sha256)."""

    def __init__(self, fh):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(HASH_CHUNK):
            pass


IMAGE_EXTENSIONS = ("png", "jpg")
_MAX_PROBLEMS = 20  # per shard; a badly damaged shard would otherwise flood the report


@dataclass
class ShardCheck:
    """The outcome of verifying one shard (shard ``index`` of ``split``)."""

    index: int
    samples: int = 0
    problems: list[str] | None = None
    rerendered: int = 0  # samples compared with a fresh render (verify --rerender)
    split: str = TRAIN
    writer: str = DEFAULT_WRITER  # the manifest's: it names the shard file
    folders: dict | None = None  # files writer: category folder -> labels of its images

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def name(self) -> str:
        """The shard's file name."""
        return shard_name(self.index, self.split, self.writer)


def _check_sample(
    key: str,
    fields: dict,
    family: Family,
    members: tuple[str, ...],
    categories: int,
    decode_size,
    problems: list,
) -> None:
    """Check the members of one sample; append problems (each naming the sample).

    A sample needs the ``members`` its family declares for the render (e.g. png, cls, json;
    npy, cls, json for point clouds; png, json, seg.png for SegRCDB).
    """
    where = f"sample {key}"
    per_image = family.sample_unit == "image"
    expected_image = members[0] if members[0] in IMAGE_EXTENSIONS else None
    missing = [
        f"image (.{ext})" if ext == expected_image else ext for ext in members if ext not in fields
    ]
    if missing:
        problems.append(f"{where}: no {', '.join(missing)} member")
    label = None
    if "cls" in fields:
        text = fields["cls"].decode("ascii", "replace").strip()
        if not text.isdigit() or not 0 <= int(text) < categories:
            problems.append(f"{where}: label {text[:20]!r} is not an integer in [0, {categories})")
        else:
            label = int(text)
    if "json" in fields:
        try:
            meta = json.loads(fields["json"])
            if not isinstance(meta, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"{where}: json member unreadable ({exc})")
        else:
            if per_image:
                image = meta.get("image")
                if not (isinstance(image, int) and family.sample_key(0, image) == key):
                    problems.append(f"{where}: json image number does not match the key")
            else:
                if label is not None and meta.get("category") != label:
                    problems.append(
                        f"{where}: json category {meta.get('category')} != label {label}"
                    )
                cat, inst = meta.get("category"), meta.get("instance")
                if not (
                    isinstance(cat, int)
                    and isinstance(inst, int)
                    and family.sample_key(cat, inst) == key
                ):
                    problems.append(f"{where}: json category/instance do not match the key")
    if decode_size is not None and expected_image in fields:
        import cv2  # only --decode needs it

        buf = np.frombuffer(fields[expected_image], np.uint8)
        try:
            image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
        except cv2.error:
            image = None
        if image is None:
            problems.append(f"{where}: the {expected_image} image does not decode")
        elif (
            isinstance(decode_size, int)
            and decode_size
            and image.shape[:2] != (decode_size, decode_size)
        ):
            problems.append(
                f"{where}: image is {image.shape[1]}x{image.shape[0]}, "
                f"expected {decode_size}x{decode_size}"
            )


def _schema(manifest: Manifest, folder: ShardFolder) -> tuple[Family, tuple[str, ...]]:
    """The family of a render's identity and the members each of its samples holds."""
    identity = manifest.identity
    where = folder.manifest_path
    family = get_family(identity["type"], where=f"{where}: identity.type")
    try:
        settings = family.RenderSettings(**identity["settings"])
    except (TypeError, FdgenError) as exc:  # unknown fields, or values out of range
        raise FdgenError(
            f"{where}: identity.settings do not fit type {family.type} ({exc})"
        ) from None
    return family, family.members(settings, identity["format"])


@lru_cache(maxsize=4)
def _lengths(plan: ShardPlan) -> tuple[int, ...]:
    return tuple(plan.shard_lengths())


def verify_shard(
    folder: Path,
    index: int,
    manifest: Manifest,
    plan: ShardPlan | None = None,
    decode: bool = False,
    rerender=None,
    split: str = TRAIN,
) -> ShardCheck:
    """Check shard ``index`` of ``split`` against its sidecar and the plan (that split's):
    readable tar (or Parquet file, or the images a files shard lists), sample count, size,
    sha256, each sample's members (image, cls, json), labels in range, the expected sample
    keys; with ``decode`` every image is decoded and its size checked. ``rerender`` (a
    ``fdgen.output.rerender.ShardRerender``) compares its chosen samples with a fresh render."""
    folder = ShardFolder(folder, split, manifest.writer)
    check = ShardCheck(index, problems=[], split=split, writer=manifest.writer)
    problems = check.problems
    categories = manifest.categories
    family, members = _schema(manifest, folder)
    decode_size = manifest.identity["settings"].get("size", 0) if decode else None
    path = folder.shard(index)
    try:
        record = Sidecar.load(folder.sidecar(index), index, split)
    except FileNotFoundError:
        state = shard_state(folder, index)
        problems.append("not rendered yet" if state == "missing" else "incomplete (no sidecar)")
        return check
    except OSError as exc:
        problems.append(f"sidecar {sidecar_name(index, split)} unreadable ({exc.strerror or exc})")
        return check
    except readback.BadContent as exc:
        problems.append(f"sidecar {sidecar_name(index, split)} damaged ({exc})")
        return check
    expected_samples = _lengths(plan)[index] if plan else record.samples
    if record.samples != expected_samples:
        problems.append(f"sidecar lists {record.samples} samples, the plan {expected_samples}")
    expected_keys = None
    if plan is not None:
        expected_keys = {
            family.sample_key(unit, i)
            for unit, _, instances in plan.members(index)
            for i in instances
        }
    seen: set[str] = set()
    if folder.writer != "webdataset":
        context = _Context(family, members, categories, decode_size, rerender, expected_keys)
        _verify_rows(folder, index, record, plan, context, check, seen)
        _finish_counts(check, expected_samples, expected_keys, seen)
        return check
    try:
        fh = open(path, "rb")
    except OSError as exc:
        problems.append(f"cannot open ({exc.strerror or exc})")
        return check
    with fh:
        reader = _HashingReader(fh)
        current, fields = None, {}
        members_seen: list[set] = []

        def finish() -> None:
            if current is None:
                return
            check.samples += 1
            if expected_keys is not None and current not in expected_keys:
                problems.append(f"sample {current}: does not belong in this shard")
            _check_sample(current, fields, family, members, categories, decode_size, problems)
            if members_seen and set(fields) != members_seen[0]:
                problems.append(
                    f"sample {current}: members {sorted(fields)} differ from the shard's first "
                    f"sample's {sorted(members_seen[0])}"
                )
            members_seen.append(set(fields))
            if rerender is not None and current in rerender.keys:
                check.rerendered += 1
                problems.extend(rerender.compare(current, fields))

        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    if len(problems) >= _MAX_PROBLEMS:
                        break
                    key, dot, ext = member.name.partition(".")
                    if not member.isfile() or not dot or "/" in member.name:
                        problems.append(f"member {member.name!r}: not a sample file key.ext")
                        continue
                    if key != current:
                        finish()
                        if key in seen:
                            problems.append(f"sample {key}: members are not adjacent")
                        seen.add(key)
                        current, fields = key, {}
                    if ext in fields:
                        problems.append(f"sample {key}: member .{ext} appears twice")
                    data = tar.extractfile(member).read()
                    if len(data) != member.size:
                        raise tarfile.ReadError(f"member {member.name} is truncated")
                    fields[ext] = data
                finish()
        except (tarfile.TarError, OSError, EOFError) as exc:
            where = f" after sample {current}" if current else ""
            problems.append(f"not a readable tar{where} ({exc})")
        try:
            reader.drain()
        except OSError as exc:
            problems.append(f"read error ({exc.strerror or exc})")
    if reader.size != record.bytes:
        problems.append(f"size {reader.size} bytes, sidecar says {record.bytes}")
    if reader.sha.hexdigest() != record.sha256:
        problems.append("sha256 differs from the sidecar (the file was changed or damaged)")
    _finish_counts(check, expected_samples, expected_keys, seen)
    return check


def _finish_counts(check: ShardCheck, expected_samples: int, expected_keys, seen: set) -> None:
    problems = check.problems
    if check.samples != expected_samples and len(problems) < _MAX_PROBLEMS:
        problems.append(f"holds {check.samples} samples, expected {expected_samples}")
    if expected_keys is not None and len(problems) < _MAX_PROBLEMS:
        lost = sorted(expected_keys - seen)
        if lost:
            problems.append(f"sample {lost[0]}: missing ({len(lost)} expected samples absent)")
    del problems[_MAX_PROBLEMS:]


@dataclass(frozen=True)
class _Context:
    """What checking one sample needs (see ``_check_sample``)."""

    family: Family
    members: tuple[str, ...]
    categories: int
    decode_size: object
    rerender: object
    expected_keys: set | None


def _verify_rows(
    folder: ShardFolder, index: int, record: Sidecar, plan, ctx: _Context, check, seen: set
) -> None:
    """Check a shard of the parquet or files writer: its bytes against the sidecar, then each
    sample as ``verify_shard`` checks a tar's."""
    problems = check.problems
    members = ctx.members
    if folder.writer == "files":
        from fdgen.output.files import listing_digest, read_files

        members = members[:1]  # the image only: the label is its folder
        files = record.files or []
        if listing_digest(files) != record.sha256 or sum(f[1] for f in files) != record.bytes:
            problems.append("sidecar files list differs from its sha256 or bytes (damaged)")
        unit_of = {}
        if plan is not None:
            unit_of = {
                ctx.family.sample_key(unit, i): unit
                for unit, _, instances in plan.members(index)
                for i in instances
            }
        check.folders = {}
        rows = read_files(folder, record, problems)
    else:
        from fdgen.output.parquet import read_parquet

        path = folder.shard(index)
        try:
            digest, size = file_sha256(path)
        except OSError as exc:
            problems.append(f"cannot open ({exc.strerror or exc})")
            return
        if size != record.bytes:
            problems.append(f"size {size} bytes, sidecar says {record.bytes}")
        if digest != record.sha256:
            problems.append("sha256 differs from the sidecar (the file was changed or damaged)")
        rows = ((key, fields, None) for key, fields in read_parquet(path, members, problems))
    try:
        for key, fields, category in rows:
            if len(problems) >= _MAX_PROBLEMS:
                break
            check.samples += 1
            if key in seen:
                problems.append(f"sample {key}: appears twice")
            seen.add(key)
            if ctx.expected_keys is not None and key not in ctx.expected_keys:
                problems.append(f"sample {key}: does not belong in this shard")
            if category is not None and key in unit_of:
                check.folders.setdefault(category, set()).add(unit_of[key])
            _check_sample(
                key, fields, ctx.family, members, ctx.categories, ctx.decode_size, problems
            )
            if ctx.rerender is not None and key in ctx.rerender.keys:
                check.rerendered += 1
                problems.extend(ctx.rerender.compare(key, fields, members))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own errors on damaged data
        problems.append(f"not a readable Parquet file ({type(exc).__name__}: {exc})")


def _check_folders(checks: list[ShardCheck]) -> list[str]:
    """Files writer: each category folder holds one label, and the sorted folder names give
    the labels in order (torchvision's ImageFolder numbers classes by sorted folder name)."""
    labels: dict[str, set] = {}
    for check in checks:
        for name, units in (check.folders or {}).items():
            labels.setdefault(name, set()).update(units)
    problems = [
        f"{name}/: holds images of labels {sorted(units)}"
        for name, units in sorted(labels.items())
        if len(units) > 1
    ]
    order = [min(labels[name]) for name in sorted(labels)]
    if not problems and len(set(order)) < len(order):
        problems.append("the images of one label lie in two category folders")
    elif not problems and order != sorted(order):
        problems.append("category folders sort in another order than their labels")
    return problems


def _check_indexes(folder: ShardFolder, manifest: Manifest) -> list[str]:
    """Problems with ``_info.json``/``sizes.json`` (checked once the folder is finalised): one
    entry per split of the manifest, as ``ShardFolder.index_records`` writes them."""
    plans = {split.name: split.plan for split in manifest.splits()}
    if manifest.status != "complete" or None in plans.values():
        return []
    want_info, want_sizes = folder.index_records("", plans)
    problems = []
    try:
        info = readback.parse_json(folder.info_path)
        for name, want in want_info["splits"].items():
            split = info["splits"][name]
            if split["filenames"] != want["filenames"]:
                problems.append(f"{INFO_FILE}: {name} file names differ from the plan")
            if split["shard_lengths"] != want["shard_lengths"]:
                problems.append(f"{INFO_FILE}: {name} shard lengths differ from the plan")
            if split["num_samples"] != want["num_samples"]:
                problems.append(f"{INFO_FILE}: {name} num_samples differs from the plan")
        extra = sorted(set(info["splits"]) - set(plans))
        if extra:
            problems.append(f"{INFO_FILE}: lists split(s) {', '.join(extra)} the render lacks")
    except OSError as exc:
        problems.append(f"{INFO_FILE}: unreadable ({exc.strerror or exc})")
    except readback.BadContent as exc:
        problems.append(f"{INFO_FILE}: unreadable ({exc})")
    except (KeyError, TypeError, IndexError):
        problems.append(
            f"{INFO_FILE}: not a wds index (needs splits.{'/'.join(plans)} with filenames, "
            "shard_lengths and num_samples)"
        )
    try:
        sizes = readback.parse_json(folder.sizes_path)
        if sizes != want_sizes:
            problems.append(f"{SIZES_FILE}: differs from the plan")
    except OSError as exc:
        problems.append(f"{SIZES_FILE}: unreadable ({exc.strerror or exc})")
    except readback.BadContent as exc:
        problems.append(f"{SIZES_FILE}: unreadable ({exc})")
    return problems


def _verify_task(
    folder: str, manifest: Manifest, decode: bool, rerender, shard: tuple[str, int]
) -> ShardCheck:
    """``verify_shard`` of ``shard`` (split, index) in a worker process; ``rerender`` is None
    or (``fdgen.output.rerender.Source``, count)."""
    split, index = shard
    plan = next(s.plan for s in manifest.splits() if s.name == split)
    fresh = None
    if rerender is not None:
        from fdgen.output.rerender import shard_rerender

        source, count = rerender
        fresh = shard_rerender(source, index, count, split)
    return verify_shard(Path(folder), index, manifest, plan, decode, fresh, split)


@dataclass(frozen=True)
class FolderCheck:
    """The outcome of verifying a folder: one ``ShardCheck`` per shard (in index order),
    problems of the index files, samples read, and the manifest."""

    shards: list[ShardCheck]  # every split's, train first
    index_problems: list[str]
    samples: int
    manifest: Manifest

    @property
    def ok(self) -> bool:
        """Whether no shard and no index file has a problem."""
        return all(c.ok for c in self.shards) and not self.index_problems


def verify_folder(
    folder: Path,
    decode: bool = False,
    progress=None,
    workers: int = 1,
    rerender: int | str = 0,
    source=None,
) -> FolderCheck:
    """Verify every shard of every split of a folder (see ``verify_shard``) and its index
    files.

    ``rerender`` samples per shard (a seeded choice, or ``"all"``) are rendered again and
    compared byte for byte with the stored ones; ``source`` (``fdgen.output.rerender.
    load_source``) says from what, by default the database the manifest records.
    ``progress(check)`` is called after each shard; ``workers`` processes share the shards.
    """
    from fdgen.runners import run_local

    shard_folder = ShardFolder(folder)
    manifest = shard_folder.read_manifest()
    if rerender and source is None:
        from fdgen.output.rerender import load_source

        source = load_source(shard_folder.path, manifest)
    task_source = (source, rerender) if rerender else None
    fn = partial(_verify_task, str(shard_folder.path), manifest, decode, task_source)
    shards = [(s.name, j) for s in manifest.splits() for j in range(s.num_shards)]
    order = {split: k for k, split in enumerate(dict.fromkeys(name for name, _ in shards))}
    checks = []
    for check in run_local(fn, shards, workers):
        checks.append(check)
        if progress:
            progress(check)
    checks.sort(key=lambda c: (order[c.split], c.index))
    shard_folder = ShardFolder(shard_folder.path, writer=manifest.writer)
    return FolderCheck(
        checks,
        _check_indexes(shard_folder, manifest) + _check_folders(checks),
        sum(c.samples for c in checks),
        manifest,
    )
