"""PNG compression: fdgen's DEFLATE encoder against zlib and libdeflate on every family's images.

Run: ``PYTHONPATH=src python bench/png.py [--images 100]``

For each family, ``--images`` images are rendered at the published settings (databases from
small seeded searches, default stream), then each image's PNG scanlines (filter byte "none"
+ row, exactly the bytes fdgen's PNG writer deflates; 1-bit rows for the two-level images)
are compressed by every encoder in turn, image by image, so machine load hits all alike.
Reported: the median ms per image of the compress call alone (no PNG chunks, CRC or Adler)
and the mean KB per image of the raw DEFLATE stream (the PNG adds 57 bytes, 69 with a
palette). zlib is the Python module (the system zlib), libdeflate the ``deflate`` package.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import zlib
from pathlib import Path

import deflate as libdeflate
import numpy as np

from fdgen.database import load_database
from fdgen.encode import _with_filter_bytes
from fdgen.families import contour_base, fractal2d, fractal3d, get_family, segrcdb
from fdgen.kernels.deflate import deflate as fdgen_deflate
from fdgen.searching import run_search


def _zlib(level: int, strategy: int):
    def encode(rows: np.ndarray) -> bytes:
        c = zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)
        return c.compress(rows) + c.flush()

    return encode


def _libdeflate(level: int):
    return lambda rows: libdeflate.deflate_compress(rows, level)


ENCODERS = {
    "fdgen": fdgen_deflate,
    **{f"zlib {lv} Z_RLE": _zlib(lv, zlib.Z_RLE) for lv in (1, 6, 9)},
    **{f"zlib {lv} default": _zlib(lv, zlib.Z_DEFAULT_STRATEGY) for lv in (1, 6, 9)},
    **{f"libdeflate {lv}": _libdeflate(lv) for lv in (1, 6, 12)},
}


def _scanlines(image: np.ndarray, two_level: bool) -> np.ndarray:
    """The bytes the PNG writer deflates for ``image`` (as ``fdgen.encode`` builds them)."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if two_level:
        return _with_filter_bytes(np.packbits(image, axis=1)).reshape(-1)
    return _with_filter_bytes(image.reshape(image.shape[0], -1)).reshape(-1)


def _grouped(family, settings, params, count: int, categories: int, per_category: int):
    """``count`` images: ``per_category`` instances of each category, rendered group by group."""
    renderer = family.renderer(settings)
    group = family.group_size(settings)
    images = []
    for c in range(categories):
        for g in range(-(-per_category // group)):
            wanted = [i for i in range(g * group, (g + 1) * group) if i < per_category]
            for _, image, *_ in renderer.render_group(params[c], c, g, wanted):
                images.append(image.copy())
    return images[:count], renderer


def family_images(root: Path, count: int) -> dict[str, tuple[list[np.ndarray], bool]]:
    """name -> (images, two-level) for every family at its published render settings."""
    out = {}
    per = 10
    cats = -(-count // per)
    db2 = root / "fractal"
    search2 = fractal2d.SearchSettings(categories=cats)
    run_search(get_family("fractal"), search2, db2, 1, show_progress=False)
    params2 = load_database(db2).params
    for draw, name in (
        ("patch_gray", "FractalDB grey, 362 px 1-bit"),
        ("patch_color", "FractalDB colour, 362 px RGB"),
    ):
        settings = fractal2d.RenderSettings(draw=draw, instances=per)
        images, _ = _grouped(get_family("fractal"), settings, params2, count, cats, per)
        out[name] = (images, draw.endswith("_gray"))
    for type_, name in (("rcdb", "RCDB, 512 px grey"), ("visualatom", "VisualAtom, 512 px grey")):
        family = get_family(type_)
        db = root / name.split(",")[0]
        run_search(family, contour_base.SearchSettings(categories=cats), db, 1, show_progress=False)
        settings = family.RenderSettings(instances=per)
        out[name] = (
            _grouped(family, settings, load_database(db).params, count, cats, per)[0],
            False,
        )
    dbs = root / "segrcdb"
    run_search(get_family("segrcdb"), segrcdb.SearchSettings(), dbs, 1, show_progress=False)
    renderer = segrcdb.Renderer(segrcdb.RenderSettings(images=count))
    pairs = [renderer.render(load_database(dbs).params, k)[:2] for k in range(count)]
    out["SegRCDB image, 512 px grey"] = ([p[0].copy() for p in pairs], False)
    out["SegRCDB mask (lines), 512 px grey"] = ([p[1].copy() for p in pairs], False)
    db3 = root / "fractal3d"
    cats3 = -(-count // 60)
    search3 = fractal3d.SearchSettings(categories=cats3)
    run_search(get_family("fractal3d"), search3, db3, 1, show_progress=False)
    settings = fractal3d.RenderSettings(instances=60, models=5)
    params3 = load_database(db3).params
    images, _ = _grouped(get_family("fractal3d"), settings, params3, count, cats3, 60)
    out["3D, 224 px 1-bit"] = (images, True)
    return out


def measure(images: list[np.ndarray], two_level: bool) -> dict[str, tuple[float, float]]:
    """encoder -> (median ms per image, mean KB per image); every stream is checked by zlib."""
    times = {name: [] for name in ENCODERS}
    sizes = {name: [] for name in ENCODERS}
    for image in images:
        rows = _scanlines(image, two_level)
        expected = rows.tobytes()
        for name, encode in ENCODERS.items():
            start = time.perf_counter()
            stream = encode(rows)
            times[name].append(time.perf_counter() - start)
            sizes[name].append(len(stream))
            assert zlib.decompress(stream, -15) == expected, name
    return {
        name: (1e3 * statistics.median(times[name]), statistics.fmean(sizes[name]) / 1e3)
        for name in ENCODERS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="images per family [100]")
    args = parser.parse_args()
    fdgen_deflate(np.zeros(10, np.uint8))  # compile before timing
    with tempfile.TemporaryDirectory() as tmp:
        families = family_images(Path(tmp), args.images)
    names = list(ENCODERS)
    print("PNG DEFLATE per image: median ms / mean KB (raw DEFLATE stream)")
    print("| images | " + " | ".join(names) + " |")
    print("| --- " * (len(names) + 1) + "|")
    for family, (images, two_level) in families.items():
        result = measure(images, two_level)
        cells = [f"{ms:.2f} ms, {kb:.1f} KB" for ms, kb in (result[n] for n in names)]
        print(f"| {family} ({len(images)}) | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
