"""The output package on its own: the tar stream, typed and versioned manifest and sidecar
records (load, validate, save), the files a shard folder owns, and a second writer plugged
into render."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from fdgen import readback
from fdgen.database import load_database, render_settings
from fdgen.families.base import Sample
from fdgen.output import Manifest, ShardFolder, Sidecar, WebDatasetWriter, Writer, folder_status
from fdgen.output.tar import tar_header
from fdgen.rendering import render_dataset
from tiny_shards import cli, copy_folder


def _edit_json(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=1))


@pytest.mark.parametrize(
    "name, size", [("c000001_i000002.png", 8123), ("k.cls", 0), ("x" * 100, 1)]
)
def test_tar_header_equals_what_tarfile_writes(name, size):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = size, 0, 0o644, "", ""
    assert tar_header(name, size) == info.tobuf(tarfile.USTAR_FORMAT)


def test_shard_file_equals_a_tarfile_archive_of_the_same_members(tmp_path):
    members = {"a_1": {"png": b"\x89PNG" * 300, "cls": b"3"}, "a_2": {"png": b"", "cls": b"12"}}
    writer = WebDatasetWriter(ShardFolder(tmp_path), 0)
    for key, fields in members.items():
        writer.add(key, fields)
    writer.commit()
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, fields in members.items():
            for ext, data in fields.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode, info.uname, info.gname = (
                    len(data),
                    0,
                    0o644,
                    "",
                    "",
                )
                tar.addfile(info, io.BytesIO(data))
    assert (tmp_path / "shard-000000.tar").read_bytes() == expected.getvalue()


def test_manifest_and_sidecar_round_trip_to_the_same_bytes(tiny, tmp_path):
    _, ref = tiny
    manifest = Manifest.load(ref / "manifest.json")
    assert (manifest.version, manifest.status, manifest.num_shards) == (1, "complete", 3)
    assert manifest.plan.num_samples == manifest.num_samples == 24
    manifest.save(tmp_path / "manifest.json")
    assert (tmp_path / "manifest.json").read_bytes() == (ref / "manifest.json").read_bytes()
    for j in range(3):
        sidecar = Sidecar.load(ref / f"shard-{j:06d}.json", j)
        tar = (ref / f"shard-{j:06d}.tar").read_bytes()
        assert (sidecar.shard, sidecar.file, sidecar.samples) == (j, f"shard-{j:06d}.tar", 8)
        assert (sidecar.bytes, sidecar.sha256) == (len(tar), hashlib.sha256(tar).hexdigest())
        sidecar.save(tmp_path / "side.json")
        assert (tmp_path / "side.json").read_bytes() == (ref / f"shard-{j:06d}.json").read_bytes()


def test_records_without_a_version_load_as_version_1(tiny, tmp_path):
    """Manifests and sidecars written before the format had a version still work."""
    _, ref = tiny
    out = copy_folder(ref, tmp_path / "out")
    for path in [out / "manifest.json", *out.glob("shard-*.json")]:
        _edit_json(path, lambda r: r.pop("version"))
    assert Manifest.load(out / "manifest.json").version == 1
    assert ShardFolder(out).read_sidecar(0).version == 1
    assert cli("verify", out).exit_code == 0
    result = cli("status", out)
    assert result.exit_code == 0 and "3 of 3 shards complete" in result.output


def test_a_manifest_of_a_newer_format_is_refused_with_one_line(tiny, tmp_path):
    _, ref = tiny
    out = copy_folder(ref, tmp_path / "out")
    _edit_json(out / "manifest.json", lambda r: r.update(version=2))
    for command in ("verify", "status", "info"):
        result = cli(command, out)
        assert result.exit_code == 1
        assert result.output == (
            f"Error: {out / 'manifest.json'}: damaged manifest (format version 2, written by a "
            "newer fdgen; this fdgen reads version 1: upgrade fdgen)\n"
        )


def test_a_sidecar_of_a_newer_format_marks_its_shard_incomplete(tiny, tmp_path):
    db, ref = tiny
    out = copy_folder(ref, tmp_path / "out")
    _edit_json(out / "shard-000001.json", lambda r: r.update(version=7))
    assert ShardFolder(out).read_sidecar(1) is None
    assert folder_status(out).incomplete == [1]
    result = cli("verify", out)
    assert result.exit_code == 1
    assert "sidecar shard-000001.json damaged (format version 7, written by a newer" in (
        result.output
    )


@pytest.mark.parametrize("version", [0, -1, True, "1", 1.0, None])
def test_a_version_that_is_not_a_whole_number_is_refused(version):
    record = {"shard": 0, "file": "shard-000000.tar", "samples": 1, "bytes": 10240}
    record |= {"sha256": "0" * 64, "version": version}
    with pytest.raises(readback.BadContent, match="field version must be an integer >= 1"):
        Sidecar.from_dict(record, 0)


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda r: r.update(shard=1), "field shard must be an integer in [0, 0], found 1"),
        (lambda r: r.update(file="x.tar"), "field file must be one of shard-000000.tar"),
        (lambda r: r.pop("bytes"), "field bytes is missing"),
        (lambda r: r.update(samples=-3), "field samples must be an integer >= 0, found -3"),
        (lambda r: r.update(sha256="A" * 64), "field sha256 must be 64 hexadecimal digits"),
        (lambda r: r.update(diverged="none"), "field diverged must be an integer >= 0"),
    ],
)
def test_a_damaged_sidecar_names_its_field(tiny, change, reason):
    _, ref = tiny
    record = json.loads((ref / "shard-000000.json").read_text())
    change(record)
    with pytest.raises(readback.BadContent) as caught:
        Sidecar.from_dict(record, 0)
    assert str(caught.value).startswith(reason)


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda r: r.pop("identity"), "field identity is missing"),
        (lambda r: r["identity"].pop("format"), "field identity.format is missing"),
        (lambda r: r.update(num_shards=4), "num_shards 4 and num_samples 24 differ from the"),
        (lambda r: r["plan"].update(seed=-1), "field plan.seed must be an integer >= 0"),
        (lambda r: r.update(sample_unit="pixel"), "field sample_unit must be one of category"),
        (lambda r: r.update(categories=1.5), "field categories must be an integer in [0, "),
    ],
)
def test_a_damaged_manifest_names_its_field(tiny, tmp_path, change, reason):
    _, ref = tiny
    path = tmp_path / "manifest.json"
    shutil.copy(ref / "manifest.json", path)
    _edit_json(path, change)
    with pytest.raises(readback.BadContent) as caught:
        Manifest.load(path)
    assert str(caught.value).startswith(reason)


def test_the_folder_tells_its_files_from_the_users(tmp_path):
    folder = ShardFolder(tmp_path)
    fdgen_files = [
        "shard-000000.tar",
        "shard-000012.json",
        "shard-000003.tar.host-12.partial",
        ".manifest.json.tmphost-12",
        "manifest.json",
        "_info.json",
        "sizes.json",
        ".lock",
        ".lock-1-of-4",
    ]
    users = ["shard-1.tar", "notes.txt", "manifest.yaml", ".hidden"]
    for name in fdgen_files + users:
        (tmp_path / name).write_text("x")
    (tmp_path / "shard-000001.tar.d").mkdir()  # a folder is never fdgen's file
    assert folder.foreign_files() == sorted([*users, "shard-000001.tar.d/"])


class MemoryWriter(Writer):
    """A second writer: keeps each shard's samples in memory and writes only the list of its
    keys as the shard file, with a sidecar so that render counts the shard complete."""

    written: dict[int, list[tuple[str, list[str]]]] = {}

    def __init__(self, folder: ShardFolder, index: int):
        super().__init__(folder, index)
        self.samples: list[tuple[str, list[str]]] = []

    def write(self, sample: Sample) -> None:
        self.samples.append((sample.key, list(sample.encoded())))

    def commit(self) -> Sidecar:
        data = "\n".join(key for key, _ in self.samples).encode()
        self.folder.shard(self.index).write_bytes(data)
        record = Sidecar(
            self.index,
            self.folder.shard(self.index).name,
            len(self.samples),
            len(data),
            hashlib.sha256(data).hexdigest(),
        )
        self.folder.save_sidecar(record)
        MemoryWriter.written[self.index] = self.samples
        return record

    def abort(self) -> None:
        self.folder.shard(self.index).unlink(missing_ok=True)


def test_a_second_writer_plugs_into_render_and_gets_every_sample(tiny, tmp_path):
    db_path, ref = tiny
    db = load_database(db_path)
    settings = render_settings(db, instances=8, size=64, points=2000)
    out = tmp_path / "memory"
    MemoryWriter.written.clear()
    manifest = render_dataset(db, settings, out, samples_per_shard=8, writer=MemoryWriter)
    assert manifest["status"] == "complete" and manifest["left"] == []
    assert folder_status(out).complete == [0, 1, 2]
    for j in range(3):  # the samples of the WebDataset render, in its order, member by member
        with tarfile.open(ref / f"shard-{j:06d}.tar") as tar:
            names = tar.getnames()
        expected: dict[str, list[str]] = {}
        for name in names:
            key, _, ext = name.partition(".")
            expected.setdefault(key, []).append(ext)
        assert MemoryWriter.written[j] == list(expected.items())
        assert (out / f"shard-{j:06d}.tar").read_text().split("\n") == list(expected)
