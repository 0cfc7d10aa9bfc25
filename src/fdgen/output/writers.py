"""Writers: how the samples of one shard become files in a shard folder.

``render`` talks to a writer only through ``Writer``: open it for shard j, ``write`` each
sample in order, then ``commit`` (the shard is in place and its ``Sidecar`` marks it
complete) or ``abort`` (nothing of the shard is left, no sidecar). ``WebDatasetWriter`` is
the default: one tar per shard, samples as members ``key.ext``; ``fdgen.output.files`` writes
one folder per category (torchvision's ``ImageFolder``), ``fdgen.output.parquet`` one Parquet
file per shard (HuggingFace ``datasets``). ``writer_class`` finds one by its ``--writer`` name.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from fdgen.errors import FdgenError
from fdgen.families.base import Sample
from fdgen.output.folder import DEFAULT_WRITER, WRITER_SUFFIXES, ShardFolder, Sidecar
from fdgen.output.tar import TarStream


class Writer(ABC):
    """The output of one shard. Opening (the constructor) may raise ``OSError``; so may
    ``write`` and ``commit``, after which the caller calls ``abort``. ``name`` is the
    ``--writer`` name recorded in the manifest (it decides the shard file names)."""

    name: ClassVar[str] = DEFAULT_WRITER

    @classmethod
    def check_fit(cls, family, settings, fmt: str, category_names: list[str], val: int = 0) -> None:
        """Raise ``FdgenError`` when the samples of this render (``val``: its validation
        split's count) do not fit the writer's layout (checked before anything is written);
        every render fits by default."""
        return None

    def __init__(self, folder: ShardFolder, index: int):
        self.folder = folder
        self.index = index

    @abstractmethod
    def write(self, sample: Sample) -> None:
        """Add one sample (its array members may be views, valid only during this call)."""

    @abstractmethod
    def commit(self) -> Sidecar:
        """Finish the shard, move it into place and save the sidecar marking it complete."""

    @abstractmethod
    def abort(self) -> None:
        """Drop what was written of the shard (called after an error)."""


class WebDatasetWriter(Writer):
    """One WebDataset tar per shard, written under a per-process partial name and renamed
    into place on commit; tar headers are fixed, so the bytes depend only on the samples."""

    def __init__(self, folder: ShardFolder, index: int):
        super().__init__(folder, index)
        self.path = folder.shard(index)
        self.tmp = folder.partial(index)
        self._fh = open(self.tmp, "wb")
        self._tar = TarStream(self._fh)
        self.samples = 0
        self.diverged = 0

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._tar.size

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        """Add one sample from its encoded members: tar members ``key.<ext>`` in order."""
        for ext, data in fields.items():
            self._tar.add(f"{key}.{ext}", data)
        self.samples += 1

    def write(self, sample: Sample) -> None:
        self.diverged += bool(sample.meta.get("diverged", False))
        self.add(sample.key, sample.encoded())

    def commit(self) -> Sidecar:
        self._tar.finish()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp, self.path)
        record = Sidecar(
            self.index,
            self.path.name,
            self.samples,
            self._tar.size,
            self._tar.sha.hexdigest(),
            self.diverged,
        )
        self.folder.save_sidecar(record)
        return record

    def abort(self) -> None:
        try:
            self._fh.close()
        except OSError:  # the file is being discarded anyway (disk full...)
            pass
        Path(self.tmp).unlink(missing_ok=True)


def writer_class(name: str) -> type[Writer]:
    """The writer of ``--writer NAME``; a clear error for an unknown name."""
    if name == "webdataset":
        return WebDatasetWriter
    if name == "files":
        from fdgen.output.files import FilesWriter

        return FilesWriter
    if name == "parquet":
        from fdgen.output.parquet import ParquetWriter

        return ParquetWriter
    raise FdgenError(f"--writer: unknown writer {name!r}; choose from {', '.join(WRITER_SUFFIXES)}")
