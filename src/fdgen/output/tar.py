"""The tar stream of a shard: fixed ustar headers (mtime 0, uid/gid 0, no user names, mode
0644), so a shard's bytes depend only on the samples written into it."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

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


class TarStream:
    """Writes tar members to an open binary file, counting bytes and hashing them as they go."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def _write(self, data: bytes) -> None:
        self.sha.update(data)
        self.size += len(data)
        self.fh.write(data)

    def add(self, name: str, data: bytes) -> None:
        """One member: header, data, padding to a whole block."""
        self._write(tar_header(name, len(data)))
        self._write(data)
        if len(data) % BLOCK:
            self._write(bytes(BLOCK - len(data) % BLOCK))

    def finish(self) -> None:
        """The end-of-archive blocks and the padding to a whole record (the file stays open)."""
        self._write(bytes(2 * BLOCK))
        if self.size % RECORD:
            self._write(bytes(RECORD - self.size % RECORD))
