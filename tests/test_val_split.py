"""The validation split: ``fdgen render --val-instances N`` / ``--val-images N``.

A tiny FractalDB render (3 categories x 8 instances, 8 samples per shard) plus 3 validation
instances per category (2 val shards), read back with the real ``webdataset`` library, checked
for overlap with the training samples, for equal bytes under every way of running it, for
resume after a kill, for verify, status and info, and against the on-the-fly dataset.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

import fdgen
from fdgen.database import load_database
from fdgen.families import get_family
from fdgen.rendering import VAL_SEED_OFFSET, val_seed
from tiny_shards import TINY, child, cli, leftovers, make_db, render_args

VAL = 3  # validation instances per category
VAL_ARGS = ["--val-instances", str(VAL)]
SEG = ["--images", "4", "--objects", "3", "--size", "64", "--samples-per-shard", "3"]


def files(folder: Path) -> dict[str, bytes]:
    """Bytes of every shard, sidecar and index file of both splits (not the manifest: it
    holds timings)."""
    keep = [
        p
        for p in Path(folder).iterdir()
        if p.name.startswith(("shard-", "val-")) or p.name in ("_info.json", "sizes.json")
    ]
    return {p.name: p.read_bytes() for p in sorted(keep)}


def read_split(folder: Path, prefix: str) -> list[dict]:
    """Every sample of a split's shards through webdataset (raw bytes)."""
    urls = [str(p) for p in sorted(folder.glob(f"{prefix}-*.tar"))]
    assert urls, f"no {prefix} shards in {folder}"
    return list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """(database, folder rendered with a val split of 3 per category, one worker)."""
    root = tmp_path_factory.mktemp("val")
    db = make_db(root / "db")
    out = root / "ref"
    result = cli(*render_args(db, out, *VAL_ARGS))
    assert result.exit_code == 0, result.output
    return db, out


def test_val_shards_hold_n_instances_per_category_read_by_webdataset(rendered):
    _, out = rendered
    names = sorted(p.name for p in out.iterdir() if p.name.startswith("val-"))
    # 3 x 3 samples in groups of the four flips (3 per category), 8 per shard: 2 shards
    assert names == ["val-000000.json", "val-000000.tar", "val-000001.json", "val-000001.tar"]
    samples = read_split(out, "val")
    labels = [int(s["cls"]) for s in samples]
    assert Counter(labels) == {0: VAL, 1: VAL, 2: VAL}
    for sample in samples:
        meta = json.loads(sample["json"])
        assert meta["category"] == int(sample["cls"])
        assert 0 <= meta["instance"] < VAL
        assert sample["png"][:8] == b"\x89PNG\r\n\x1a\n"
    train = read_split(out, "shard")
    assert Counter(int(s["cls"]) for s in train) == {0: 8, 1: 8, 2: 8}


def test_no_val_image_equals_a_train_image(rendered):
    _, out = rendered
    train = {s["png"] for s in read_split(out, "shard")}
    val = [s["png"] for s in read_split(out, "val")]
    assert len(set(val)) == len(val)
    assert not train & set(val)


def test_held_out_seed_keys_never_meet_training_keys():
    # SeedSequence reads an int as 32-bit words, least significant first: for every training
    # seed below 2**63 the held-out seed's second word is >= 2**31, while a training key's
    # second word (a category, instance, stream constant or high seed word) is below 2**31
    for seed in (0, 1, 7, 2**31, 2**32 - 1, 2**32, 2**62 + 5, 2**63 - 1):
        held_out = val_seed(seed)
        assert held_out != seed
        assert held_out >> 32 >= 2**31
        words = np.random.SeedSequence([held_out, 0, 0]).entropy
        assert words == [held_out, 0, 0]
    assert val_seed(2**63) == 2**64  # beyond 2**63: still a different seed
    assert VAL_SEED_OFFSET == 2**63


def test_default_writes_no_val_files_and_an_unchanged_manifest(tiny):
    _, ref = tiny
    assert not list(ref.glob("val-*"))
    manifest = json.loads((ref / "manifest.json").read_text())
    assert "val" not in manifest and "val" not in manifest["identity"]
    info = json.loads((ref / "_info.json").read_text())
    assert list(info["splits"]) == ["train"]


def test_info_json_and_sizes_list_both_splits(rendered):
    _, out = rendered
    info = json.loads((out / "_info.json").read_text())
    assert list(info["splits"]) == ["train", "val"]
    for name, prefix, total in (("train", "shard", 24), ("val", "val", 3 * VAL)):
        split = info["splits"][name]
        assert split["name"] == name
        assert split["num_samples"] == total == sum(split["shard_lengths"])
        assert split["filenames"] == sorted(p.name for p in out.glob(f"{prefix}-*.tar"))
        for filename, length in zip(split["filenames"], split["shard_lengths"], strict=True):
            assert len(list(wds.WebDataset(str(out / filename), shardshuffle=False))) == length
    sizes = json.loads((out / "sizes.json").read_text())
    assert set(sizes) == {p.name for p in out.glob("*.tar")}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["val"] == VAL
    assert manifest["val"]["num_samples"] == 3 * VAL
    assert manifest["val"]["plan"]["seed"] == val_seed(0)
    assert manifest["complete_shards"] == 5


