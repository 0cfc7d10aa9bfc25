"""Where a shard folder stands: which shards are complete, incomplete or missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fdgen.output.folder import PARTIAL_SUFFIX, ShardFolder, shard_name


def shard_state(folder: ShardFolder, index: int) -> str:
    """``complete`` (sidecar and matching size), ``incomplete`` (a tar, temporary file or
    sidecar without the rest) or ``missing`` (nothing written yet)."""
    if folder.read_sidecar(index) is not None:
        return "complete"
    if folder.shard(index).exists() or folder.sidecar(index).exists():
        return "incomplete"
    if any(folder.path.glob(shard_name(index, folder.writer) + ".*" + PARTIAL_SUFFIX)):
        return "incomplete"
    return "missing"


@dataclass(frozen=True)
class FolderStatus:
    """Shard indices by state, samples done, and whether the index files are written."""

    folder: Path
    num_shards: int
    num_samples: int
    samples_done: int
    shard_lengths: list[int] | None  # None for a manifest that predates the recorded plan
    indexed: bool
    complete: list[int]
    incomplete: list[int]
    missing: list[int]
    writer: str = "webdataset"  # the manifest's: it names the shard files


def folder_status(path: Path) -> FolderStatus:
    """Where the shard folder ``path`` stands (a clear error if it is not one)."""
    manifest = ShardFolder(path).read_manifest()
    folder = ShardFolder(path, manifest.writer)
    lengths = manifest.plan.shard_lengths() if manifest.plan else None
    listing = folder.listing()  # only shards with files are looked at further
    whole, touched = listing.whole(), listing.touched()
    states: dict[str, list[int]] = {"complete": [], "incomplete": [], "missing": []}
    samples_done = 0
    for j in range(manifest.num_shards):
        if j not in touched:
            states["missing"].append(j)
            continue
        record = folder.read_sidecar(j) if j in whole else None
        if record is not None:
            states["complete"].append(j)
            samples_done += record.samples
        else:
            states["incomplete"].append(j)
    return FolderStatus(
        folder.path,
        manifest.num_shards,
        manifest.num_samples,
        samples_done,
        lengths,
        folder.info_path.exists() and manifest.status == "complete",
        **states,
        writer=manifest.writer,
    )
