"""``fdgen render --dry-run``: the plan of a render and its cost, measured, nothing written.

A short calibration renders and encodes the first groups of the plan in this process (one
core; the first group, which compiles the kernels, is sized but not timed) and scales the measured
time and tar bytes per sample to the whole dataset, so a SLURM array or a Dask cluster can
be sized before it is submitted.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from fdgen.database import Database
from fdgen.families import get_family
from fdgen.output.tar import BLOCK
from fdgen.rendering import render_splits, shard_samples, shard_task

CALIBRATION_S = 2.0  # time the calibration render for about this long
CALIBRATION_SAMPLES = 400  # or this many samples, whichever comes first


@dataclass(frozen=True)
class Estimate:
    """The plan of a render and its cost as measured by a calibration render."""

    num_samples: int
    num_shards: int
    samples_per_shard: int
    categories: int
    calibration_samples: int
    calibration_s: float
    bytes_per_sample: float
    val_samples: int = 0  # the validation split (render --val-instances/--val-images)
    val_shards: int = 0

    @property
    def all_samples(self) -> int:
        """Samples of every split."""
        return self.num_samples + self.val_samples

    @property
    def seconds_per_sample(self) -> float:
        return self.calibration_s / self.calibration_samples

    @property
    def core_hours(self) -> float:
        return self.seconds_per_sample * self.all_samples / 3600

    @property
    def total_bytes(self) -> float:
        return self.bytes_per_sample * self.all_samples

    def lines(self, num_shards: int = 1) -> list[str]:
        """What ``fdgen render --dry-run`` prints (``num_shards``: array partitions)."""
        per_shard_s = self.seconds_per_sample * self.samples_per_shard
        out = [
            f"plan: {self.num_samples:,} samples of {self.categories:,} categories in "
            f"{self.num_shards:,} shards of up to {self.samples_per_shard:,} samples",
        ]
        if self.val_shards:
            out.append(
                f"val split: {self.val_samples:,} samples (held-out seed) in "
                f"{self.val_shards:,} shards val-NNNNNN.tar"
            )
        out += [
            f"calibration: {self.calibration_samples:,} samples rendered in "
            f"{self.calibration_s:.2f} s on one core ({1 / self.seconds_per_sample:,.0f} "
            f"samples/s, {self.bytes_per_sample / 1024:,.1f} KiB per sample in the tar)",
            f"estimate: {self.total_bytes / 2**30:,.2f} GiB on disk, "
            f"{self.core_hours:,.2f} core-hours ({per_shard_s:,.1f} core-seconds per shard)",
        ]
        if num_shards > 1:
            shards = max(self.num_shards, self.val_shards)
            tasks = min(num_shards, shards)
            # a partition takes j % N == I of each split
            per_task = -(-self.num_shards // num_shards) + -(-self.val_shards // num_shards)
            line = (
                f"array: --num-shards {num_shards}: {tasks:,} tasks of up to {per_task:,} "
                f"shards, about {per_task * per_shard_s:,.0f} core-seconds each plus start-up"
            )
            if num_shards > shards:
                line += (
                    f"; partitions {shards} to {num_shards - 1} have no shard to "
                    f"render (the plan has {shards:,}"
                    + (" per split" if self.val_shards else "")
                    + ")"
                )
            out.append(line)
        out.append("dry run: nothing written")
        return out


def _tar_bytes(encoded: dict[str, bytes]) -> int:
    """Bytes a sample takes in a shard: a header block per member, data padded to blocks."""
    return sum(BLOCK + -(-len(data) // BLOCK) * BLOCK for data in encoded.values())


def estimate_render(
    db: Database, settings, fmt: str, samples_per_shard: int, val: int = 0
) -> Estimate:
    """The plan of rendering ``db`` with ``settings`` (and a validation split of ``val`` per
    unit) and its measured cost, calibrated on the training split; writes nothing."""
    family = get_family(db.type)
    splits = render_splits(db, settings, samples_per_shard, val)
    plan = splits[0].plan
    val_plan = splits[1].plan if val else None
    timed = sized = size = 0
    elapsed = 0.0
    for shard in range(plan.num_shards):
        task = shard_task(db, family, settings, fmt, plan, shard)
        for member in task.members:
            one = dataclasses.replace(task, members=[member])
            started = time.perf_counter()
            sizes = [_tar_bytes(sample.encoded()) for sample in shard_samples(one)]
            took = time.perf_counter() - started
            sized, size = sized + len(sizes), size + sum(sizes)
            if sized > len(sizes):  # the first group compiles the kernels: not timed
                elapsed, timed = elapsed + took, timed + len(sizes)
            if elapsed >= CALIBRATION_S or timed >= CALIBRATION_SAMPLES:
                break
        if elapsed >= CALIBRATION_S or timed >= CALIBRATION_SAMPLES:
            break
    if timed == 0:  # a dataset of one group: time it again, warm
        task = shard_task(db, family, settings, fmt, plan, 0)
        started = time.perf_counter()
        timed = sum(1 for _ in shard_samples(task))
        elapsed = time.perf_counter() - started
    return Estimate(
        plan.num_samples, plan.num_shards, samples_per_shard, len(db), timed,
        max(elapsed, 1e-9), size / sized,
        val_plan.num_samples if val_plan else 0, val_plan.num_shards if val_plan else 0,
    )  # fmt: skip
