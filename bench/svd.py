"""Benchmark of SVD fractals and 1p-frac: images/s on one core (medians over repeats).

Usage: python bench/svd.py [--points N] [--size S] [--images N] [--repeats R]

For each mode, the median over repeats of (a) rendering alone and (b) rendering + PNG
encoding, one process, one thread, of ``--images`` instances spread over 8 categories.
"""

from __future__ import annotations

import argparse
import statistics
import time

from fdgen.encode import encode_image
from fdgen.families import get_family
from fdgen.families import svdfractal as sf


def rate(renderer, systems, images: int, encode: bool) -> float:
    """Images per second over ``images`` renders (and PNG encodes) of ``systems``."""
    started = time.perf_counter()
    for i in range(images):
        image, fields = renderer.render(systems[i % len(systems)], i % len(systems), i)
        if encode:
            two_level = sf.GRAY_VALUE if renderer.gray and not fields["blurred"] else None
            encode_image(image, "png", two_level)
    return images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    family = get_family("svdfractal")
    systems = [c.params for c in family.evaluate_candidates(family.SearchSettings(), (0, 8))]
    for draw in sf.DRAW_MODES:
        settings = sf.RenderSettings(size=args.size, points=args.points, draw=draw)
        renderer = sf.Renderer(settings)
        rate(renderer, systems, 8, True)  # compile / warm up
        for encode in (False, True):
            runs = [rate(renderer, systems, args.images, encode) for _ in range(args.repeats)]
            what = "render + png" if encode else "render only"
            print(
                f"svdfractal {draw:16s} {what:12s} {args.size} px, {args.points:,} points: "
                f"median {statistics.median(runs):,.0f} images/s on one core "
                f"(runs: {', '.join(f'{r:,.0f}' for r in runs)})"
            )


if __name__ == "__main__":
    main()