def test_val_bytes_equal_with_two_workers_partitions_and_the_api(rendered, tmp_path):
    db, ref = rendered
    expected = files(ref)
    two = tmp_path / "two"
    args = render_args(db, two, *VAL_ARGS)
    args[args.index("--workers") + 1] = "2"
    assert cli(*args).exit_code == 0
    assert files(two) == expected
    parts = tmp_path / "parts"
    for index in (1, 0):  # any order; the last to finish writes the indexes
        result = cli(
            *render_args(db, parts, *VAL_ARGS, "--shard-index", str(index), "--num-shards", "2")
        )
        assert result.exit_code == 0, result.output
    assert files(parts) == expected
    api = tmp_path / "api"
    fdgen.render(db, api, instances=8, size=64, points=2000, samples_per_shard=8, workers=1,
                 val_instances=VAL)  # fmt: skip
    assert files(api) == expected


def test_dask_renders_the_val_split_byte_identical(rendered, tmp_path):
    pytest.importorskip("distributed", reason="the optional extra fdgen[dask] is not installed")
    db, ref = rendered
    out = tmp_path / "dask"
    args = render_args(db, out, *VAL_ARGS, "--backend", "dask")
    args[args.index("--workers") + 1] = "2"
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert files(out) == files(ref)


def test_a_killed_render_resumes_both_splits(rendered, tmp_path):
    db, ref = rendered
    out = tmp_path / "out"
    args = render_args(db, out, *VAL_ARGS)
    killed = child(args, FDGEN_TEST_KILL_AT=24 + 5)  # mid-way through the first val shard
    assert killed.returncode != 0
    assert not (out / "val-000000.json").exists()
    assert (out / "shard-000002.json").exists()
    again = cli(*args)
    assert again.exit_code == 0, again.output
    assert files(out) == files(ref)
    assert leftovers(out) == []


def test_a_lost_val_shard_and_a_stale_partial_are_redone(rendered, tmp_path):
    import shutil

    db, ref = rendered
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    (out / "val-000001.tar").unlink()
    (out / "val-000001.json").unlink()
    (out / "val-000000.tar.host-1.partial").write_bytes(b"half")
    status = cli("status", out)
    assert "missing    1: val-000001.tar" in status.output
    assert "(val split): 1 of 2 shards complete" in status.output
    result = cli(*render_args(db, out, *VAL_ARGS))
    assert result.exit_code == 0, result.output
    assert "3 rendered now" in result.output
    assert files(out) == files(ref)
    assert leftovers(out) == []


def test_verify_checks_val_shards_and_catches_damage(rendered, tmp_path):
    import shutil

    _, ref = rendered
    good = cli("verify", ref, "--decode", "--rerender", "all")
    assert good.exit_code == 0, good.output
    assert "5 of 5 shards OK, 33 samples decoded and checked, 33 compared" in good.output
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    tar = out / "val-000001.tar"
    data = bytearray(tar.read_bytes())
    data[700] ^= 0xFF  # inside the first member's data: same size, other bytes
    tar.write_bytes(bytes(data))
    bad = cli("verify", out)
    assert bad.exit_code == 1
    assert f"{tar}: sha256 differs from the sidecar" in bad.output
    assert "1 shard(s) with problems (val-000001.tar)" in bad.output
    info = json.loads((out / "_info.json").read_text())
    info["splits"]["val"]["shard_lengths"] = [1, 1]
    (out / "_info.json").write_text(json.dumps(info))
    assert "_info.json: val shard lengths differ from the plan" in cli("verify", out).output


def test_info_and_dry_run_show_the_val_split(rendered):
    db, out = rendered
    shown = cli("info", out)
    assert shown.exit_code == 0, shown.output
    assert "  val         9 in 2 shards val-NNNNNN.tar (held-out seed 9223372036854775808)" in (
        shown.output
    )
    assert "  complete    5 of 5 shards" in shown.output
    dry = cli("render", "--db", db, *TINY, *VAL_ARGS, "--dry-run", "--num-shards", "2")
    assert dry.exit_code == 0, dry.output
    assert "val split: 9 samples (held-out seed) in 2 shards val-NNNNNN.tar" in dry.output
    assert "array: --num-shards 2: 2 tasks of up to 3 shards" in dry.output


