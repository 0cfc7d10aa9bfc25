"""Benchmark of SVD fractals and 1p-frac: images/s on one core (medians over repeats).

Usage: python bench/svd.py [--points N] [--size S] [--images N] [--repeats R]

For each mode, the median over repeats of (a) rendering alone and (b) rendering + PNG
encoding, one process, one thread, of ``--images`` instances spread over 8 categories; per
wall-clock second and per second of CPU time of the process (on a shared machine the CPU
rate is the steadier one: it does not count the time other processes hold the core).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import cv2

from fdgen.encode import encode_image
from fdgen.families import get_family
from fdgen.families import svdfractal as sf


def rate(renderer, systems, images: int, encode: bool) -> tuple[float, float]:
    """Images per wall-clock second and per CPU second over ``images`` renders (and PNG
    encodes) of ``systems``."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(images):
        image, fields = renderer.render(systems[i % len(systems)], i % len(systems), i)
        if encode:
            two_level = sf.GRAY_VALUE if renderer.gray and not fields["blurred"] else None
            encode_image(image, "png", two_level)
    cpu = max(time.process_time() - cpu_started, 1e-9)
    return images / (time.perf_counter() - started), images / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core: OpenCV's blur would otherwise use its thread pool
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"svdfractal: load average {load} on {os.cpu_count()} cores")
    family = get_family("svdfractal")
    systems = [c.params for c in family.evaluate_candidates(family.SearchSettings(), (0, 8))]
    for draw in sf.DRAW_MODES:
        settings = sf.RenderSettings(size=args.size, points=args.points, draw=draw)
        renderer = sf.Renderer(settings)
        rate(renderer, systems, 8, True)  # compile / warm up
        for encode in (False, True):
            runs = [rate(renderer, systems, args.images, encode) for _ in range(args.repeats)]
            wall, cpu = ([run[k] for run in runs] for k in (0, 1))
            what = "render + png" if encode else "render only"
            print(
                f"svdfractal {draw:16s} {what:12s} {args.size} px, {args.points:,} points: "
                f"median {statistics.median(wall):,.0f} images/s on one core "
                f"(runs: {', '.join(f'{r:,.0f}' for r in wall)}), "
                f"{statistics.median(cpu):,.0f} per CPU second"
            )


if __name__ == "__main__":
    main()
