"""Benchmark of Video Perlin Noise: clips/s and frames/s on one core (medians over repeats).

Usage: python bench/videoperlin.py [--size S] [--frames T] [--octaves O] [--clips N] [--repeats R]

For each payload, the median over repeats of (a) rendering the clip alone, (b) rendering +
``.npy`` bytes and (c) rendering + ``.mp4`` (OpenCV's mp4v writer through a temporary file),
one process, of ``--clips`` clips spread over the first 8 classes of the preset's grid.
"""

from __future__ import annotations

import argparse
import statistics
import time

from fdgen.families import videoperlin as vp
from fdgen.families.base import npy_bytes

ENCODERS = {"render only": None, "render + npy": npy_bytes, "render + mp4": vp.encode_mp4}


def rate(renderer: vp.Renderer, classes, clips: int, encode) -> float:
    """Clips per second over ``clips`` renders (and encodes)."""
    started = time.perf_counter()
    for i in range(clips):
        clip = renderer.clip(classes[i % len(classes)], i % len(classes), i)
        if encode is not None:
            encode(clip)
    return clips / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--octaves", type=int, default=1)
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    grid = vp.SearchSettings().grid()
    classes = [grid[k * len(grid) // 8] for k in range(8)]  # spread over the grid
    settings = vp.RenderSettings(size=args.size, frames=args.frames, octaves=args.octaves)
    renderer = vp.Renderer(settings)
    for what, encode in ENCODERS.items():
        rate(renderer, classes, 4, encode)  # compile / warm up
        runs = [rate(renderer, classes, args.clips, encode) for _ in range(args.repeats)]
        median = statistics.median(runs)
        print(
            f"videoperlin {what:13s} {args.frames} x {args.size} px, {args.octaves} octave(s): "
            f"median {median:,.1f} clips/s = {median * args.frames:,.0f} frames/s on one core "
            f"(runs: {', '.join(f'{r:,.1f}' for r in runs)})"
        )


if __name__ == "__main__":
    main()
