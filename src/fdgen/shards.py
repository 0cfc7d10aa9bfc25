"""Shard plan, tar writing, completion sidecars and the index files trainers read.

A dataset is ``categories x instances`` samples. Instances are rendered in groups (the four
flips of a FractalDB variant); groups are spread over shards by one seeded global
permutation, so shard j is a pure function of (database, settings, j) and mixes categories.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import socket
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fdgen import readback
from fdgen.database import write_atomic
from fdgen.errors import FdgenError
from fdgen.families import get_family

if TYPE_CHECKING:
    from fdgen.families.base import Family

SAMPLES_PER_SHARD = 5000
INFO_FILE = "_info.json"
SIZES_FILE = "sizes.json"
MANIFEST_FILE = "manifest.json"
PARTIAL_SUFFIX = ".partial"
LOCK_FILE = ".lock"
HASH_CHUNK = 1 << 20
_SHUFFLE_KEY = 0x5348  # separates the shard shuffle stream from sample streams


def shard_name(index: int) -> str:
    """File name of shard ``index``."""
    return f"shard-{index:06d}.tar"


def sidecar_name(index: int) -> str:
    """File name of the sidecar that marks shard ``index`` complete."""
    return f"shard-{index:06d}.json"


@dataclass(frozen=True)
class ShardPlan:
    """Which (category, group) pairs go to which shard."""

    categories: int
    instances: int
    group_size: int
    samples_per_shard: int
    seed: int

    @property
    def groups_per_category(self) -> int:
        return -(-self.instances // self.group_size)

    @property
    def total_groups(self) -> int:
        return self.categories * self.groups_per_category

    @property
    def groups_per_shard(self) -> int:
        return max(1, self.samples_per_shard // self.group_size)

    @property
    def num_shards(self) -> int:
        return -(-self.total_groups // self.groups_per_shard)

    @property
    def num_samples(self) -> int:
        return self.categories * self.instances

    @cached_property
    def order(self) -> np.ndarray:
        """The global permutation of group ids (category * groups_per_category + group)."""
        key = [self.seed, _SHUFFLE_KEY, self.categories, self.instances, self.group_size]
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))
        return rng.permutation(self.total_groups)

    def _group_sizes(self, group_ids: np.ndarray) -> np.ndarray:
        last = self.instances - (self.groups_per_category - 1) * self.group_size
        in_category = group_ids % self.groups_per_category
        return np.where(in_category == self.groups_per_category - 1, last, self.group_size)

    def members(self, shard: int) -> list[tuple[int, int, list[int]]]:
        """(category, group, instances) of every group in ``shard``, in writing order."""
        ids = self.order[shard * self.groups_per_shard : (shard + 1) * self.groups_per_shard]
        out = []
        for gid in ids.tolist():
            category, group = divmod(gid, self.groups_per_category)
            first = group * self.group_size
            last = min(first + self.group_size, self.instances)
            out.append((category, group, list(range(first, last))))
        return out

    def shard_lengths(self) -> list[int]:
        """Samples in each shard."""
        sizes = self._group_sizes(self.order)
        starts = np.arange(0, self.total_groups, self.groups_per_shard)
        return np.add.reduceat(sizes, starts).tolist()


BLOCK = 512
RECORD = 20 * BLOCK  # tar pads the archive to whole records, as tarfile and GNU tar do


def _header_template() -> tuple[bytearray, int]:
    head = bytearray(BLOCK)
    head[100:108] = b"0000644\0"  # mode
    head[108:116] = b"0000000\0"  # uid
    head[116:124] = b"0000000\0"  # gid
    head[136:148] = b"00000000000\0"  # mtime 0
    head[148:156] = b" " * 8  # checksum field counts as spaces
    head[156:157] = b"0"  # regular file
    head[257:265] = b"ustar\x0000"  # device numbers stay empty (NUL) for regular files
    return head, sum(head)


_TEMPLATE, _TEMPLATE_SUM = _header_template()


def tar_header(name: str, size: int) -> bytes:
    """The ustar header that ``tarfile`` writes for a member with our fixed fields.

    Built directly (one template, an incremental checksum): tarfile's own header code costs
    more per member than encoding a whole 1-bit PNG.
    """
    raw = name.encode()
    if len(raw) > 100:
        raise ValueError(f"tar member name longer than 100 bytes: {name}")
    size_field = b"%011o\0" % size
    head = _TEMPLATE.copy()
    head[: len(raw)] = raw
    head[124:136] = size_field
    checksum = _TEMPLATE_SUM + sum(raw) + sum(size_field)
    head[148:155] = b"%06o\0" % checksum
    return bytes(head)


class ShardWriter:
    """Writes one shard under a temporary name; ``commit`` renames it and writes its sidecar.

    Tar headers are fixed (mtime 0, uid/gid 0, no user names, mode 0644), so the bytes depend
    only on the samples written.
    """

    def __init__(self, folder: Path, index: int):
        self.folder = Path(folder)
        self.index = index
        self.path = self.folder / shard_name(index)
        # A per-process temporary name: a shard rendered twice at once (a Dask task rerun while
        # its first try still runs) never shares a half-written file.
        self.tmp = self.folder / f"{shard_name(index)}.{_process_tag()}{PARTIAL_SUFFIX}"
        self._fh = open(self.tmp, "wb")
        self._sha = hashlib.sha256()
        self.size = 0
        self.samples = 0

    def _write(self, data: bytes) -> None:
        self._sha.update(data)
        self.size += len(data)
        self._fh.write(data)

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        """Add one sample: tar members ``key.<ext>`` in the given order."""
        for ext, data in fields.items():
            self._write(tar_header(f"{key}.{ext}", len(data)))
            self._write(data)
            if len(data) % BLOCK:
                self._write(bytes(BLOCK - len(data) % BLOCK))
        self.samples += 1

    def commit(self, extra: dict) -> dict:
        """Finish the tar, move it into place and write the sidecar marking it complete."""
        self._write(bytes(2 * BLOCK))
        if self.size % RECORD:
            self._write(bytes(RECORD - self.size % RECORD))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp, self.path)
        record = {
            "shard": self.index,
            "file": self.path.name,
            "samples": self.samples,
            "bytes": self.size,
            "sha256": self._sha.hexdigest(),
            **extra,
        }
        write_atomic(self.folder / sidecar_name(self.index), json.dumps(record, indent=1))
        return record

    def abort(self) -> None:
        """Drop the partial shard."""
        try:
            self._fh.close()
        except OSError:  # the file is being discarded anyway (disk full...)
            pass
        self.tmp.unlink(missing_ok=True)


def check_sidecar(record, index: int) -> dict:
    """The sidecar ``record`` of shard ``index`` if it holds every field of one, with types;
    ``BadContent`` naming the first wrong field otherwise."""
    record = readback.mapping(record)
    readback.integer(record, "shard", index, index)
    readback.text(record, "file", (shard_name(index),))
    readback.integer(record, "samples")
    readback.integer(record, "bytes")
    readback.integer(record, "diverged", optional=True)
    sha = record.get("sha256")
    if not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= set("0123456789abcdef")):
        raise readback.BadContent("field sha256 must be 64 hexadecimal digits")
    return record


def read_sidecar(folder: Path, index: int) -> dict | None:
    """The sidecar of shard ``index`` if the shard looks complete (a valid sidecar, matching
    size); None otherwise, so that a damaged sidecar means the shard is redone."""
    side = Path(folder) / sidecar_name(index)
    shard = Path(folder) / shard_name(index)
    try:
        record = check_sidecar(readback.parse_json(side), index)
        if shard.stat().st_size == record["bytes"]:
            return record
    except (OSError, readback.BadContent):
        pass
    return None


def write_indexes(folder: Path, name: str, plan: ShardPlan) -> None:
    """``_info.json`` (timm's wds format) and ``sizes.json`` (open_clip) at the shard root."""
    names = [shard_name(j) for j in range(plan.num_shards)]
    lengths = plan.shard_lengths()
    info = {
        "name": name,
        "splits": {
            "train": {
                "name": "train",
                "num_samples": plan.num_samples,
                "filenames": names,
                "shard_lengths": lengths,
            }
        },
    }
    write_atomic(Path(folder) / INFO_FILE, json.dumps(info, indent=1))
    write_atomic(
        Path(folder) / SIZES_FILE, json.dumps(dict(zip(names, lengths, strict=True)), indent=1)
    )


# --- temporary files, locking ---------------------------------------------------------------


def _process_tag() -> str:
    """Host and process id: unique among the writers of one (possibly shared) folder."""
    return f"{socket.gethostname().replace('/', '_')}-{os.getpid()}"


def partial_shard_index(path: Path) -> int | None:
    """The shard index of a temporary ``shard-NNNNNN.tar.*.partial`` file, else None."""
    name = Path(path).name
    if not (name.startswith("shard-") and name.endswith(PARTIAL_SUFFIX)):
        return None
    digits = name[len("shard-") : len("shard-") + 6]
    return int(digits) if digits.isdigit() else None


def remove_partials(folder: Path, mine=lambda index: True) -> int:
    """Delete the temporary shard files of the shards ``mine`` selects; returns how many."""
    removed = 0
    for path in Path(folder).glob("shard-*" + PARTIAL_SUFFIX):
        index = partial_shard_index(path)
        if index is not None and mine(index):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def partition_lock_name(index: int, count: int) -> str:
    """Lock file of partition ``index`` of ``count`` (``--shard-index/--num-shards``)."""
    return f"{LOCK_FILE}-{index}-of-{count}"


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


@contextmanager
def lock_folder(folder: Path, partition: tuple[int, int] | None = None) -> Iterator[None]:
    """Hold the render lock of ``folder`` for the duration of the block.

    A whole render takes an exclusive ``flock`` on ``FOLDER/.lock``. A partition render
    (``--shard-index I --num-shards N``) takes a shared lock on ``.lock`` plus an exclusive
    lock on ``.lock-I-of-N``, so the partitions of a SLURM array run side by side while a
    second copy of one partition, or a whole render beside them, is refused. The kernel drops
    ``flock`` locks when the process exits, however it exits: a crash leaves no stale lock.
    """
    folder = Path(folder)
    main_lock = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fds = []
        if partition is None:
            fd = _flock(main_lock, fcntl.LOCK_EX)
            if fd is None:
                raise FdgenError(
                    f"--shards: {folder} is being rendered by another fdgen process"
                    f"{_holder(main_lock)} (lock {main_lock}); two renders into one folder are "
                    "refused: wait for it to finish or choose another folder"
                )
            fds.append(fd)
            _stamp(fd)
        else:
            index, count = partition
            fd = _flock(main_lock, fcntl.LOCK_SH)
            if fd is None:
                raise FdgenError(
                    f"--shards: {folder} is being rendered whole by another fdgen process"
                    f"{_holder(main_lock)} (lock {main_lock}); a partition render beside it is "
                    "refused"
                )
            fds.append(fd)
            part_lock = folder / partition_lock_name(index, count)
            fd = _flock(part_lock, fcntl.LOCK_EX)
            if fd is None:
                os.close(fds.pop())
                raise FdgenError(
                    f"--shard-index {index} --num-shards {count}: this partition of {folder} is "
                    f"being rendered by another fdgen process{_holder(part_lock)} "
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


def is_lock_file(path: Path) -> bool:
    """Whether ``path`` is one of the render lock files (kept in the folder between runs)."""
    return Path(path).name == LOCK_FILE or Path(path).name.startswith(LOCK_FILE + "-")


# --- status and verification ---------------------------------------------------------------


MAX_SHARDS = 10**6  # shard names have six digits
MAX_SAMPLES = 10**9  # bounds the shard plan's permutation that status and verify build
_PLAN_FIELDS = {"categories": 1, "instances": 1, "group_size": 1, "samples_per_shard": 1}


def check_manifest(manifest) -> dict:
    """``manifest`` if it holds every field status, info, verify and render use, with types
    and ranges, and its shard counts agree with its plan; ``BadContent`` otherwise."""
    manifest = readback.mapping(manifest)
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
    readback.text(manifest, "status", optional=True)
    readback.text(manifest, "sample_unit", ("category", "image"), optional=True)
    plan = readback.sub_mapping(manifest, "plan", optional=True)
    if plan is not None:
        if set(plan) != {*_PLAN_FIELDS, "seed"}:
            raise readback.BadContent(
                f"field plan must hold {', '.join([*_PLAN_FIELDS, 'seed'])}, found {sorted(plan)}"
            )
        try:
            for name, low in _PLAN_FIELDS.items():
                readback.integer(plan, name, low, MAX_SAMPLES)
            readback.integer(plan, "seed")
        except readback.BadContent as exc:
            raise readback.BadContent(str(exc).replace("field ", "field plan.", 1)) from None
        shard_plan = ShardPlan(**plan)
        if shard_plan.num_samples > MAX_SAMPLES:
            raise readback.BadContent(f"the plan holds more than {MAX_SAMPLES} samples")
        if (num_shards, num_samples) != (shard_plan.num_shards, shard_plan.num_samples):
            raise readback.BadContent(
                f"num_shards {num_shards} and num_samples {num_samples} differ from the plan's "
                f"{shard_plan.num_shards} and {shard_plan.num_samples}"
            )
    return manifest


def read_manifest(folder: Path) -> dict:
    """The checked ``manifest.json`` of a shard folder; a clear error when there is none or
    it is damaged (see ``check_manifest``)."""
    path = Path(folder) / MANIFEST_FILE
    try:
        return check_manifest(readback.parse_json(path))
    except FileNotFoundError:
        raise FdgenError(f"{folder}: not an fdgen shard folder (no {MANIFEST_FILE})") from None
    except OSError as exc:
        raise FdgenError(f"{path}: unreadable manifest ({exc.strerror or exc})") from None
    except readback.BadContent as exc:
        raise FdgenError(f"{path}: damaged manifest ({exc})") from None


def manifest_plan(manifest: dict) -> ShardPlan | None:
    """The shard plan a checked manifest records (None for manifests that predate it)."""
    plan = manifest.get("plan")
    if not isinstance(plan, dict):
        return None
    try:
        return ShardPlan(**plan)
    except TypeError:
        return None


@lru_cache(maxsize=4)
def _lengths(plan: ShardPlan) -> tuple[int, ...]:
    return tuple(plan.shard_lengths())


def shard_state(folder: Path, index: int) -> str:
    """``complete`` (sidecar and matching size), ``incomplete`` (a tar, temporary file or
    sidecar without the rest) or ``missing`` (nothing written yet)."""
    if read_sidecar(folder, index) is not None:
        return "complete"
    folder = Path(folder)
    if (folder / shard_name(index)).exists() or (folder / sidecar_name(index)).exists():
        return "incomplete"
    if any(folder.glob(shard_name(index) + ".*" + PARTIAL_SUFFIX)):
        return "incomplete"
    return "missing"


def folder_status(folder: Path) -> dict:
    """Where a shard folder stands: shard indices by state and samples done."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    plan = manifest_plan(manifest)
    lengths = plan.shard_lengths() if plan else None
    partial = {partial_shard_index(p) for p in folder.glob("shard-*" + PARTIAL_SUFFIX)}
    states: dict[str, list[int]] = {"complete": [], "incomplete": [], "missing": []}
    samples_done = 0
    for j in range(manifest["num_shards"]):
        record = read_sidecar(folder, j)
        if record is not None:
            states["complete"].append(j)
            samples_done += record.get("samples", 0)
        elif (
            j in partial or (folder / shard_name(j)).exists() or (folder / sidecar_name(j)).exists()
        ):
            states["incomplete"].append(j)
        else:
            states["missing"].append(j)
    return {
        "folder": str(folder),
        "num_shards": manifest["num_shards"],
        "num_samples": manifest.get("num_samples"),
        "samples_done": samples_done,
        "shard_lengths": lengths,
        "indexed": (folder / INFO_FILE).exists() and manifest.get("status") == "complete",
        **states,
    }


def file_sha256(path: Path) -> tuple[str, int]:
    """sha256 hex digest and size of a file, read in chunks."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


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
    """The outcome of verifying one shard."""

    index: int
    samples: int = 0
    problems: list[str] | None = None
    rerendered: int = 0  # samples compared with a fresh render (verify --rerender)

    @property
    def ok(self) -> bool:
        return not self.problems


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


def _schema(identity: dict, folder: Path) -> tuple[Family, tuple[str, ...]]:
    """The family of a render's identity and the members each of its samples holds."""
    manifest = Path(folder) / MANIFEST_FILE
    family = get_family(identity["type"], where=f"{manifest}: identity.type")
    try:
        settings = family.RenderSettings(**identity["settings"])
    except (TypeError, FdgenError) as exc:  # unknown fields, or values out of range
        raise FdgenError(
            f"{manifest}: identity.settings do not fit type {family.type} ({exc})"
        ) from None
    return family, family.members(settings, identity["format"])


def verify_shard(
    folder: Path,
    index: int,
    manifest: dict,
    plan: ShardPlan | None = None,
    decode: bool = False,
    rerender=None,
) -> ShardCheck:
    """Check shard ``index`` against its sidecar and the plan: readable tar, sample count,
    size, sha256, each sample's members (image, cls, json), labels in range, the expected
    sample keys; with ``decode`` every image is decoded and its size checked. ``rerender``
    (a ``fdgen.rerender.ShardRerender``) compares its chosen samples with a fresh render."""
    folder = Path(folder)
    check = ShardCheck(index, problems=[])
    problems = check.problems
    identity = manifest["identity"]
    categories = manifest["categories"]
    family, members = _schema(identity, folder)
    decode_size = identity["settings"].get("size", 0) if decode else None
    path = folder / shard_name(index)
    try:
        record = check_sidecar(readback.parse_json(folder / sidecar_name(index)), index)
    except FileNotFoundError:
        state = shard_state(folder, index)
        problems.append("not rendered yet" if state == "missing" else "incomplete (no sidecar)")
        return check
    except OSError as exc:
        problems.append(f"sidecar {sidecar_name(index)} unreadable ({exc.strerror or exc})")
        return check
    except readback.BadContent as exc:
        problems.append(f"sidecar {sidecar_name(index)} damaged ({exc})")
        return check
    expected_samples = _lengths(plan)[index] if plan else record.get("samples")
    if record.get("samples") != expected_samples:
        problems.append(
            f"sidecar lists {record.get('samples')} samples, the plan {expected_samples}"
        )
    expected_keys = None
    if plan is not None:
        expected_keys = {
            family.sample_key(unit, i)
            for unit, _, instances in plan.members(index)
            for i in instances
        }
    seen: set[str] = set()
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
    if reader.size != record.get("bytes"):
        problems.append(f"size {reader.size} bytes, sidecar says {record.get('bytes')}")
    if reader.sha.hexdigest() != record.get("sha256"):
        problems.append("sha256 differs from the sidecar (the file was changed or damaged)")
    if check.samples != expected_samples and len(problems) < _MAX_PROBLEMS:
        problems.append(f"holds {check.samples} samples, expected {expected_samples}")
    if expected_keys is not None and len(problems) < _MAX_PROBLEMS:
        lost = sorted(expected_keys - seen)
        if lost:
            problems.append(f"sample {lost[0]}: missing ({len(lost)} expected samples absent)")
    del problems[_MAX_PROBLEMS:]
    return check


def _check_indexes(folder: Path, manifest: dict, plan: ShardPlan | None) -> list[str]:
    """Problems with ``_info.json``/``sizes.json`` (checked once the folder is finalised)."""
    if manifest.get("status") != "complete" or plan is None:
        return []
    names = [shard_name(j) for j in range(plan.num_shards)]
    lengths = plan.shard_lengths()
    problems = []
    try:
        info = readback.parse_json(Path(folder) / INFO_FILE)
        split = info["splits"]["train"]
        if split["filenames"] != names or split["shard_lengths"] != lengths:
            problems.append(f"{INFO_FILE}: file names or shard lengths differ from the plan")
        if split["num_samples"] != plan.num_samples:
            problems.append(f"{INFO_FILE}: num_samples differs from the plan")
    except OSError as exc:
        problems.append(f"{INFO_FILE}: unreadable ({exc.strerror or exc})")
    except readback.BadContent as exc:
        problems.append(f"{INFO_FILE}: unreadable ({exc})")
    except (KeyError, TypeError, IndexError):
        problems.append(
            f"{INFO_FILE}: not a wds index (needs splits.train with filenames, shard_lengths "
            "and num_samples)"
        )
    try:
        sizes = readback.parse_json(Path(folder) / SIZES_FILE)
        if sizes != dict(zip(names, lengths, strict=True)):
            problems.append(f"{SIZES_FILE}: differs from the plan")
    except OSError as exc:
        problems.append(f"{SIZES_FILE}: unreadable ({exc.strerror or exc})")
    except readback.BadContent as exc:
        problems.append(f"{SIZES_FILE}: unreadable ({exc})")
    return problems


@lru_cache(maxsize=4)
def _plan_of(fields: tuple) -> ShardPlan:
    return ShardPlan(*fields)


def _verify_task(
    folder: str, manifest: dict, plan_fields: tuple | None, decode: bool, rerender, index
):
    """``verify_shard`` in a worker process (the plan, with its permutation, built once);
    ``rerender`` is None or (``fdgen.rerender.Source``, count)."""
    plan = _plan_of(plan_fields) if plan_fields else None
    fresh = None
    if rerender is not None:
        from fdgen.rerender import shard_rerender

        source, count = rerender
        fresh = shard_rerender(source, index, count)
    return verify_shard(Path(folder), index, manifest, plan, decode, fresh)


def verify_folder(
    folder: Path,
    decode: bool = False,
    progress=None,
    workers: int = 1,
    rerender: int | str = 0,
    source=None,
) -> dict:
    """Verify every shard of a folder (see ``verify_shard``) and its index files.

    ``rerender`` samples per shard (a seeded choice, or ``"all"``) are rendered again and
    compared byte for byte with the stored ones; ``source`` (``fdgen.rerender.load_source``)
    says from what, by default the database the manifest records.
    Returns ``{"shards": [ShardCheck...], "samples": n, "index_problems": [...]}``;
    ``progress(check)`` is called after each shard; ``workers`` processes share the shards.
    """
    from fdgen.runners import run_local

    folder = Path(folder)
    manifest = read_manifest(folder)
    plan = manifest_plan(manifest)
    if rerender and source is None:
        from fdgen.rerender import load_source

        source = load_source(folder, manifest)
    fields = dataclasses.astuple(plan) if plan else None
    task_source = (source, rerender) if rerender else None
    fn = partial(_verify_task, str(folder), manifest, fields, decode, task_source)
    checks = []
    for check in run_local(fn, range(manifest["num_shards"]), workers):
        checks.append(check)
        if progress:
            progress(check)
    checks.sort(key=lambda c: c.index)
    return {
        "shards": checks,
        "samples": sum(c.samples for c in checks),
        "index_problems": _check_indexes(folder, manifest, plan),
        "manifest": manifest,
    }
