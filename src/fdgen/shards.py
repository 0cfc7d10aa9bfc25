"""Shard plan, tar writing, completion sidecars and the index files trainers read.

A dataset is ``categories x instances`` samples. Instances are rendered in groups (the four
flips of a FractalDB variant); groups are spread over shards by one seeded global
permutation, so shard j is a pure function of (database, settings, j) and mixes categories.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from fdgen.database import write_atomic

SAMPLES_PER_SHARD = 5000
INFO_FILE = "_info.json"
SIZES_FILE = "sizes.json"
MANIFEST_FILE = "manifest.json"
PARTIAL_SUFFIX = ".partial"
_SHUFFLE_KEY = 0x5348  # separates the shard shuffle stream from sample streams


def shard_name(index: int) -> str:
    """File name of shard ``index``."""
    return f"shard-{index:06d}.tar"


def sidecar_name(index: int) -> str:
    """File name of the sidecar that marks shard ``index`` complete."""
    return f"shard-{index:06d}.json"


def sample_key(category: int, instance: int) -> str:
    """WebDataset key of a sample (no dots)."""
    return f"c{category:06d}_i{instance:06d}"


def image_key(image: int) -> str:
    """WebDataset key of a sample that is one image of many categories (SegRCDB)."""
    return f"img{image:08d}"


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


class _HashingFile:
    """A write-only file wrapper that hashes and counts what passes through."""

    def __init__(self, fh):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)


class ShardWriter:
    """Writes one shard under a temporary name; ``commit`` renames it and writes its sidecar.

    Tar headers are fixed (mtime 0, uid/gid 0, no user names, mode 0644), so the bytes depend
    only on the samples written.
    """

    def __init__(self, folder: Path, index: int):
        self.folder = Path(folder)
        self.index = index
        self.path = self.folder / shard_name(index)
        self.tmp = self.folder / (shard_name(index) + PARTIAL_SUFFIX)
        self._fh = open(self.tmp, "wb")
        self._hashing = _HashingFile(self._fh)
        self._tar = tarfile.open(fileobj=self._hashing, mode="w|", format=tarfile.USTAR_FORMAT)
        self.samples = 0

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        """Add one sample: tar members ``key.<ext>`` in the given order."""
        for ext, data in fields.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self.samples += 1

    def commit(self, extra: dict) -> dict:
        """Finish the tar, move it into place and write the sidecar marking it complete."""
        self._tar.close()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp, self.path)
        record = {
            "shard": self.index,
            "file": self.path.name,
            "samples": self.samples,
            "bytes": self._hashing.size,
            "sha256": self._hashing.sha.hexdigest(),
            **extra,
        }
        write_atomic(self.folder / sidecar_name(self.index), json.dumps(record, indent=1))
        return record

    def abort(self) -> None:
        """Drop the partial shard."""
        try:
            self._tar.close()
        except Exception:  # noqa: BLE001 - the file is being discarded anyway
            pass
        self._fh.close()
        self.tmp.unlink(missing_ok=True)


def read_sidecar(folder: Path, index: int) -> dict | None:
    """The sidecar of shard ``index`` if the shard looks complete (sidecar + matching size)."""
    side = Path(folder) / sidecar_name(index)
    shard = Path(folder) / shard_name(index)
    try:
        record = json.loads(side.read_text())
        if shard.stat().st_size == record["bytes"]:
            return record
    except (OSError, ValueError, KeyError, TypeError):
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
    write_atomic(Path(folder) / SIZES_FILE, json.dumps(dict(zip(names, lengths)), indent=1))
