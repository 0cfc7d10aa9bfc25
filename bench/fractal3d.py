"""Benchmark of the 3D fractal families on one core: MV-FractalDB images (fractal3d),
VG-FractalDB image + cloud pairs (vgfractal) and PC-FractalDB FractalNoiseMix clouds
(pcfractal), at their published/default settings.

Usage: python bench/fractal3d.py [--family all|fractal3d|vgfractal|pcfractal] [--points N]
       [--repeats R] [--views fixed|random]

For each family prints the median over repeats of (a) rendering + encoding every member
(PNG, npy) in one process and (b) the end-to-end ``render_dataset`` with one worker (tar
shards written to a temporary folder), in samples per second.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fdgen.database import load_database
from fdgen.families import fractal3d as f3
from fdgen.families import get_family
from fdgen.families import pcfractal as pc
from fdgen.families import vgfractal as vg
from fdgen.families.base import Group
from fdgen.rendering import render_dataset
from fdgen.searching import run_search

FAMILIES = ("fractal3d", "vgfractal", "pcfractal")
WHAT = {"fractal3d": "images", "vgfractal": "image + cloud pairs", "pcfractal": "clouds"}


def settings_of(family: str, args) -> object:
    if family == "fractal3d":
        return f3.RenderSettings(points=args.points, views=args.views, instances=120)
    if family == "vgfractal":
        return vg.RenderSettings(points=args.points, views=args.views, instances=120)
    return pc.RenderSettings(instances=60)


def kernel_rate(family: str, db, settings, groups: int) -> float:
    """Samples per second: ``render_group`` and every member's encoding, ``groups`` groups of
    each category (the group size of the family: 12 views of a model, or one cloud)."""
    fam = get_family(family)
    renderer = fam.renderer(settings)
    size = fam.group_size(settings)
    count = 0
    started = time.perf_counter()
    for c in range(len(db)):
        inputs = fam.unit_input(db, c)
        for g in range(groups):
            group = Group(c, g, list(range(g * size, g * size + size)), *inputs)
            for sample in fam.render_group(renderer, group, "png"):
                sample.encoded()
                count += 1
    return count / (time.perf_counter() - started)


def bench(family: str, db_path: Path, tmp: Path, args) -> None:
    db = load_database(db_path)
    settings = settings_of(family, args)
    groups = 5 if get_family(family).group_size(settings) > 1 else 60
    kernel_rate(family, db, settings, 1)  # compile / warm up
    rates = [kernel_rate(family, db, settings, groups) for _ in range(args.repeats)]
    detail = (
        "10,001 points"
        if family == "pcfractal"
        else f"224 px, {args.points:,} points, {args.views} views"
    )
    print(
        f"{family} render + encode ({detail}): median {statistics.median(rates):,.0f} "
        f"{WHAT[family]}/s on one core (runs: {', '.join(f'{r:,.0f}' for r in rates)})"
    )
    ends = []
    for k in range(args.repeats):
        out = tmp / f"{family}-shards{k}"
        manifest = render_dataset(db, settings, out, "png", 480, workers=1)
        ends.append(manifest["images_per_s"])
    print(
        f"{family} end to end (render_dataset, 1 worker, {len(db) * settings.instances} "
        f"samples): median {statistics.median(ends):,.0f} {WHAT[family]}/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in ends)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--family", default="all", choices=("all", *FAMILIES))
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--views", default="fixed", choices=f3.VIEW_MODES)
    args = parser.parse_args()
    families = FAMILIES if args.family == "all" else (args.family,)
    with tempfile.TemporaryDirectory() as tmp:
        for family in families:
            out = Path(tmp) / f"db-{family}"
            search = f3.SearchSettings(categories=8)
            run_search(get_family(family), search, out, workers=1, show_progress=False)
            bench(family, out, Path(tmp), args)


if __name__ == "__main__":
    main()
