"""Benchmark of PC-FractalDB detection scenes: scenes/s on one core (published settings).

Usage: python bench/pcscenes.py [--scenes N] [--repeats R] [--points P] [--mix-points M]

Prints the median over repeats of (a) rendering scenes + encoding their members in one
process (layout, orbits, fitting, ``.npy``/``.json`` bytes) and (b) the end-to-end
``render_dataset`` with one worker (tar shards written to a temporary folder).
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
from fdgen.families import pcscenes as ps
from fdgen.families.base import Group
from fdgen.rendering import render_dataset
from fdgen.searching import run_search


def kernel_rate(db, settings: ps.RenderSettings, scenes: int, first: int) -> tuple[float, int]:
    """(scenes per second, points written) of render_group + member encoding."""
    family = get_family("pcscenes")
    renderer = family.renderer(settings)
    points = 0
    started = time.perf_counter()
    group = Group(0, 0, range(first, first + scenes), list(db.params))
    for sample in family.render_group(renderer, group, "png"):
        points += len(sample.payload)
        sample.encoded()
    return scenes / (time.perf_counter() - started), points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--points", type=int, default=8000)
    parser.add_argument("--mix-points", type=int, default=2001)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "db"
        search = f3.SearchSettings(categories=16)
        run_search(get_family("pcscenes"), search, out, workers=1, show_progress=False)
        db = load_database(out)
        settings = ps.RenderSettings(
            images=args.scenes, points=args.points, mix_points=args.mix_points
        )
        kernel_rate(db, settings, 2, 0)  # compile / warm up
        runs = [
            kernel_rate(db, settings, args.scenes, k * args.scenes) for k in range(args.repeats)
        ]
        rates = [rate for rate, _ in runs]
        per_scene = sum(points for _, points in runs) / (args.scenes * args.repeats)
        print(
            f"scenes, {args.points:,} + {args.mix_points:,} points per object "
            f"({per_scene:,.0f} points per scene): median {statistics.median(rates):,.1f} "
            f"scenes/s on one core (runs: {', '.join(f'{r:,.1f}' for r in rates)})"
        )
        ends = []
        for k in range(args.repeats):
            m = render_dataset(db, settings, Path(tmp) / f"shards{k}", "png", 20, workers=1)
            ends.append(m["images_per_s"])
        print(
            f"end to end (render_dataset, 1 worker, {args.scenes} scenes): "
            f"median {statistics.median(ends):,.1f} scenes/s "
            f"(runs: {', '.join(f'{r:,.1f}' for r in ends)})"
        )


if __name__ == "__main__":
    main()
