"""The writers (`--writer webdataset|files|parquet`) read back by real clients.

HuggingFace ``datasets`` loads the Parquet shards (``parquet`` builder), the tar shards
(``webdataset`` builder) and the files layout (``imagefolder`` builder, which numbers the
classes by sorted folder name as torchvision's ``ImageFolder`` does); every image decodes to
the pixels of the WebDataset render. Offline, with a temporary cache.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import datasets  # the [dev] extra installs datasets and pyarrow (no skip: a missing one fails)
import numpy as np
import pyarrow.parquet as pyarrow_parquet
import pytest
from PIL import Image

from tiny_shards import cli, make_db, render_args


@pytest.fixture(autouse=True)
def offline_hf(tmp_path, monkeypatch):
    """No network, and a cache of this test's own."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


def _load(builder: str, tmp_path: Path, **kwargs):
    return datasets.load_dataset(builder, split="train", cache_dir=str(tmp_path / "hf"), **kwargs)


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _reference(ref: Path) -> dict[str, dict[str, bytes]]:
    """key -> {ext: bytes} of every sample of the WebDataset render."""
    samples: dict[str, dict[str, bytes]] = {}
    for shard in sorted(ref.glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                key, _, ext = member.name.partition(".")
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def _render(db: Path, out: Path, *extra: str, workers: int = 1):
    args = render_args(db, out, *extra)
    args[args.index("--workers") + 1] = str(workers)
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the manifest (timings) and lock, by relative path."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def parquet_render(tiny, tmp_path_factory):
    db, _ = tiny
    out = tmp_path_factory.mktemp("writers") / "parquet"
    _render(db, out, "--writer", "parquet")
    return out


@pytest.fixture(scope="module")
def files_render(tiny, tmp_path_factory):
    db, _ = tiny
    out = tmp_path_factory.mktemp("writers") / "files"
    _render(db, out, "--writer", "files")
    return out


# --- parquet ----------------------------------------------------------------------------


def test_parquet_shards_load_in_datasets_with_decoded_images(tiny, parquet_render, tmp_path):
    _, ref = tiny
    expected = _reference(ref)
    files = sorted(str(p) for p in parquet_render.glob("shard-*.parquet"))
    assert [Path(f).name for f in files] == [f"shard-{j:06d}.parquet" for j in range(3)]
    ds = _load("parquet", tmp_path, data_files=files)
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.features["label"] == datasets.Value("int64")
    assert len(ds) == len(expected) == 24
    seen = []
    for row in ds:
        key = row["key"]
        seen.append(key)
        stored = expected[key]
        assert row["label"] == int(stored["cls"])
        assert json.loads(row["metadata"]) == json.loads(stored["json"])
        assert isinstance(row["image"], Image.Image)
        assert np.array_equal(np.asarray(row["image"].convert("RGB")), _pixels(stored["png"]))
    # the rows are the tar shards' samples in the same order
    assert seen == list(expected)


def test_parquet_schema_carries_the_huggingface_features(parquet_render):
    schema = pyarrow_parquet.read_schema(parquet_render / "shard-000000.parquet")
    features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert datasets.Features.from_dict(features) == datasets.Features(
        {
            "key": datasets.Value("string"),
            "image": datasets.Image(),
            "label": datasets.Value("int64"),
            "metadata": datasets.Value("string"),
        }
    )
    row_groups = pyarrow_parquet.ParquetFile(parquet_render / "shard-000000.parquet")
    assert row_groups.metadata.num_rows == 8


def test_parquet_bytes_do_not_depend_on_workers(tiny, parquet_render, tmp_path):
    db, _ = tiny
    _render(db, tmp_path / "two", "--writer", "parquet", workers=2)
    assert _tree(tmp_path / "two") == _tree(parquet_render)


def test_verify_catches_a_damaged_parquet_shard(parquet_render, tmp_path):
    out = tmp_path / "damaged"
    shutil.copytree(parquet_render, out)
    assert cli("verify", out, "--decode").exit_code == 0
    shard = out / "shard-000001.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the digest and the parse can tell
    shard.write_bytes(bytes(data))
    result = cli("verify", out)
    assert result.exit_code != 0
    assert "shard-000001.parquet: sha256 differs" in result.output
    assert "Traceback" not in result.output
    shard.write_bytes(bytes(data[:100]))  # truncated: not Parquet at all
    result = cli("verify", out)
    assert result.exit_code != 0 and "shard-000001.parquet" in result.output
    assert "Traceback" not in result.output


def test_parquet_render_resumes_a_killed_shard(tiny, parquet_render, tmp_path):
    db, _ = tiny
    out = tmp_path / "resumed"
    shutil.copytree(parquet_render, out)
    (out / "shard-000002.json").unlink()  # killed before its sidecar ...
    data = (out / "shard-000002.parquet").read_bytes()
    (out / "shard-000002.parquet").write_bytes(data[: len(data) // 2])
    (out / "shard-000001.parquet.host-1.partial").write_bytes(b"half")  # ... and mid-shard
    status = cli("status", out)
    assert "2 of 3 shards complete" in status.output
    assert "incomplete 1: shard-000002.parquet" in status.output
    result = _render(db, out, "--writer", "parquet")
    assert "8 rendered now" in result.output
    assert _tree(out) == _tree(parquet_render)


# --- webdataset -----------------------------------------------------------------------------


def test_webdataset_shards_load_in_datasets(tiny, tmp_path):
    _, ref = tiny
    expected = _reference(ref)
    files = sorted(str(p) for p in ref.glob("shard-*.tar"))
    ds = _load("webdataset", tmp_path, data_files=files)
    assert isinstance(ds.features["png"], datasets.Image)
    assert ds.features["cls"] == datasets.Value("int64")
    assert len(ds) == 24
    for row in ds:
        stored = expected[row["__key__"]]
        assert row["cls"] == int(stored["cls"])
        assert row["json"] == json.loads(stored["json"])
        assert np.array_equal(np.asarray(row["png"].convert("RGB")), _pixels(stored["png"]))


# --- files ----------------------------------------------------------------------------------


def test_files_layout_is_one_folder_per_category_of_the_same_pixels(tiny, files_render):
    db, ref = tiny
    expected = _reference(ref)
    stems = sorted(p.stem for p in db.glob("*.csv"))
    folders = sorted(p.name for p in files_render.iterdir() if p.is_dir())
    assert folders == stems == ["00000", "00001", "00002"]
    for label, stem in enumerate(stems):
        images = sorted((files_render / stem).iterdir())
        assert len(images) == 8  # instances per category
        for path in images:
            stored = expected[path.stem]
            assert path.suffix == ".png" and int(stored["cls"]) == label
            assert np.array_equal(_pixels(path.read_bytes()), _pixels(stored["png"]))
    # nothing else: ImageFolder takes every sub-folder as a class
    inside = [p for p in files_render.rglob("*") if p.is_file() and p.parent != files_render]
    assert all(p.suffix == ".png" for p in inside) and len(inside) == 24


def test_imagefolder_reads_the_files_layout_with_fdgen_labels(tiny, files_render, tmp_path):
    """HuggingFace's ``imagefolder`` builder numbers classes by sorted folder name, as
    torchvision's ``ImageFolder`` does: the labels must be fdgen's."""
    _, ref = tiny
    expected = _reference(ref)
    ds = _load("imagefolder", tmp_path, data_dir=str(files_render), drop_metadata=True)
    assert ds.features["label"].names == ["00000", "00001", "00002"]
    assert len(ds) == 24
    by_pixels = {_pixels(s["png"]).tobytes(): int(s["cls"]) for s in expected.values()}
    labels = [by_pixels[np.asarray(row["image"].convert("RGB")).tobytes()] for row in ds]
    assert labels == [row["label"] for row in ds]


def test_files_jpg_and_workers_give_the_same_files(tiny, files_render, tmp_path):
    db, _ = tiny
    _render(db, tmp_path / "two", "--writer", "files", workers=2)
    assert _tree(tmp_path / "two") == _tree(files_render)
    _render(db, tmp_path / "jpg", "--writer", "files", "--format", "jpg")
    assert len(list((tmp_path / "jpg").glob("*/*.jpg"))) == 24
    assert cli("verify", tmp_path / "jpg", "--decode").exit_code == 0


def test_verify_catches_a_damaged_or_missing_image(files_render, tmp_path):
    out = tmp_path / "damaged"
    shutil.copytree(files_render, out)
    result = cli("verify", out, "--decode", "--rerender", "2")
    assert result.exit_code == 0, result.output
    image = next((out / "00001").iterdir())
    data = bytearray(image.read_bytes())
    data[-20] ^= 0xFF
    image.write_bytes(bytes(data))
    missing = sorted((out / "00002").iterdir())[3]
    missing.unlink()
    result = cli("verify", out)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"00001/{image.name}: differs from the sidecar" in result.output
    assert f"00002/{missing.name}: missing" in result.output
    status = cli("status", out)  # a missing image makes its shard incomplete
    assert "2 of 3 shards complete" in status.output


def test_files_render_resumes_a_killed_shard_and_keeps_the_users_files(
    tiny, files_render, tmp_path
):
    db, _ = tiny
    out = tmp_path / "resumed"
    shutil.copytree(files_render, out)
    record = json.loads((out / "shard-000001.json").read_text())
    names = [name for name, _, _ in record["files"]]
    # shard 1 killed halfway: no sidecar, half its images, a journal and a temporary image
    (out / "shard-000001.json").unlink()
    for name in names[len(names) // 2 :]:
        (out / name).unlink()
    journal = out / "shard-000001.host-7.partial"
    journal.write_text("\n".join(names[: len(names) // 2 + 1]) + "\n")
    (out / f"{names[len(names) // 2]}.host-7.partial").write_bytes(b"half an image")
    (out / "00000" / "notes.txt").write_text("mine")  # the user's files stay
    (out / "mine").mkdir()
    assert "incomplete 1: shard-000001" in cli("status", out).output
    result = _render(db, out, "--writer", "files")
    assert "8 rendered now" in result.output
    assert "left 1 files that fdgen did not write: mine/" in result.output  # not 00000/ ...
    assert (out / "00000" / "notes.txt").read_text() == "mine"
    (out / "00000" / "notes.txt").unlink()
    (out / "mine").rmdir()
    assert _tree(out) == _tree(files_render)


def test_force_replaces_a_files_render_but_not_the_users_files(tiny, files_render, tmp_path):
    db, _ = tiny
    out = tmp_path / "switched"
    shutil.copytree(files_render, out)
    (out / "00002" / "keep.txt").write_text("mine")
    refused = cli(*render_args(db, out, "--writer", "parquet"))
    assert refused.exit_code != 0 and "different database or settings" in refused.output
    _render(db, out, "--writer", "parquet", "--force")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["00002"]
    assert [p.name for p in (out / "00002").iterdir()] == ["keep.txt"]
    assert cli("verify", out).exit_code == 0


def test_files_writer_refuses_families_that_do_not_fit(tmp_path):
    db = tmp_path / "seg"
    result = cli("search", "--type", "segrcdb", "--categories", "3", "--out", db, "--workers", "1")
    assert result.exit_code == 0, result.output
    seg = ["--images", "2", "--objects", "2", "--size", "32"]
    result = cli("render", "--db", db, "--shards", tmp_path / "out", "--writer", "files", *seg)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: --writer files: type segrcdb")
    assert "--writer webdataset or --writer parquet" in result.output
    assert not (tmp_path / "out").exists()
    # the same family through Parquet: a row per image, the mask as a second image column
    out = tmp_path / "seg-parquet"
    result = cli("render", "--db", db, "--shards", out, "--writer", "parquet", *seg)
    assert result.exit_code == 0, result.output
    ds = _load("parquet", tmp_path, data_files=[str(p) for p in sorted(out.glob("*.parquet"))])
    assert isinstance(ds.features["seg"], datasets.Image) and "label" not in ds.features
    assert cli("verify", out, "--decode").exit_code == 0


def test_files_writer_refuses_category_names_out_of_label_order(tmp_path):
    db = make_db(tmp_path / "csvs", 2)
    os.rename(db / "00000.csv", db / "a.csv")
    os.rename(db / "00001.csv", db / "a-b.csv")  # "a-b.csv" < "a.csv" but "a" < "a-b"
    result = cli(*render_args(db, tmp_path / "out", "--writer", "files"))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "sort in another order than their labels" in result.output


def test_files_writer_refuses_point_clouds(tmp_path):
    from fdgen.errors import FdgenError
    from fdgen.families import get_family
    from fdgen.output.files import FilesWriter

    family = get_family("fractal3d")
    settings = family.RenderSettings(output="pointcloud")
    with pytest.raises(FdgenError, match=r"type fractal3d writes \.npy samples, not images"):
        FilesWriter.check_fit(family, settings, "png", ["00000", "00001"])
    FilesWriter.check_fit(family, family.RenderSettings(output="image"), "png", ["00000"])


def test_a_folder_rendered_before_the_writer_was_recorded_resumes(tiny, tmp_path):
    db, ref = tiny
    out = tmp_path / "old"
    shutil.copytree(ref, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"].pop("writer") == "webdataset"
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = _render(db, out)
    assert "(0 rendered now" in result.output
    assert json.loads((out / "manifest.json").read_text())["identity"]["writer"] == "webdataset"
    refused = cli(*render_args(db, out, "--writer", "files"))
    assert refused.exit_code == 1 and "different database or settings" in refused.output


# --- writers with a validation split ------------------------------------------------------

VAL_ARGS = ["--val-instances", "3"]  # 9 validation samples in val-000000 and val-000001


@pytest.fixture(scope="module")
def val_renders(tiny, tmp_path_factory):
    """(WebDataset render, Parquet render), both with a validation split of 3 per category."""
    db, _ = tiny
    root = tmp_path_factory.mktemp("val-writers")
    _render(db, root / "tar", *VAL_ARGS)
    _render(db, root / "parquet", "--writer", "parquet", *VAL_ARGS)
    return root / "tar", root / "parquet"


def _split_samples(folder: Path, prefix: str) -> dict[str, dict[str, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    for shard in sorted(folder.glob(f"{prefix}-*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                key, _, ext = member.name.partition(".")
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def test_val_parquet_shards_load_in_datasets_as_the_val_tars_samples(
    val_renders, parquet_render, tmp_path
):
    tar, parquet = val_renders
    expected = _split_samples(tar, "val")
    files = sorted(str(p) for p in parquet.glob("val-*.parquet"))
    assert [Path(f).name for f in files] == ["val-000000.parquet", "val-000001.parquet"]
    ds = _load("parquet", tmp_path, data_files=files)
    assert isinstance(ds.features["image"], datasets.Image)
    assert len(ds) == len(expected) == 9
    assert [row["key"] for row in ds] == list(expected)
    for row in ds:
        stored = expected[row["key"]]
        assert row["label"] == int(stored["cls"])
        assert json.loads(row["metadata"]) == json.loads(stored["json"])
        assert np.array_equal(np.asarray(row["image"].convert("RGB")), _pixels(stored["png"]))
    # both splits in one call, as docs/training.md shows
    train = sorted(str(p) for p in parquet.glob("shard-*.parquet"))
    both = datasets.load_dataset(
        "parquet",
        data_files={"train": train, "validation": files},
        cache_dir=str(tmp_path / "both"),
    )
    assert {name: len(split) for name, split in both.items()} == {"train": 24, "validation": 9}
    assert both["validation"]["key"] == list(expected)
    # the training shards are byte for byte those of the render without --val-instances
    for name in ("shard-000000.parquet", "shard-000002.parquet", "shard-000002.json"):
        assert (parquet / name).read_bytes() == (parquet_render / name).read_bytes()


def test_val_parquet_indexes_status_and_verify_name_the_parquet_files(val_renders, tmp_path):
    tar, parquet = val_renders
    info = json.loads((parquet / "_info.json").read_text())
    assert info["splits"]["val"]["filenames"] == ["val-000000.parquet", "val-000001.parquet"]
    assert info["splits"]["train"]["filenames"][0] == "shard-000000.parquet"
    sizes = json.loads((parquet / "sizes.json").read_text())
    tar_sizes = json.loads((tar / "sizes.json").read_text())
    assert sizes == {name.replace(".tar", ".parquet"): n for name, n in tar_sizes.items()}
    assert sum(n for name, n in sizes.items() if name.startswith("val-")) == 9
    manifest = json.loads((parquet / "manifest.json").read_text())
    assert manifest["identity"]["writer"] == "parquet" and manifest["identity"]["val"] == 3
    assert not list(parquet.glob("*.tar"))
    good = cli("verify", parquet, "--decode", "--rerender", "all")
    assert good.exit_code == 0, good.output
    assert "5 of 5 shards OK, 33 samples decoded and checked, 33 compared" in good.output
    out = tmp_path / "damaged"
    shutil.copytree(parquet, out)
    shard = out / "val-000001.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    bad = cli("verify", out)
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert f"{shard}: sha256 differs from the sidecar" in bad.output
    assert "1 shard(s) with problems (val-000001.parquet)" in bad.output


def test_a_lost_val_parquet_shard_is_listed_and_redone_byte_identical(tiny, val_renders, tmp_path):
    db, _ = tiny
    _, parquet = val_renders
    out = tmp_path / "resumed"
    shutil.copytree(parquet, out)
    (out / "val-000000.parquet").unlink()
    (out / "val-000000.json").unlink()  # never written: missing
    (out / "val-000001.json").unlink()  # killed before its sidecar: incomplete
    status = cli("status", out)
    assert "(val split): 0 of 2 shards complete" in status.output
    assert "missing    1: val-000000.parquet" in status.output
    assert "incomplete 1: val-000001.parquet" in status.output
    result = _render(db, out, "--writer", "parquet", *VAL_ARGS)
    assert "9 rendered now" in result.output
    assert _tree(out) == _tree(parquet)


def test_files_writer_refuses_a_validation_split_before_writing(tiny, tmp_path):
    db, _ = tiny
    out = tmp_path / "files-val"
    result = cli(*render_args(db, out, "--writer", "files", *VAL_ARGS))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--val-instances: --writer files" in result.output
    assert "use --writer webdataset or --writer parquet" in result.output
    assert not out.exists()
    assert cli(*render_args(db, out, "--writer", "files", "--val-instances", "0")).exit_code == 0
    assert not list(out.glob("val-*")) and "val" not in json.loads(
        (out / "manifest.json").read_text()
    )
