"""The on-disk format of a render: shard plan, tar stream, shard folder (file names, typed
``Manifest`` and ``Sidecar`` records, lock, indexes), status, verify and the writers.

``rerender`` (verify's fresh renders) imports ``fdgen.render``; import it from its module.
"""

from fdgen.output.folder import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    Manifest,
    ShardFolder,
    Sidecar,
    shard_name,
    sidecar_name,
)
from fdgen.output.plan import SAMPLES_PER_SHARD, ShardPlan
from fdgen.output.status import FolderStatus, folder_status
from fdgen.output.verify import FolderCheck, ShardCheck, verify_folder, verify_shard
from fdgen.output.writers import WebDatasetWriter, Writer

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "SAMPLES_PER_SHARD",
    "FolderCheck",
    "FolderStatus",
    "Manifest",
    "ShardCheck",
    "ShardFolder",
    "ShardPlan",
    "Sidecar",
    "WebDatasetWriter",
    "Writer",
    "folder_status",
    "shard_name",
    "sidecar_name",
    "verify_folder",
    "verify_shard",
]
