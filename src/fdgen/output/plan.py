"""The shard plan: which (category, group) pairs go to which shard.

A dataset is ``categories x instances`` samples. Instances are rendered in groups (the four
flips of a FractalDB variant); groups are spread over shards by one seeded global
permutation, so shard j is a pure function of (database, settings, j) and mixes categories.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

SAMPLES_PER_SHARD = 5000
_SHUFFLE_KEY = 0x5348  # separates the shard shuffle stream from sample streams


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
