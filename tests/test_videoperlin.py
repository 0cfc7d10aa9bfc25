"""Video Perlin Noise: the frequency-grid search, the clips' frequencies, the kernel against a
plain-Python reference, determinism, and read-back by webdataset and the torch dataset."""

from __future__ import annotations

import io
import math
import re
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import webdataset as wds
from click.testing import CliRunner

from fdgen.cli import main
from fdgen.database import load_database
from fdgen.families import videoperlin as vp
from fdgen.kernels import perlin3d
from fdgen.kernels.rng import sample_state

SPATIAL, TEMPORAL = "1,4,16", "1,4"  # 3 x 3 x 2 = 18 classes
SMALL = {"size": 32, "frames": 8}


def _cli(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _fails(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1 and result.exception is not None, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vpn") / "db"
    _cli("search", "--type", "videoperlin", "--categories", 18, "--spatial-frequencies",
         SPATIAL, "--time-frequencies", TEMPORAL, "--workers", 1, "--out", out)  # fmt: skip
    return out


def _render(db: Path, out: Path, workers: int = 1, *extra) -> list[Path]:
    sizes = ["--size", SMALL["size"], "--frames", SMALL["frames"], "--instances", 2]
    _cli("render", "--db", db, "--shards", out, *sizes, "--samples-per-shard", 7,
         "--workers", workers, *extra)  # fmt: skip
    return sorted(out.glob("shard-*.tar"))


def clip(fx, fy, ft, instance=0, size=112, frames=16, octaves=1, seed=0, category=0):
    settings = vp.RenderSettings(size=size, frames=frames, octaves=octaves, seed=seed)
    return vp.Renderer(settings).clip(vp.Category(fx, fy, ft), category, instance)


# --- search -------------------------------------------------------------------------------


def test_search_writes_the_grid_in_order(db):
    database = load_database(db)
    expected = [(x, y, t) for x in (1, 4, 16) for y in (1, 4, 16) for t in (1, 4)]
    assert [(c.fx, c.fy, c.ft) for c in database.params] == expected
    assert database.names == [f"{k:05d}" for k in range(18)]
    text = (db / "categories" / "00003.yaml").read_text()
    assert text.splitlines()[0] == "# Video Perlin Noise class x001_y004_t004"


def test_search_and_render_errors_name_the_option(db, tmp_path):
    out = _fails("search", "--type", "videoperlin", "--spatial-frequencies", "2,1",
                 "--out", tmp_path / "a")  # fmt: skip
    assert "--spatial-frequencies" in out and "increasing" in out
    out = _fails("search", "--type", "videoperlin", "--time-frequencies", "0,3",
                 "--out", tmp_path / "b")  # fmt: skip
    assert "--time-frequencies" in out and "1..256" in out
    out = _fails("search", "--type", "videoperlin", "--spatial-frequencies", "1,2",
                 "--categories", 17, "--out", tmp_path / "c")  # fmt: skip
    assert "--categories: must be in 1..16" in out
    out = _fails("render", "--db", db, "--shards", tmp_path / "d", "--octaves", 6, "--workers", 1)
    assert re.search(r"--octaves: 6 octaves of class x\d+_y\d+_t\d+ need 512 lattice", out)
    out = _fails("render", "--db", db, "--shards", tmp_path / "e", "--persistence", 0)
    assert "--persistence: must be in (0, 1]" in out


def test_categories_default_to_the_whole_grid(tmp_path):
    _cli("search", "--type", "videoperlin", "--spatial-frequencies", "1,2",
         "--time-frequencies", "1,2,3", "--out", tmp_path / "db")  # fmt: skip
    files = sorted(p.name for p in (tmp_path / "db" / "categories").iterdir())
    assert len(files) == 2 * 2 * 3, files


def test_preset_is_valid_and_its_grid_is_324_classes():
    from fdgen.api import preset_settings

    search, render = preset_settings("VideoPerlinNoise")
    assert len(search.grid()) == search.categories == 324
    assert (render.frames, render.size, render.output) == (16, 112, "npy")


# --- the kernel against a plain-Python reference --------------------------------------------

MASK64 = 2**64 - 1


def _splitmix(state: int):
    """SplitMix64 as published (Steele et al. 2014), in Python integers."""
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        yield z ^ (z >> 31)


def _reference_clip(state, fx, fy, ft, frames, size, octaves, persistence):
    """Improved Perlin noise (Perlin 2002) summed over octaves, one point at a time."""
    bits = _splitmix(int(state))
    tables, offsets = [], []
    for _ in range(octaves):
        perm = list(range(256))
        for i in range(255, 0, -1):
            j = ((next(bits) & 0xFFFFFFFF) * (i + 1)) >> 32
            perm[i], perm[j] = perm[j], perm[i]
        tables.append(perm)
        offsets.append([(next(bits) >> 11) / 2.0**53 for _ in range(3)])

    def grad(h, x, y, z):  # the 12 cube-edge gradients (plus 4 repeats) of Perlin 2002
        vectors = [(1, 1, 0), (-1, 1, 0), (1, -1, 0), (-1, -1, 0), (1, 0, 1), (-1, 0, 1),
                   (1, 0, -1), (-1, 0, -1), (0, 1, 1), (0, -1, 1), (0, 1, -1), (0, -1, -1),
                   (1, 1, 0), (0, -1, 1), (-1, 1, 0), (0, -1, -1)]  # fmt: skip
        gx, gy, gz = vectors[h & 15]
        return gx * x + gy * y + gz * z

    def fade(u):
        return u * u * u * (u * (u * 6 - 15) + 10)

    def noise(perm, x, y, z):
        xi, yi, zi = math.floor(x), math.floor(y), math.floor(z)
        x, y, z = x - xi, y - yi, z - zi
        total = 0.0
        corners = {}
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    h = perm[(perm[(perm[(xi + dx) % 256] + (yi + dy) % 256) % 256]
                              + (zi + dz) % 256) % 256]  # fmt: skip
                    corners[dx, dy, dz] = grad(h, x - dx, y - dy, z - dz)
        u, v, w = fade(x), fade(y), fade(z)
        for (dx, dy, dz), g in corners.items():
            total += (u if dx else 1 - u) * (v if dy else 1 - v) * (w if dz else 1 - w) * g
        return total

    out = np.zeros((frames, size, size))
    for o in range(octaves):
        k = 2**o
        for t in range(frames):
            for r in range(size):
                for c in range(size):
                    x = c / size * fx * k + offsets[o][0]
                    y = r / size * fy * k + offsets[o][1]
                    z = t / frames * ft * k + offsets[o][2]
                    out[t, r, c] += persistence**o * noise(tables[o], x, y, z)
    return out


@pytest.mark.parametrize("fx, fy, ft, octaves", [(1, 2, 1, 1), (3, 1, 2, 2), (5, 7, 3, 3)])
def test_noise_matches_the_python_reference(fx, fy, ft, octaves):
    frames, size, persistence = 3, 10, 0.6
    state = sample_state(0, 4, 2)
    tables = np.empty((octaves, 256), np.int64)
    offsets = np.empty((octaves, 3))
    perlin3d.draw_octaves(state, tables, offsets)
    got = np.empty((frames, size, size))
    perlin3d.noise_clip(tables, offsets, fx, fy, ft, persistence, got)
    expected = _reference_clip(state, fx, fy, ft, frames, size, octaves, persistence)
    # the reference blends the 8 corners in another order: equal to rounding
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.abs(expected).max() > 0.05  # not a trivially zero clip


def test_uint8_clip_spans_0_to_255_and_follows_the_noise():
    noise = np.linspace(-0.3, 0.7, 2 * 4 * 4).reshape(2, 4, 4)
    out = np.empty(noise.shape, np.uint8)
    perlin3d.to_uint8(noise, out)
    expected = np.floor((noise + 0.3) / 1.0 * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    video = clip(4, 4, 2, size=32, frames=8)
    assert video.dtype == np.uint8 and video.shape == (8, 32, 32)
    assert video.min() == 0 and video.max() == 255


# --- clips: motion and frequencies -----------------------------------------------------------


def test_frames_change_over_time_and_faster_for_higher_ft():
    changes = {}
    for ft in (1, 2, 4):
        video = clip(4, 4, ft, size=48, frames=16).astype(float)
        steps = np.abs(np.diff(video, axis=0)).mean(axis=(1, 2))
        assert (steps > 0.5).all(), f"ft={ft}: a frame repeats its predecessor"
        changes[ft] = steps.mean()
    assert changes[1] < changes[2] < changes[4], changes


def measured_frequencies(video: np.ndarray) -> tuple[float, float, float]:
    """Power-weighted mean frequency (cycles per clip extent) along x, y and t: the DFT of
    every line along the axis, mean removed and Hann-windowed (the noise is not periodic, so
    without a window the jump at the ends would add power at every frequency), power averaged
    over lines, DC left out."""
    out = []
    for axis in (2, 1, 0):
        lines = np.moveaxis(video.astype(float), axis, -1)
        lines = lines - lines.mean(axis=-1, keepdims=True)
        n = lines.shape[-1]
        power = np.abs(np.fft.rfft(lines * np.hanning(n), axis=-1)) ** 2
        power = power.reshape(-1, n // 2 + 1).mean(axis=0)[1:]
        freqs = np.arange(1, len(power) + 1)
        out.append(float((power * freqs).sum() / power.sum()))
    return tuple(out)


def _mean_measured(fx, fy, ft) -> np.ndarray:
    return np.mean([measured_frequencies(clip(fx, fy, ft, instance=i)) for i in range(3)], 0)


def test_measured_frequencies_follow_the_class():
    """Along each axis, the class frequency f (lattice cells per clip) sets the measured
    frequency: Perlin noise puts most of its power below the lattice frequency (measured
    about 0.35 f + 0.8 at 112 px x 16 frames; the window's main lobe adds about one cycle at
    low f), so the test asks for order, for a clear ratio between f and 4 f, for a range
    [0.2 f, 0.6 f + 1.5], and for the other axes to stay put."""
    grid = (1, 4, 16)
    for axis, make in enumerate(
        (lambda f: (f, 2, 2), lambda f: (2, f, 2), lambda f: (2, 2, min(f, 4)))
    ):
        values = sorted({make(f) for f in grid})
        measured = [_mean_measured(*cls) for cls in values]
        along = [m[axis] for m in measured]
        assert along == sorted(along) and len(set(along)) == len(along), (values, measured)
        for cls, m in zip(values, measured):
            f = cls[axis]
            assert 0.2 * f <= m[axis] <= 0.6 * f + 1.5, (cls, m)
        assert along[-1] / along[0] > (1.4 if axis == 2 else 2.5), along
        for other in {0, 1, 2} - {axis}:  # the other axes' classes are fixed at 2
            across = [m[other] for m in measured]
            assert max(across) / min(across) < 1.25, (axis, other, across)


def test_per_sample_seeding():
    a = clip(4, 4, 2, instance=0, size=24, frames=6)
    np.testing.assert_array_equal(a, clip(4, 4, 2, instance=0, size=24, frames=6))
    assert not np.array_equal(a, clip(4, 4, 2, instance=1, size=24, frames=6))
    assert not np.array_equal(a, clip(4, 4, 2, instance=0, size=24, frames=6, seed=1))
    assert not np.array_equal(a, clip(4, 4, 2, instance=0, size=24, frames=6, category=1))


# --- shards: determinism and read-back ------------------------------------------------------


@pytest.mark.parametrize("output", ["npy", "mp4"])
def test_render_is_the_same_bytes_with_one_or_two_workers(db, tmp_path, output):
    one = _render(db, tmp_path / "one", 1, "--output", output)
    two = _render(db, tmp_path / "two", 2, "--output", output)
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 6  # 36 samples / 7
    for a, b in zip(one, two):
        assert a.read_bytes() == b.read_bytes(), a.name
    _cli("verify", tmp_path / "two", "--rerender", "all")


def test_npy_shards_read_back_with_webdataset(db, tmp_path):
    shards = _render(db, tmp_path / "npy")
    database = load_database(db)
    renderer = vp.Renderer(vp.RenderSettings(instances=2, **SMALL))
    ds = wds.WebDataset([str(p) for p in shards], shardshuffle=False).decode()
    seen = []
    for video, cls, meta in ds.to_tuple("npy", "cls", "json"):
        category = database.params[meta["category"]]
        assert video.dtype == np.uint8 and video.shape == (8, 32, 32)
        assert int(cls) == meta["category"] and meta["class"] == category.name
        assert (meta["fx"], meta["fy"], meta["ft"]) == (category.fx, category.fy, category.ft)
        expected = renderer.clip(category, meta["category"], meta["instance"])
        np.testing.assert_array_equal(video, expected)
        seen.append((meta["category"], meta["instance"]))
    assert sorted(seen) == [(c, i) for c in range(18) for i in range(2)]


def _decode_mp4(data: bytes, tmp_path: Path) -> np.ndarray:
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    capture.release()
    return np.array(frames)


def test_mp4_shards_read_back_with_webdataset_and_opencv(db, tmp_path):
    shards = _render(db, tmp_path / "mp4", 1, "--output", "mp4")
    database = load_database(db)
    renderer = vp.Renderer(vp.RenderSettings(instances=2, **SMALL))
    count = 0
    for sample in wds.WebDataset([str(p) for p in shards], shardshuffle=False).decode():
        assert set(sample) >= {"mp4", "cls", "json"} and "npy" not in sample
        meta = sample["json"]
        assert isinstance(sample["mp4"], bytes)  # webdataset leaves video bytes alone
        video = _decode_mp4(sample["mp4"], tmp_path)
        expected = renderer.clip(database.params[meta["category"]], meta["category"],
                                 meta["instance"])  # fmt: skip
        assert video.shape == expected.shape
        error = video.astype(float) - expected
        psnr = 10 * np.log10(255**2 / max(np.mean(error**2), 1e-9))
        assert psnr > 28, (sample["__key__"], psnr)  # lossy MPEG-4 Part 2, smooth content
        count += 1
    assert count == 36


def test_torch_dataset_gives_clips_as_channel_time_height_width(db, tmp_path):
    torch = pytest.importorskip("torch", reason="the torch extra is not installed")
    from fdgen.torch import RenderedDataset

    shards = _render(db, tmp_path / "t")
    settings = vp.RenderSettings(instances=2, **SMALL)
    on_disk = {
        s["__key__"]: s
        for s in wds.WebDataset([str(p) for p in shards], shardshuffle=False).decode()
    }
    tuples = list(RenderedDataset(db, settings, samples_per_shard=7))
    dicts = list(RenderedDataset(db, settings, samples_per_shard=7, output="dict"))
    raws = list(RenderedDataset(db, settings, samples_per_shard=7, output="raw"))
    assert len(tuples) == len(dicts) == len(raws) == len(on_disk) == 36
    for (tensor, label), record, raw in zip(tuples, dicts, raws):
        stored = on_disk[record["__key__"]]
        assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == (1, 8, 32, 32)
        np.testing.assert_array_equal(tensor[0].numpy(), stored["npy"])
        np.testing.assert_array_equal(record["image"], stored["npy"])
        assert label == record["cls"] == stored["cls"] and record["json"] == stored["json"]
        assert np.load(io.BytesIO(raw["npy"])).shape == (8, 32, 32)
    with tarfile.open(shards[0]) as tar:
        first = tar.extractfile(tar.getmembers()[0]).read()
    assert raws[0]["npy"] == first


def test_preview_shows_a_strip_of_frames_per_category(db, tmp_path):
    out = tmp_path / "preview.png"
    text = _cli("preview", "--db", db, "--out", out, "--categories", 3, "--instances", 4,
                "--thumb", 32)  # fmt: skip
    assert "3 categories, 4 frames of each" in text
    sheet = cv2.imread(str(out))
    gap = 4
    assert sheet.shape[:2] == (3 * (32 + gap) + gap, 4 * (32 + gap) + gap)
    first_row = [sheet[gap : gap + 32, gap + k * 36 : gap + k * 36 + 32] for k in range(4)]
    assert not np.array_equal(first_row[0], first_row[-1])  # frames of one clip differ
