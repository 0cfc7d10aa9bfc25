"""verify, status, --shard-index/--num-shards partitions, the folder lock and the Dask
LocalCluster backend, on a 3-shard dataset."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from fdgen.errors import FdgenError
from fdgen.output import ShardFolder
from tiny_shards import cli, copy_folder, leftovers, render_args, snapshot

# --- verify ---------------------------------------------------------------------------------


def test_verify_accepts_a_complete_render(tiny):
    _, ref = tiny
    result = cli("verify", ref, "--decode")
    assert result.exit_code == 0, result.output
    # 3 categories x 8 instances, every one decoded
    assert "3 of 3 shards OK, 24 samples decoded and checked" in result.output


def _members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar]


def _rewrite(folder: Path, index: int, transform) -> None:
    """Rebuild shard ``index`` with transformed members and a sidecar that matches the new
    bytes, so only the content checks (not the sha256) can catch the change."""
    path = folder / f"shard-{index:06d}.tar"
    members = transform(_members(path))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    side = folder / f"shard-{index:06d}.json"
    record = json.loads(side.read_text())
    record["bytes"] = len(buf.getvalue())
    record["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    side.write_text(json.dumps(record))


def _first_key(members) -> str:
    return members[0][0].split(".")[0]


def _set_label(members):
    key = _first_key(members)
    return [(n, b"7" if n == f"{key}.cls" else d) for n, d in members]


def _drop_json(members):
    key = _first_key(members)
    return [(n, d) for n, d in members if n != f"{key}.json"]


def _split_sample(members):
    # move the first sample's json to the end: its members are no longer adjacent
    first = members[2]
    return [members[0], members[1], *members[3:], first]


def _garble_image(members):
    key = _first_key(members)
    return [(n, b"not a png at all" if n == f"{key}.png" else d) for n, d in members]


def _foreign_sample(members):
    key = _first_key(members)
    return [(n.replace(key, "c000002_i000999", 1), d) for n, d in members]


@pytest.mark.parametrize(
    ("transform", "expected", "decode"),
    [
        (_set_label, "label '7' is not an integer in [0, 3)", False),
        (_drop_json, "no json member", False),
        (_split_sample, "members are not adjacent", False),
        (_garble_image, "the png image does not decode", True),
        (_foreign_sample, "does not belong in this shard", False),
    ],
)
def test_verify_finds_content_damage(tiny, tmp_path, transform, expected, decode):
    _, ref = tiny
    out = copy_folder(ref, tmp_path / "out")
    key = _first_key(_members(out / "shard-000001.tar"))
    _rewrite(out, 1, transform)
    result = cli("verify", out, *(["--decode"] if decode else []))
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if expected in line]
    assert lines, result.output
    assert "shard-000001.tar" in lines[0]
    if transform is not _foreign_sample:
        assert f"sample {key}" in lines[0]
    assert "2 of 3 shards OK" in result.output


def test_verify_needs_decode_to_see_a_broken_image(tiny, tmp_path):
    _, ref = tiny
    out = copy_folder(ref, tmp_path / "out")
    _rewrite(out, 0, _garble_image)
    assert cli("verify", out).exit_code == 0  # structure, labels and hashes are fine
    assert cli("verify", out, "--decode").exit_code == 1


def test_verify_finds_byte_damage_truncation_and_lost_sidecars(tiny, tmp_path):
    _, ref = tiny
    out = copy_folder(ref, tmp_path / "out")
    shard0 = out / "shard-000000.tar"
    data = bytearray(shard0.read_bytes())
    data[700] ^= 0xFF  # inside the first member's data: same size, other bytes
    shard0.write_bytes(bytes(data))
    shard1 = out / "shard-000001.tar"
    shard1.write_bytes(shard1.read_bytes()[:9000])
    (out / "shard-000002.json").unlink()
    result = cli("verify", out, "--workers", 2)
    assert result.exit_code == 1
    text = result.output
    assert "shard-000000.tar: sha256 differs from the sidecar" in text
    assert "shard-000001.tar: size 9000 bytes, sidecar says" in text
    assert "shard-000001.tar: not a readable tar" in text
    assert "shard-000002.tar: incomplete (no sidecar)" in text
    assert "0 of 3 shards OK" in text


def test_verify_and_status_refuse_a_folder_without_manifest(tmp_path):
    for command in ("verify", "status"):
        result = cli(command, tmp_path)
        assert result.exit_code == 1
        assert "not an fdgen shard folder (no manifest.json)" in result.output


# --- partitions and status ------------------------------------------------------------------


def test_partitions_in_any_order_equal_a_whole_render(tiny, tmp_path):
    db, ref = tiny
    out = tmp_path / "out"
    for index in (2, 0):
        result = cli(*render_args(db, out, "--shard-index", index, "--num-shards", 3))
        assert result.exit_code == 0, result.output
        assert "the last partition to finish writes the index files" in result.output
        assert not (out / "_info.json").exists()
    result = cli(*render_args(db, out, "--shard-index", 1, "--num-shards", 3))
    assert result.exit_code == 0, result.output
    assert "24 samples in 3 shards (8 rendered now" in result.output
    assert snapshot(out) == snapshot(ref)
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_more_partitions_than_shards(tiny, tmp_path):
    db, ref = tiny
    out = tmp_path / "out"
    for index in range(5):  # partitions 3 and 4 own no shard; 4 finishes last and finalises
        result = cli(*render_args(db, out, "--shard-index", index, "--num-shards", 5))
        assert result.exit_code == 0, result.output
    assert snapshot(out) == snapshot(ref)


def test_status_counts_complete_incomplete_and_missing(tiny, tmp_path):
    db, _ = tiny
    out = tmp_path / "out"
    assert cli(*render_args(db, out, "--shard-index", 0, "--num-shards", 2)).exit_code == 0
    result = cli("status", out)
    assert result.exit_code == 0, result.output
    # shards 0 and 2 (j % 2 == 0) hold 8 samples each
    assert "2 of 3 shards complete, 16 of 24 samples (66.7%)" in result.output
    assert "missing    1: shard-000001.tar" in result.output
    assert "indexed    no" in result.output
    (out / "shard-000001.tar.somehost-123.partial").write_bytes(b"half")
    result = cli("status", out)
    assert "incomplete 1: shard-000001.tar" in result.output
    assert "missing    0" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard-index", "3", "--num-shards", "3"], "--shard-index: must be in [0, 2]"),
        (["--num-shards", "2", "--force"], "--force cannot be combined with --num-shards"),
        (["--scheduler", "tcp://127.0.0.1:9"], "--scheduler applies only to --backend dask"),
    ],
)
def test_partition_and_backend_option_errors(tiny, tmp_path, args, message):
    db, _ = tiny
    extra = ["--backend", "local"] if "--scheduler" in args else []
    result = cli(*render_args(db, tmp_path / "out", *args, *extra))
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "out" / "manifest.json").exists()


# --- the folder lock ------------------------------------------------------------------------


def test_lock_refuses_a_second_whole_render_and_a_partition_beside_it(tmp_path):
    with ShardFolder(tmp_path).lock():
        with pytest.raises(FdgenError, match="being rendered by another fdgen process"):
            with ShardFolder(tmp_path).lock():
                pass
        with pytest.raises(FdgenError, match="being rendered whole"):
            with ShardFolder(tmp_path).lock((0, 2)):
                pass
    with ShardFolder(tmp_path).lock():  # released at the end of the block
        pass


def test_lock_lets_distinct_partitions_share_the_folder(tmp_path):
    with ShardFolder(tmp_path).lock((0, 2)), ShardFolder(tmp_path).lock((1, 2)):
        with pytest.raises(FdgenError, match="this partition of .* is being rendered"):
            with ShardFolder(tmp_path).lock((1, 2)):
                pass
        with pytest.raises(FdgenError, match="being rendered by another fdgen process"):
            with ShardFolder(tmp_path).lock():
                pass


def test_render_refused_while_the_folder_is_locked(tiny, tmp_path):
    db, ref = tiny
    out = tmp_path / "out"
    with ShardFolder(out).lock():
        result = cli(*render_args(db, out))
    assert result.exit_code == 1
    assert "is being rendered by another fdgen process" in result.output
    assert cli(*render_args(db, out)).exit_code == 0
    assert snapshot(out) == snapshot(ref)


# --- Dask LocalCluster ------------------------------------------------------------------------


def test_dask_local_cluster_output_is_byte_identical(tiny, tmp_path):
    pytest.importorskip("distributed", reason="the optional extra fdgen[dask] is not installed")
    db, ref = tiny
    out = tmp_path / "out"
    args = render_args(db, out, "--backend", "dask")
    args[args.index("--workers") + 1] = "2"
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert snapshot(out) == snapshot(ref)
    assert leftovers(out) == []


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:9", "notaproto://x"])
def test_unreachable_scheduler_is_a_clear_error(tiny, tmp_path, address):
    pytest.importorskip("distributed", reason="the optional extra fdgen[dask] is not installed")
    import dask

    db, _ = tiny
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = cli(*render_args(db, tmp_path / "out", "--scheduler", address))
    assert result.exit_code == 1, result.output
    assert f"--scheduler {address}: cannot connect to the Dask scheduler" in result.output
    assert not list((tmp_path / "out").glob("shard-*"))


def _per_image_folder(folder: Path, bad_image_field: bool = False) -> Path:
    """A folder as a per-image family (SegRCDB-like) writes it: keys img########, no cls,
    a png, a mask and json {"image": n}; shard plan of 1 unit x 6 images, 4 per shard."""
    from fdgen.output import ShardPlan

    plan = ShardPlan(1, 6, 1, 4, 0)
    folder.mkdir()
    for j in range(plan.num_shards):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for _, _, instances in plan.members(j):
                for i in instances:
                    image = i + 1 if bad_image_field and i == 5 else i
                    for ext, data in (
                        ("png", b"\x89PNG..."),
                        ("json", json.dumps({"image": image}).encode()),
                        ("seg.png", b"\x89PNG..."),
                    ):
                        info = tarfile.TarInfo(f"img{i:08d}.{ext}")
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
        data = buf.getvalue()
        (folder / f"shard-{j:06d}.tar").write_bytes(data)
        record = {"shard": j, "file": f"shard-{j:06d}.tar", "samples": len(plan.members(j))}
        record["bytes"] = len(data)
        record["sha256"] = hashlib.sha256(data).hexdigest()
        (folder / f"shard-{j:06d}.json").write_text(json.dumps(record))
    manifest = {
        "identity": {"type": "segrcdb", "settings": {"size": 64, "images": 6}, "format": "png"},
        "categories": 5,
        "num_shards": plan.num_shards,
        "num_samples": plan.num_samples,
        "plan": {"version": 2, **{f: getattr(plan, f) for f in plan.__dataclass_fields__}},
        "sample_unit": "image",
        "status": "rendering",
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_verify_per_image_samples(tmp_path):
    good = cli("verify", _per_image_folder(tmp_path / "good"))
    assert good.exit_code == 0, good.output
    assert "2 of 2 shards OK, 6 samples checked" in good.output
    bad = cli("verify", _per_image_folder(tmp_path / "bad", bad_image_field=True))
    assert bad.exit_code == 1
    assert "sample img00000005: json image number does not match the key" in bad.output


def test_partitions_do_not_start_a_preset_search(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("render", "--db", "FractalDB-1k", "--shard-index", 0, "--num-shards", 4)
    assert result.exit_code == 1
    assert "run `fdgen search --preset FractalDB-1k --out FractalDB-1k` first" in result.output
    assert list(tmp_path.iterdir()) == []
