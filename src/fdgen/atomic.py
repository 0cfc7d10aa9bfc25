"""The one way fdgen writes a small file: under a temporary name, then renamed into place.

Used for everything but shard tars (which ``fdgen.output.writers`` streams under a partial
name): ``db.yaml``, category files, search progress, manifests, sidecars and indexes. A
reader never sees half a file, and a crash leaves only a temporary that ``atomic_target``
recognises, so the folder's owner can tell it from the user's files.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def atomic_target(name: str) -> str:
    """The file name a ``write_atomic`` temporary (``.NAME.tmpHOST-PID``) stands for, else
    ``name`` itself."""
    if name.startswith(".") and ".tmp" in name:
        return name[1:].split(".tmp", 1)[0]
    return name


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file under a temporary name, then rename it into place."""
    path = Path(path)
    # host and pid: writers on several machines may share the folder (SLURM arrays, Dask)
    tmp = path.with_name(f".{path.name}.tmp{socket.gethostname()}-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
