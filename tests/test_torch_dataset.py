"""fdgen.torch.RenderedDataset: the same samples as the rendered shards, split without loss."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch", reason="the torch extra is not installed")

from fdgen.cli import main  # noqa: E402
from fdgen.database import load_database  # noqa: E402
from fdgen.errors import FdgenError  # noqa: E402
from fdgen.families.fractal2d import RenderSettings  # noqa: E402
from fdgen.torch import RenderedDataset, split_shards  # noqa: E402

CATEGORIES, INSTANCES, PER_SHARD = 3, 10, 8  # groups of 4, 4, 2 per category; 5 shards


def _cli(*args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("db") / "db"
    _cli(
        "search",
        "--categories",
        str(CATEGORIES),
        *"--points 4000 --size 64 --workers 1".split(),
        "--out",
        str(out),
    )
    return out


def _render(db_path: Path, out: Path, draw: str, fmt: str) -> RenderSettings:
    args = f"--instances {INSTANCES} --size 32 --pad 6 --points 3000 --draw {draw} --format {fmt}"
    args += f" --samples-per-shard {PER_SHARD} --workers 1"
    _cli("render", "--db", str(db_path), "--shards", str(out), *args.split())
    return RenderSettings(size=32, pad=6, points=3000, draw=draw, instances=INSTANCES)


def _tar_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def _shard_files(out: Path) -> list[Path]:
    info = json.loads((out / "_info.json").read_text())
    return [out / name for name in info["splits"]["train"]["filenames"]]


@pytest.fixture(scope="module")
def gray_shards(db_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("gray")
    return out, _render(db_path, out, "patch_gray", "png")


@pytest.mark.parametrize("draw,fmt", [("patch_gray", "png"), ("point_color", "jpg")])
def test_raw_samples_are_the_shards_bytes(db_path, tmp_path, draw, fmt):
    settings = _render(db_path, tmp_path, draw, fmt)
    ds = RenderedDataset(db_path, settings, PER_SHARD, fmt=fmt, output="raw")
    files = _shard_files(tmp_path)
    assert ds.num_shards == len(files) == 5
    expected = [m for f in files for m in _tar_members(f)]
    produced = [
        (f"{sample['__key__']}.{ext}", data)
        for sample in ds
        for ext, data in sample.items()
        if ext != "__key__"
    ]
    assert [name for name, _ in produced] == [name for name, _ in expected]
    assert produced == expected
    assert len(ds) == CATEGORIES * INSTANCES


def test_decoded_samples_match_webdataset_reading_the_shards(db_path, gray_shards):
    import webdataset as wds

    out, settings = gray_shards
    urls = [str(f) for f in _shard_files(out)]
    reader = wds.WebDataset(urls, shardshuffle=False).decode("l8")
    ds = RenderedDataset(load_database(db_path), settings, PER_SHARD, output="dict")
    pairs = list(zip(reader, ds, strict=True))
    assert len(pairs) == CATEGORIES * INSTANCES
    for ref, got in pairs:
        assert got["__key__"] == ref["__key__"]
        assert got["image"].dtype == np.uint8 and got["image"].shape == (32, 32)
        np.testing.assert_array_equal(got["image"], ref["png"])
        assert got["cls"] == int(ref["cls"])
        assert got["json"] == ref["json"]
    assert {got["cls"] for _, got in pairs} == set(range(CATEGORIES))
    assert any(got["image"].any() for _, got in pairs)


def test_tuple_output_batches_through_a_dataloader(db_path, gray_shards):
    import webdataset as wds

    out, settings = gray_shards
    reader = wds.WebDataset([str(f) for f in _shard_files(out)], shardshuffle=False)
    reader = reader.decode("l8").to_tuple("png", "cls")
    ds = RenderedDataset(db_path, settings, PER_SHARD, transform=lambda t: t.float() / 255)
    batches = list(torch.utils.data.DataLoader(ds, batch_size=6))
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    assert images.shape == (CATEGORIES * INSTANCES, 1, 32, 32) and images.dtype == torch.float32
    ref = list(reader)
    expected = np.stack([r[0] for r in ref]).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(images[:, 0].numpy(), expected)
    assert labels.tolist() == [int(r[1]) for r in ref]


def _keys(ds: RenderedDataset, workers: int) -> list[str]:
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
    return [sample["__key__"] for sample in loader]


@pytest.mark.parametrize("world_size,workers", [(1, 2), (2, 2), (3, 1), (2, 3)])
def test_rank_and_worker_split_covers_every_sample_once(db_path, gray_shards, world_size, workers):
    _, settings = gray_shards
    everything = _keys(RenderedDataset(db_path, settings, PER_SHARD, output="dict"), 0)
    assert len(set(everything)) == CATEGORIES * INSTANCES
    seen = []
    for rank in range(world_size):
        ds = RenderedDataset(
            db_path, settings, PER_SHARD, output="dict", rank=rank, world_size=world_size
        )
        keys = _keys(ds, workers)
        assert len(keys) == len(ds)
        seen += keys
    counts = Counter(seen)
    assert set(counts) == set(everything)
    assert max(counts.values()) == 1


def test_shuffled_shard_order_differs_by_epoch_and_still_covers(db_path, gray_shards):
    _, settings = gray_shards
    orders = []
    for epoch in (0, 1, 2):
        seen = []
        for rank in range(2):
            ds = RenderedDataset(
                db_path,
                settings,
                PER_SHARD,
                output="dict",
                rank=rank,
                world_size=2,
                shuffle_shards=True,
                seed=7,
            )
            ds.set_epoch(epoch)
            seen += _keys(ds, 2)
        assert sorted(seen) == sorted(set(seen)) and len(seen) == CATEGORIES * INSTANCES
        orders.append(ds.shard_order())
    assert sorted(orders[0]) == list(range(5))
    assert len({tuple(o) for o in orders}) > 1


@given(
    shards=st.integers(0, 40),
    world=st.integers(1, 6),
    workers=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_shards_is_a_disjoint_cover(shards, world, workers, seed):
    order = np.random.default_rng(seed).permutation(shards).tolist()
    parts = [
        split_shards(order, r, world, w, workers) for r in range(world) for w in range(workers)
    ]
    flat = [j for part in parts for j in part]
    assert sorted(flat) == sorted(order)


def test_bad_arguments_are_clear_errors(db_path, gray_shards):
    _, settings = gray_shards
    with pytest.raises(FdgenError, match="output"):
        RenderedDataset(db_path, settings, output="pil")
    with pytest.raises(FdgenError, match="settings"):
        RenderedDataset(db_path, object())
    with pytest.raises(FdgenError, match="rank"):
        RenderedDataset(db_path, settings, rank=2, world_size=2)
    with pytest.raises(FdgenError, match="rank/world_size"):
        RenderedDataset(db_path, settings, rank=0)


def test_png_member_decodes_to_the_dict_pixels(db_path, gray_shards):
    """The raw PNG bytes and the decoded pixels of one sample agree (OpenCV as the decoder)."""
    import cv2

    _, settings = gray_shards
    raw = next(iter(RenderedDataset(db_path, settings, PER_SHARD, output="raw")))
    pixels = next(iter(RenderedDataset(db_path, settings, PER_SHARD, output="dict")))["image"]
    decoded = cv2.imdecode(np.frombuffer(raw["png"], np.uint8), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(decoded, pixels)
    assert json.loads(io.BytesIO(raw["json"]).read())["category"] == int(raw["cls"])


def test_segrcdb_samples_carry_the_shards_images_and_masks(tmp_path):
    from fdgen.families.segrcdb import RenderSettings as SegSettings

    db = tmp_path / "db"
    _cli("search", "--type", "segrcdb", "--categories", "4", "--out", str(db), "--workers", "1")
    args = "--images 5 --objects 4 --size 48 --samples-per-shard 2 --workers 1 --mask ring"
    _cli("render", "--db", str(db), "--shards", str(tmp_path / "out"), *args.split())
    settings = SegSettings(size=48, images=5, objects=4, mask="ring")
    files = _shard_files(tmp_path / "out")
    raw = RenderedDataset(db, settings, 2, output="raw")
    produced = [(f"{s['__key__']}.{e}", d) for s in raw for e, d in s.items() if e != "__key__"]
    assert sorted(produced) == sorted(m for f in files for m in _tar_members(f))
    wds = pytest.importorskip("webdataset")
    urls = [str(f) for f in files]
    reader = wds.WebDataset(urls, shardshuffle=False).decode("l8")  # grey uint8 arrays
    read = {s["__key__"]: s for s in reader}
    samples = list(RenderedDataset(db, settings, 2, output="dict"))
    assert len(samples) == len(read) == 5
    for s in samples:
        assert "cls" not in s and s["json"] == read[s["__key__"]]["json"]
        assert np.array_equal(s["image"], read[s["__key__"]]["png"])
        assert np.array_equal(s["seg"], read[s["__key__"]]["seg.png"])
    loader = torch.utils.data.DataLoader(RenderedDataset(db, settings, 2), batch_size=5)
    images, masks = next(iter(loader))
    assert images.shape == (5, 1, 48, 48) and images.dtype == torch.uint8
    assert masks.shape == (5, 48, 48) and masks.dtype == torch.int64
    order = [s["__key__"] for s in samples]
    want = np.stack([read[k]["seg.png"] for k in order]).astype(np.int64)
    assert np.array_equal(masks.numpy(), want) and int(masks.max()) <= 4


def test_a_preset_searched_database_yields_what_render_writes(tmp_path):
    """No settings: the preset db.yaml names sets them, as for ``fdgen render --db``."""
    db = tmp_path / "ofdb"
    _cli("search", "--preset", "OFDB-1k", "--categories", "3", "--out", str(db), "--workers", "1")
    out = tmp_path / "s"
    _cli("render", "--db", str(db), "--shards", str(out), "--samples-per-shard", "2")
    expected = [m for f in _shard_files(out) for m in _tar_members(f)]
    ds = RenderedDataset(db, samples_per_shard=2, output="raw")
    produced = [
        (f"{sample['__key__']}.{ext}", data)
        for sample in ds
        for ext, data in sample.items()
        if ext != "__key__"
    ]
    assert len(ds) == 3 and len(expected) == 3 * 3  # one image per category: png, cls, json
    assert produced == expected
