"""The shard plan: which (category, group) pairs go to which shard.

A dataset is ``categories x instances`` samples. Instances are rendered in groups (the four
flips of a FractalDB variant); groups are spread over shards by one seeded global shuffle,
so shard j is a pure function of (database, settings, j) and mixes categories.

The shuffle is a function, not a table (plan version 2): position p of the global order
holds group ``shuffle(p)``, a keyed bijection on [0, total groups) built from a balanced
Feistel network on the smallest even number of bits that covers the groups, with cycle
walking (a value past the end is encrypted again until it lands inside). Every step is
unsigned 64-bit integer arithmetic, so the order is the same on every machine; ``members``
costs O(shard), and the plan pickles as its six integers at any dataset size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLES_PER_SHARD = 5000
PLAN_VERSION = 2  # 1: a stored seeded permutation of the groups (fdgen before the bijection)
_SHUFFLE_KEY = 0x5348  # separates the shard shuffle stream from sample streams
_ROUNDS = 8
_M64 = (1 << 64) - 1
_LENGTH_CHUNK = 1 << 20  # groups per step when shard lengths need the inverse shuffle


def _mix(x: int) -> int:
    """SplitMix64's finaliser on a Python int (the key schedule)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _mix_array(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


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

    # the keyed bijection

    def _half_bits(self) -> int:
        return max(1, (max(1, self.total_groups - 1).bit_length() + 1) // 2)

    def _round_keys(self) -> list[int]:
        base = [self.seed, _SHUFFLE_KEY, self.categories, self.instances, self.group_size]
        state = 0
        for value in base:
            state = _mix(state ^ (value & _M64))
        return [_mix(state ^ r) for r in range(_ROUNDS)]

    def _feistel(self, x: np.ndarray, inverse: bool) -> np.ndarray:
        half = self._half_bits()
        mask = np.uint64((1 << half) - 1)
        shift = np.uint64(half)
        left, right = x >> shift, x & mask
        keys = [np.uint64(k) for k in self._round_keys()]
        if not inverse:
            for key in keys:
                left, right = right, left ^ (_mix_array(right ^ key) & mask)
        else:
            for key in reversed(keys):
                left, right = right ^ (_mix_array(left ^ key) & mask), left
        return (left << shift) | right

    def _walk(self, values, inverse: bool) -> np.ndarray:
        """The bijection (or its inverse) on [0, total_groups), by cycle walking."""
        x = np.asarray(values, dtype=np.uint64).copy()
        n = np.uint64(self.total_groups)
        outside = np.ones(x.shape, dtype=bool)
        while outside.any():
            x[outside] = self._feistel(x[outside], inverse)
            outside = x >= n
        return x.astype(np.int64)

    def shuffle(self, positions) -> np.ndarray:
        """Group ids (category * groups_per_category + group) at ``positions`` of the order."""
        return self._walk(positions, inverse=False)

    def position(self, group_ids) -> np.ndarray:
        """Where ``group_ids`` stand in the global order (the inverse of ``shuffle``)."""
        return self._walk(group_ids, inverse=True)

    # shards

    def members(self, shard: int) -> list[tuple[int, int, list[int]]]:
        """(category, group, instances) of every group in ``shard``, in writing order."""
        start = shard * self.groups_per_shard
        stop = min(start + self.groups_per_shard, self.total_groups)
        out = []
        for gid in self.shuffle(np.arange(start, max(start, stop))).tolist():
            category, group = divmod(gid, self.groups_per_category)
            first = group * self.group_size
            last = min(first + self.group_size, self.instances)
            out.append((category, group, list(range(first, last))))
        return out

    def shard_lengths(self) -> list[int]:
        """Samples in each shard, without building the order: every group is full but the
        last of each category, so only those need placing (in bounded chunks)."""
        per_shard = self.groups_per_shard
        groups = np.full(self.num_shards, per_shard, dtype=np.int64)
        groups[-1] = self.total_groups - (self.num_shards - 1) * per_shard
        lengths = groups * self.group_size
        short = self.group_size * self.groups_per_category - self.instances
        if short:
            gpc = self.groups_per_category
            for first in range(0, self.categories, _LENGTH_CHUNK):
                last_ids = np.arange(first, min(first + _LENGTH_CHUNK, self.categories)) * gpc
                shards = self.position(last_ids + gpc - 1) // per_shard
                lengths -= short * np.bincount(shards, minlength=self.num_shards)
        return lengths.tolist()
