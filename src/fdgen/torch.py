"""On-the-fly rendering for PyTorch: the samples of a render, made inside DataLoader workers.

``RenderedDataset(db, settings)`` is an ``IterableDataset`` that yields exactly the samples
``fdgen render`` would write (same keys, pixels, labels and metadata, in the same order shard
by shard), without writing anything. Work is split by shard: rank r of R takes shards
r, r + R, ...; DataLoader worker w of W takes every W-th of those. Every shard goes to exactly
one (rank, worker), so no sample is duplicated or dropped.

Needs the optional extra: ``pip install fdgen[torch]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

try:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "fdgen.torch needs PyTorch: pip install 'fdgen[torch]' (or pip install torch)"
    ) from exc

from fdgen.database import Database, load_database, render_settings
from fdgen.errors import FdgenError
from fdgen.families import get_family
from fdgen.output.plan import SAMPLES_PER_SHARD
from fdgen.rendering import ShardTask, render_splits, shard_samples, split_named, split_task

OUTPUTS = ("tuple", "dict", "raw")


def split_shards(
    shards: list[int], rank: int, world_size: int, worker: int, num_workers: int
) -> list[int]:
    """The shards that (rank, worker) handles: a disjoint cover of ``shards``."""
    return shards[rank::world_size][worker::num_workers]


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class RenderedDataset(IterableDataset):
    """Samples of ``fdgen render --db DB`` with ``settings``, rendered when iterated.

    ``db``: a Database or a database folder; ``settings``: the family's RenderSettings
    (default: ``render_settings(db)``, the render settings of the preset the database was
    searched from, else the family's defaults: what ``fdgen render`` uses without options);
    ``samples_per_shard`` and ``fmt`` as for ``fdgen render`` (they fix the order and, for
    ``output="raw"``, the encoding). ``output``:

    - ``"tuple"`` (default): ``(image, label)``, image a uint8 tensor C x H x W (after
      ``transform`` if given, which receives that tensor; the family's ``payload_tensor``
      layout, e.g. 1 x T x H x W for a Video Perlin Noise clip), label an int. Families whose
      target is a member (SegRCDB's ``seg.png`` mask) give ``(image, target)``, the target
      an int64 tensor H x W of class ids (0 is the background; ``transform`` sees the image
      only);
    - ``"dict"``: ``{"__key__", "image"`` (H x W or H x W x C uint8 array, the lossless
      pixels; a clip T x H x W), ``"cls"`` (int), ``"json"`` (dict)``}``; with a target
      member, that member under its name less the extension (SegRCDB: ``"seg"``, the H x W
      uint8 mask) instead of ``"cls"``;
    - ``"raw"``: the tar members as bytes, ``{"__key__", fmt, "cls", "json"}`` (SegRCDB:
      ``"seg.png"`` instead of ``"cls"``), byte for byte what the shards hold.

    ``split``: ``"train"`` (default) or ``"val"``, the validation split ``fdgen render
    --val-instances N`` (per-image families: ``--val-images N``) writes into ``val-NNNNNN.tar``;
    it needs ``val_instances`` (or ``val_images``) N, the same as the render's.

    ``rank``/``world_size`` default to torch.distributed's when it is initialised, else 0/1.
    ``shuffle_shards`` visits shards in an order drawn from (``seed``, epoch); call
    ``set_epoch`` each epoch, with the same value on every rank.
    """

    def __init__(
        self,
        db: Database | str | Path,
        settings=None,
        samples_per_shard: int = SAMPLES_PER_SHARD,
        fmt: str = "png",
        output: str = "tuple",
        transform: Callable | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        shuffle_shards: bool = False,
        seed: int = 0,
        split: str = "train",
        val_instances: int = 0,
        val_images: int = 0,
    ):
        super().__init__()
        self.db = db if isinstance(db, Database) else load_database(db)
        self.family = get_family(self.db.type)
        if settings is None:
            settings = render_settings(self.db)
        if not isinstance(settings, self.family.RenderSettings):
            raise FdgenError(
                f"settings: expected {self.db.type} RenderSettings, got {type(settings).__name__}"
            )
        if output not in OUTPUTS:
            raise FdgenError(f"output: must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if samples_per_shard < 1:
            raise FdgenError("samples_per_shard: must be >= 1")
        if (rank is None) != (world_size is None):
            raise FdgenError("rank/world_size: give both or neither")
        if world_size is not None and not 0 <= rank < world_size:
            raise FdgenError(f"rank: must be in [0, {world_size - 1}], got {rank}")
        self.settings = settings
        self.fmt = fmt
        self.output = output
        self.transform = transform
        self.rank, self.world_size = rank, world_size
        self.shuffle_shards = shuffle_shards
        self.seed = seed
        self.epoch = 0
        from fdgen.api import val_count

        val = val_count(self.db.type, val_instances, val_images)
        self.split = split_named(render_splits(self.db, settings, samples_per_shard, val), split)
        self.plan = self.split.plan
        self._lengths = self.plan.shard_lengths()

    @property
    def num_shards(self) -> int:
        return self.plan.num_shards

    @property
    def num_samples(self) -> int:
        """Samples over all ranks (the size of the rendered dataset)."""
        return self.plan.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Select the shard order of ``epoch`` (only matters with ``shuffle_shards``)."""
        self.epoch = epoch

    def _rank(self) -> tuple[int, int]:
        return (self.rank, self.world_size) if self.world_size is not None else _distributed()

    def shard_order(self) -> list[int]:
        """All shard indices in this epoch's visiting order (the same on every rank)."""
        order = list(range(self.plan.num_shards))
        if self.shuffle_shards:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(order).tolist()
        return order

    def rank_shards(self) -> list[int]:
        """The shards of this rank (all DataLoader workers together)."""
        rank, world = self._rank()
        return split_shards(self.shard_order(), rank, world, 0, 1)

    def __len__(self) -> int:
        """Samples this rank yields per epoch."""
        return sum(self._lengths[j] for j in self.rank_shards())

    def task(self, shard: int) -> ShardTask:
        """The render task of ``shard`` (of this dataset's split), as ``fdgen render`` builds
        it."""
        return split_task(self.db, self.family, self.split, self.fmt, shard)

    def shard_samples(self, shard: int) -> Iterator:
        """The samples of one shard, in the shard's order, in this dataset's output form."""
        target_member = self.family.target_member
        for sample in shard_samples(self.task(shard)):
            if self.output == "raw":
                yield {"__key__": sample.key, **sample.encoded()}
                continue
            image = sample.payload
            pixels = np.array(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image)
            target = sample.label if target_member is None else sample.value(target_member)
            if self.output == "dict":
                name = "cls" if target_member is None else target_member.split(".")[0]
                # the metadata as a reader of the shard's json member sees it
                yield {
                    "__key__": sample.key,
                    "image": pixels,
                    name: target,
                    "json": _json(sample.meta),
                }
                continue
            tensor = torch.from_numpy(self.family.payload_tensor(pixels))
            if target_member is not None:
                target = torch.from_numpy(target).long()
            yield (self.transform(tensor) if self.transform else tensor), target

    def __iter__(self) -> Iterator:
        rank, world = self._rank()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for shard in split_shards(self.shard_order(), rank, world, worker, workers):
            yield from self.shard_samples(shard)


def _json(meta: dict) -> dict:
    return json.loads(json.dumps(meta, sort_keys=True))
