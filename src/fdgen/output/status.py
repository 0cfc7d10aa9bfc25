"""Where a shard folder stands: which shards are complete, incomplete or missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fdgen.errors import FdgenError
from fdgen.output.folder import DEFAULT_WRITER, MANIFEST_FILE, PARTIAL_SUFFIX, TRAIN, ShardFolder


def shard_state(folder: ShardFolder, index: int) -> str:
    """``complete`` (sidecar and matching size), ``incomplete`` (a tar, temporary file or
    sidecar without the rest) or ``missing`` (nothing written yet), of shard ``index`` of the
    folder's split."""
    if folder.read_sidecar(index) is not None:
        return "complete"
    if folder.shard(index).exists() or folder.sidecar(index).exists():
        return "incomplete"
    if any(folder.path.glob(folder.shard(index).name + ".*" + PARTIAL_SUFFIX)):
        return "incomplete"
    return "missing"


@dataclass(frozen=True)
class FolderStatus:
    """Shard indices of one split by state, samples done, and whether the index files are
    written."""

    folder: Path
    num_shards: int
    num_samples: int
    samples_done: int
    shard_lengths: list[int] | None  # None for a manifest that predates the recorded plan
    indexed: bool
    complete: list[int]
    incomplete: list[int]
    missing: list[int]
    split: str = TRAIN
    writer: str = DEFAULT_WRITER  # the manifest's: it names the shard files


def folder_status(path: Path, split: str = TRAIN) -> FolderStatus:
    """Where split ``split`` of the shard folder ``path`` stands (a clear error if it is not
    one, or has no such split)."""
    manifest = ShardFolder(path, split).read_manifest()
    folder = ShardFolder(path, split, manifest.writer)
    recorded = next((r for r in manifest.splits() if r.name == split), None)
    if recorded is None:
        raise FdgenError(f"{folder.path}: holds no {split} split (see its {MANIFEST_FILE})")
    lengths = recorded.plan.shard_lengths() if recorded.plan else None
    listing = folder.listing()  # only shards with files are looked at further
    whole, touched = listing.whole(), listing.touched()
    states: dict[str, list[int]] = {"complete": [], "incomplete": [], "missing": []}
    samples_done = 0
    for j in range(recorded.num_shards):
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
        recorded.num_shards,
        recorded.num_samples,
        samples_done,
        lengths,
        folder.info_path.exists() and manifest.status == "complete",
        **states,
        split=split,
        writer=manifest.writer,
    )
