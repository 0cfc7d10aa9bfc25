"""Benchmark of 3D fractal rendering: images/s on one core at 224 px (MV-FractalDB settings).

Usage: python bench/fractal3d.py [--points N] [--repeats R] [--views fixed|random]

Prints the median over repeats of (a) rendering + PNG encoding in one process and (b) the
end-to-end ``render_dataset`` with one worker (tar shards written to a temporary folder).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fdgen.database import load_database
from fdgen.encode import encode_image
from fdgen.families import fractal3d as f3
from fdgen.families import get_family
from fdgen.rendering import render_dataset
from fdgen.searching import run_search


def kernel_rate(db, settings: f3.RenderSettings, groups: int) -> float:
    """Images per second for render_group + PNG encoding of ``groups`` groups per category."""
    renderer = f3.Renderer(settings)
    count = 0
    started = time.perf_counter()
    for c, params in enumerate(db.params):
        for g in range(groups):
            instances = list(range(g * 12, g * 12 + 12))
            for _, image, _ in renderer.render_group(params, c, g, instances):
                encode_image(image, "png", renderer.two_level_value)
                count += 1
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--views", default="fixed", choices=f3.VIEW_MODES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "db"
        search = f3.SearchSettings(categories=8)
        run_search(get_family("fractal3d"), search, out, workers=1, show_progress=False)
        db = load_database(out)
        settings = f3.RenderSettings(points=args.points, views=args.views, instances=120)
        kernel_rate(db, settings, 1)  # compile / warm up
        rates = [kernel_rate(db, settings, 5) for _ in range(args.repeats)]
        print(
            f"render + png, 224 px, {args.points:,} points, {args.views} views: "
            f"median {statistics.median(rates):,.0f} images/s on one core "
            f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})"
        )
        ends = []
        for k in range(args.repeats):
            m = render_dataset(db, settings, Path(tmp) / f"shards{k}", "png", 480, workers=1)
            ends.append(m["images_per_s"])
        print(
            f"end to end (render_dataset, 1 worker, {db.__len__() * settings.instances} images): "
            f"median {statistics.median(ends):,.0f} images/s "
            f"(runs: {', '.join(f'{r:,.0f}' for r in ends)})"
        )


if __name__ == "__main__":
    main()