def test_a_changed_val_count_is_refused_and_force_keeps_user_files(rendered, tmp_path):
    import shutil

    db, ref = rendered
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    (out / "notes.txt").write_text("mine")
    refused = cli(*render_args(db, out, "--val-instances", "2"))
    assert refused.exit_code == 1
    assert (
        "holds shards of the same settings with a validation split of 3 per category or image "
        "(this render asks 2); use --force" in refused.output
    )
    dropped = cli(*render_args(db, out))  # no val split: a changed setting too
    assert dropped.exit_code == 1
    assert "validation split of 3 per category or image (this render asks 0)" in dropped.output
    forced = cli(*render_args(db, out, "--val-instances", "2", "--force"))
    assert forced.exit_code == 0, forced.output
    assert (out / "notes.txt").read_text() == "mine"
    assert Counter(int(s["cls"]) for s in read_split(out, "val")) == {0: 2, 1: 2, 2: 2}
    forced = cli(*render_args(db, out, "--force"))
    assert forced.exit_code == 0, forced.output
    assert not list(out.glob("val-*"))
    trains = [{k: v for k, v in files(f).items() if k.startswith("shard-")} for f in (out, ref)]
    assert trains[0] == trains[1]  # the training shards do not depend on the val split
    assert list(json.loads((out / "_info.json").read_text())["splits"]) == ["train"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--val-images", "2"], "--val-images does not apply to type fractal"),
        (["--val-instances", "-1"], "'--val-instances': -1 is not in the range x>=0"),
    ],
)  # fmt: skip
def test_val_option_errors_name_the_option(rendered, tmp_path, args, message):
    db, _ = rendered
    result = cli(*render_args(db, tmp_path / "out", *args))
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_api_val_errors(rendered, tmp_path):
    db, _ = rendered
    with pytest.raises(fdgen.FdgenError, match=r"--val-instances: expected a whole number >= 0"):
        fdgen.render(db, tmp_path / "out", val_instances=-2)
    with pytest.raises(fdgen.FdgenError, match="--val-images does not apply to type fractal"):
        fdgen.render(db, tmp_path / "out", val_images=1)


def test_help_names_the_families_of_each_val_option():
    result = cli("render", "--help")
    text = " ".join(result.output.split())
    instances = text[text.index("--val-instances N") : text.index("--val-images N")]
    images = text[text.index("--val-images N") : text.index("--dry-run")]
    assert "fractal" in instances and "rcdb" in instances and "segrcdb" not in instances
    assert "segrcdb" in images and "svdmulti" in images and "fractal3d" not in images


def test_per_image_family_val_images(tmp_path):
    db = tmp_path / "seg"
    found = cli("search", "--type", "segrcdb", "--categories", "3", "--workers", "1", "--out", db)
    assert found.exit_code == 0, found.output
    out = tmp_path / "out"
    wrong = cli("render", "--db", db, "--shards", out, *SEG, "--val-instances", "2")
    assert wrong.exit_code == 1
    assert "--val-instances does not apply to type segrcdb" in wrong.output
    args = ["render", "--db", db, "--shards", out, "--workers", "1", *SEG, "--val-images", "2"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    val = read_split(out, "val")
    assert sorted(s["__key__"] for s in val) == ["img00000000", "img00000001"]
    assert all("seg.png" in s for s in val)
    train = {s["png"] for s in read_split(out, "shard")}
    assert not train & {s["png"] for s in val}
    info = json.loads((out / "_info.json").read_text())
    assert info["splits"]["val"]["num_samples"] == 2
    assert cli("verify", out, "--rerender", "all").exit_code == 0


def test_torch_dataset_val_split_yields_the_val_shards(rendered):
    pytest.importorskip("torch")
    from fdgen.torch import RenderedDataset

    db, out = rendered
    family = get_family("fractal")
    settings = family.RenderSettings(instances=8, size=64, points=2000)
    database = load_database(db)
    ds = RenderedDataset(
        database, settings, samples_per_shard=8, output="raw", split="val", val_instances=VAL
    )
    assert ds.num_samples == len(ds) == 3 * VAL
    stored = read_split(out, "val")
    fresh = list(ds)
    assert [s["__key__"] for s in fresh] == [s["__key__"] for s in stored]
    for a, b in zip(fresh, stored, strict=True):
        assert a["png"] == b["png"] and a["cls"] == b["cls"] and a["json"] == b["json"]
    train = RenderedDataset(database, settings, samples_per_shard=8, output="raw")
    assert [s["__key__"] for s in train] == [s["__key__"] for s in read_split(out, "shard")]
    with pytest.raises(fdgen.FdgenError, match="split: 'val' needs a validation split"):
        RenderedDataset(database, settings, split="val")
    with pytest.raises(fdgen.FdgenError, match="split: must be one of train, val"):
        RenderedDataset(database, settings, split="test", val_instances=1)
