"""The Parquet writer: one ``shard-NNNNNN.parquet`` per shard, one row per sample.

Columns: ``key`` (string), then one per member in tar order: the image payload as ``image``
(HuggingFace's ``Image`` layout, a struct of ``bytes`` and ``path``), ``cls`` as ``label``
(int64), ``json`` as ``metadata`` (the JSON text), and any other member under its name without
the extension (``seg.png`` -> ``seg``, an ``Image`` too; ``labels.npy`` -> ``labels``, binary;
a point-cloud payload ``npy`` stays ``npy``). The schema metadata holds the HuggingFace
features under the ``huggingface`` key, where ``datasets`` (``Features.from_arrow_schema``) and
the Hub read them, so ``datasets.load_dataset("parquet", ...)`` decodes the images.

Bytes depend only on the samples (and the pyarrow version): fixed row groups of
``ROW_GROUP_ROWS`` rows, fixed compression, no timestamps in the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from fdgen.errors import FdgenError
from fdgen.families.base import Sample
from fdgen.output.folder import ShardFolder, Sidecar, file_sha256
from fdgen.output.writers import Writer

ROW_GROUP_ROWS = 256  # rows per row group: ~13 MB of 362 px PNGs, streamed a group at a time
COMPRESSION = "zstd"  # images are compressed already; it shrinks keys and metadata
IMAGE_EXTENSIONS = ("png", "jpg")


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise FdgenError(
            "--writer parquet needs pyarrow: pip install 'fdgen[parquet]' (or pyarrow)"
        ) from None
    return pa, pq


def columns(members: tuple[str, ...]) -> list[tuple[str, str]]:
    """(column, member) of each member of a sample, after the ``key`` column."""
    found = []
    for position, member in enumerate(members):
        if position == 0:
            column = "image" if member in IMAGE_EXTENSIONS else member
        elif member == "cls":
            column = "label"
        elif member == "json":
            column = "metadata"
        else:
            column = member.rsplit(".", 1)[0]
        found.append((column, member))
    return found


def _kind(column: str, member: str) -> str:
    if column == "label":
        return "label"
    if column == "metadata":
        return "text"
    return "image" if member.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS else "binary"


def hf_features(members: tuple[str, ...]) -> dict:
    """The HuggingFace ``Features`` of the columns, as ``Features.to_dict`` writes them."""
    features = {"key": {"dtype": "string", "_type": "Value"}}
    for column, member in columns(members):
        kind = _kind(column, member)
        features[column] = {
            "image": {"_type": "Image"},
            "label": {"dtype": "int64", "_type": "Value"},
            "text": {"dtype": "string", "_type": "Value"},
            "binary": {"dtype": "binary", "_type": "Value"},
        }[kind]
    return features


def schema(members: tuple[str, ...]):
    """The Arrow schema of a shard, with the HuggingFace features in its metadata."""
    pa, _ = _pyarrow()
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    types = {"image": image, "label": pa.int64(), "text": pa.string(), "binary": pa.binary()}
    fields = [pa.field("key", pa.string())]
    fields += [pa.field(c, types[_kind(c, m)]) for c, m in columns(members)]
    meta = {"info": {"features": hf_features(members)}}
    return pa.schema(fields, metadata={"huggingface": json.dumps(meta)})


class ParquetWriter(Writer):
    """One Parquet file per shard, written a row group at a time under a per-process partial
    name and renamed into place on commit."""

    name = "parquet"

    @classmethod
    def check_fit(cls, family, settings, fmt: str, category_names: list[str], val: int = 0) -> None:
        _pyarrow()  # every family fits; a missing pyarrow is said before anything is written

    def __init__(self, folder: ShardFolder, index: int):
        super().__init__(folder, index)
        self.path = folder.shard(index)
        self.tmp = folder.partial(index)
        self._file = None
        self._rows: list[dict[str, bytes]] = []
        self._keys: list[str] = []
        self.members: tuple[str, ...] | None = None
        self.samples = 0
        self.diverged = 0
        self.tmp.touch()  # fails here, not at the first row group, when the folder is not writable

    def write(self, sample: Sample) -> None:
        fields = sample.encoded()
        if self.members is None:
            self.members = tuple(fields)
        self.diverged += bool(sample.meta.get("diverged", False))
        self._keys.append(sample.key)
        self._rows.append(fields)
        self.samples += 1
        if len(self._rows) == ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        pa, pq = _pyarrow()
        target = schema(self.members)
        if self._file is None:
            self._file = pq.ParquetWriter(
                str(self.tmp), target, compression=COMPRESSION, use_dictionary=["label"]
            )
        arrays = [pa.array(self._keys, pa.string())]
        for column, member in columns(self.members):
            values = [row[member] for row in self._rows]
            kind = _kind(column, member)
            if kind == "image":
                values = [{"bytes": v, "path": None} for v in values]
            elif kind == "label":
                values = [int(v) for v in values]
            elif kind == "text":
                values = [v.decode() for v in values]
            arrays.append(pa.array(values, target.field(column).type))
        table = pa.Table.from_arrays(arrays, schema=target)
        self._file.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self._rows, self._keys = [], []

    def commit(self) -> Sidecar:
        if self._rows:
            self._flush()
        if self._file is not None:
            self._file.close()
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.path)
        digest, size = file_sha256(self.path)
        record = Sidecar(self.index, self.path.name, self.samples, size, digest, self.diverged)
        self.folder.save_sidecar(record)
        return record

    def abort(self) -> None:
        try:
            if self._file is not None:
                self._file.close()
        except (OSError, ValueError):  # the file is being discarded anyway
            pass
        Path(self.tmp).unlink(missing_ok=True)


def read_parquet(path: Path, members: tuple[str, ...], problems: list) -> Iterator[tuple]:
    """``(key, {member: bytes})`` of each row of a shard, as the tar writer's members (label
    and metadata encoded as fdgen encodes them); a wrong schema is a problem, and unreadable
    data raises ``OSError`` or pyarrow's ``ArrowException``."""
    _, pq = _pyarrow()
    handle = pq.ParquetFile(str(path))
    expected = schema(members)
    found = handle.schema_arrow
    if found.names != expected.names or not found.equals(expected, check_metadata=False):
        problems.append(f"columns {found.names} differ from the render's {expected.names}")
        return
    meta = (found.metadata or {}).get(b"huggingface")
    try:
        features = json.loads(meta)["info"]["features"] if meta else None
    except (ValueError, KeyError, TypeError):
        features = None
    if features != hf_features(members):
        problems.append("schema metadata 'huggingface' lacks the render's features")
    pairs = columns(members)
    for batch in handle.iter_batches(batch_size=ROW_GROUP_ROWS):
        data = batch.to_pydict()
        for row, key in enumerate(data["key"]):
            fields = {}
            for column, member in pairs:
                value = data[column][row]
                kind = _kind(column, member)
                if kind == "image":
                    value = (value or {}).get("bytes")
                elif kind in ("label", "text"):
                    value = None if value is None else str(value).encode()
                if value is not None:
                    fields[member] = value
            yield key, fields
