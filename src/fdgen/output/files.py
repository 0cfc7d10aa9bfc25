"""The files writer: the original FractalDB layout, one folder per category.

Shard j's images go to ``OUT/<category file stem>/<key>.<png|jpg>``, so that
``torchvision.datasets.ImageFolder(OUT)`` reads the folder: its class index is the position of
the folder name among the sorted folder names, which is fdgen's label when the category names
sort in label order (checked before a render starts). Only the image is written; the label is
the folder and the ``json`` metadata of the other writers is not kept.

A shard has no file of its own: while it is written, its journal ``shard-NNNNNN.HOST-PID.partial``
lists every image it has started (each written under a temporary name and renamed into
place), so a killed shard's images are found and removed by the next render; its sidecar lists
``[CATEGORY/KEY.EXT, bytes, sha256]`` of each image, which ``status`` and resume (sizes) and
``verify`` and ``render --rehash`` (digests) check. Images are not fsynced one by one (a
million fsyncs); an image a crash left short fails the size check, so its shard is redone.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from fdgen.errors import FdgenError
from fdgen.families.base import Sample
from fdgen.output.folder import PARTIAL_SUFFIX, ShardFolder, Sidecar, process_tag, shard_name
from fdgen.output.writers import Writer

IMAGE_FORMATS = ("png", "jpg")
OTHER_WRITERS = "use --writer webdataset or --writer parquet"


def listing_digest(files: list) -> str:
    """The sidecar ``sha256`` of a files shard: the digest of its ``[name, bytes, sha256]``
    list, one ``name bytes sha256`` line per image."""
    sha = hashlib.sha256()
    for name, size, digest in files:
        sha.update(f"{name} {size} {digest}\n".encode())
    return sha.hexdigest()


class FilesWriter(Writer):
    """Images in one folder per category (``torchvision.datasets.ImageFolder``)."""

    name = "files"

    @classmethod
    def check_fit(cls, family, settings, fmt: str, category_names: list[str], val: int = 0) -> None:
        members = family.members(settings, fmt)
        where = f"--writer files: type {family.type}"
        if family.sample_unit != "category":
            raise FdgenError(
                f"{where} draws each image from every category, so there is no category folder "
                f"to put it in; {OTHER_WRITERS}"
            )
        if val:
            raise FdgenError(
                "--val-instances: --writer files writes one ImageFolder of the training split "
                f"and has no layout for a validation split; {OTHER_WRITERS} (val-NNNNNN "
                "shards), or render the validation set into its own folder with another --seed"
            )
        if members[0] not in IMAGE_FORMATS:
            raise FdgenError(
                f"{where} writes .{members[0]} samples, not images, with these settings; "
                f"{OTHER_WRITERS}"
            )
        extra = [m for m in members[1:] if m not in ("cls", "json")]
        if extra:
            raise FdgenError(
                f"{where} writes .{', .'.join(extra)} beside each image, which a folder of "
                f"images cannot hold; {OTHER_WRITERS}"
            )
        if len(set(category_names)) != len(category_names):
            raise FdgenError(f"{where}: two categories share a file name; {OTHER_WRITERS}")
        for a, b in zip(category_names, category_names[1:], strict=False):
            if not a < b:
                raise FdgenError(
                    f"{where}: category folders {a!r} (label {category_names.index(a)}) and "
                    f"{b!r} sort in another order than their labels, so ImageFolder would "
                    f"mislabel them; rename the category files or {OTHER_WRITERS}"
                )

    def __init__(self, folder: ShardFolder, index: int):
        super().__init__(folder, index)
        self.tag = process_tag()
        self.journal_path = folder.partial(index)
        self._journal = open(self.journal_path, "w")
        self.files: list[list] = []
        self.diverged = 0

    def write(self, sample: Sample) -> None:
        self.diverged += bool(sample.meta.get("diverged", False))
        ext, member = next(iter(sample.members.items()))
        data = member.encoded()
        name = f"{Path(sample.meta['file']).stem}/{sample.key}.{ext}"
        self._journal.write(name + "\n")
        self._journal.flush()  # listed before it exists: a killed shard's images are known
        target = self.folder.path / name
        target.parent.mkdir(exist_ok=True)
        tmp = Path(f"{target}.{self.tag}{PARTIAL_SUFFIX}")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
        self.files.append([name, len(data), hashlib.sha256(data).hexdigest()])

    def commit(self) -> Sidecar:
        self._journal.close()
        record = Sidecar(
            self.index,
            shard_name(self.index, self.folder.split, self.name),
            len(self.files),
            sum(size for _, size, _ in self.files),
            listing_digest(self.files),
            self.diverged,
            files=self.files,
        )
        self.folder.save_sidecar(record)
        self.journal_path.unlink(missing_ok=True)
        return record

    def abort(self) -> None:
        try:
            self._journal.close()
        except OSError:  # the journal is being discarded anyway
            pass
        done = self.folder.read_sidecar(self.index) is not None  # by a second try of it
        self.folder.drop_journal(self.journal_path, keep_written=done)
        self.journal_path.unlink(missing_ok=True)


def read_files(folder: ShardFolder, record: Sidecar, problems: list) -> Iterator[tuple]:
    """``(key, {ext: image bytes}, category folder)`` of each image the sidecar lists, in
    order; a missing, unreadable or changed image is a problem naming it."""
    for name, size, digest in record.files or []:
        try:
            data = (folder.path / name).read_bytes()
        except OSError as exc:
            problems.append(f"{name}: {'missing' if isinstance(exc, FileNotFoundError) else exc}")
            continue
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            problems.append(f"{name}: differs from the sidecar (changed or damaged)")
        category, _, file = name.partition("/")
        key, _, ext = file.partition(".")
        yield key, {ext: data}, category
