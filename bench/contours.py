"""Benchmark of the contour families: images/s on one core at 512 px, published settings.

Run: ``PYTHONPATH=src python bench/contours.py [--categories 20] [--instances 5] [--repeats 3]``

For each type the categories are sampled with the published distributions (seed 0); every
timing renders ``categories x instances`` images (SegRCDB: that many images of 32 objects)
in this one process, so images/s is per core. Two figures: ``render`` (contours + drawing, the
array a shard writer receives) and ``+png`` (plus the PNG encoding the shards store; SegRCDB
includes its mask PNG). The median of ``--repeats`` runs is reported.

``--baseline`` also times a pure-Python re-enactment of the published scripts' inner loop
(per vertex: ``random.uniform`` and a C noise call for x and y, ``math.cos``/``math.sin``, one
Pillow ``draw.line`` per segment) on the same categories; the C noise call is stood in for by
``math.sin`` of the same argument (the ``noise`` package is not installed here).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

import numpy as np

from fdgen.encode import encode_image
from fdgen.families import get_family, segrcdb

TYPES = ("rcdb", "visualatom", "segrcdb")


def _render_jobs(type_: str, categories: int, instances: int, size: int):
    """A function that renders every image of one run (and, if asked, encodes it)."""
    family = get_family(type_)
    if type_ == "segrcdb":
        cats = [family.sample_category(0, k) for k in range(segrcdb.MAX_CLASSES)]
        renderer = family.renderer(family.RenderSettings(size=size, images=categories))

        def run(encode: bool) -> int:
            for k in range(categories * instances):
                image, mask, _ = renderer.render(cats, k)
                if encode:
                    encode_image(image, "png")
                    encode_image(mask, "png")
            return categories * instances

        return run
    cats = [family.sample_category(0, k) for k in range(categories)]
    renderer = family.renderer(family.RenderSettings(size=size, instances=instances))

    def run(encode: bool) -> int:
        for c, params in enumerate(cats):
            for i in range(instances):
                image = renderer.render(params, c, i)
                if encode:
                    encode_image(image, "png")
        return categories * instances

    return run


def _median_rate(run, repeats: int, **kw) -> tuple[float, float]:
    """Median images per wall-clock second and per CPU second of this process."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        images = run(**kw)
        wall.append(images / (time.perf_counter() - start))
        cpu.append(images / max(time.process_time() - start_cpu, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def python_loop_baseline(type_: str, categories: int, instances: int, size: int) -> float:
    """Images/s of the published algorithm written as the original's per-vertex Python loops."""
    from PIL import Image, ImageDraw

    family = get_family(type_)
    cats = [family.sample_category(0, k) for k in range(categories)]
    rnd = random.Random(1)
    start = time.perf_counter()
    for params in cats:
        n = params.vertices
        lines = params.contours if type_ == "rcdb" else params.orbits
        angle = 2 * math.pi / n
        for _ in range(instances):
            image = Image.new("RGB", (size, size), (0, 0, 0))
            draw = ImageDraw.Draw(image)
            xs = [math.cos(angle * v) * params.radius * params.oval_x for v in range(n)]
            ys = [math.sin(angle * v) * params.radius * params.oval_y for v in range(n)]
            xs.append(xs[0])
            ys.append(ys[0])
            for _ in range(lines):
                gray = rnd.randint(0, 255)
                nx = [math.sin(rnd.uniform(0, 10000)) * params.perlin for v in range(n)]
                ny = [math.sin(rnd.uniform(0, 10000)) * params.perlin for v in range(n)]
                for v in range(n):
                    xs[v] -= math.cos(angle * v) * (nx[v] - params.step)
                    ys[v] -= math.sin(angle * v) * (ny[v] - params.step)
                xs[n], ys[n] = xs[0], ys[0]
                for v in range(n):
                    draw.line((xs[v], ys[v], xs[v + 1], ys[v + 1]), fill=(gray,) * 3, width=1)
            image.save("/dev/null", format="PNG")
    return categories * instances / (time.perf_counter() - start)


def bench(
    categories: int = 20,
    instances: int = 5,
    repeats: int = 3,
    size: int = 512,
    types=tuple(TYPES),
    baseline: bool = False,
) -> dict:
    """Print and return images/s per core for each type (render only, and with PNG)."""
    results = {}
    print(f"contour families, {size} px, one process, median of {repeats} runs")
    print("images/s: per wall-clock second (per CPU second of this process)")
    print(f"{'type':12s} {'images':>7s} {'render':>18s} {'render+png':>18s}")
    for type_ in types:
        run = _render_jobs(type_, categories, instances, size)
        run(encode=True)  # compile and warm up
        render, render_cpu = _median_rate(run, repeats, encode=False)
        encoded, encoded_cpu = _median_rate(run, repeats, encode=True)
        results[type_] = {
            "render": render,
            "render_cpu": render_cpu,
            "png": encoded,
            "png_cpu": encoded_cpu,
        }
        print(
            f"{type_:12s} {categories * instances:7d} {render:8.1f} ({render_cpu:7.1f}) "
            f"{encoded:8.1f} ({encoded_cpu:7.1f})"
        )
    if baseline:
        for type_ in ("rcdb", "visualatom"):
            start_cpu = time.process_time()
            count = max(2, categories // 4)
            rate = python_loop_baseline(type_, count, 1, size)
            cpu_rate = count / (time.process_time() - start_cpu)
            results[type_]["python_loop"] = rate
            print(f"{type_:12s} published-style Python loop: {rate:.2f} ({cpu_rate:.2f}) images/s")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", type=int, default=20)
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--types", default=",".join(TYPES))
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()
    np.seterr(all="ignore")
    bench(
        args.categories, args.instances, args.repeats, args.size, args.types.split(","),
        args.baseline,
    )  # fmt: skip


if __name__ == "__main__":
    main()
