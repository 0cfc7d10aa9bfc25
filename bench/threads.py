"""What threads in one process gain: the GIL during a kernel, and shards/s by thread count.

Run: ``PYTHONPATH=src python bench/threads.py [--categories 8] [--workers 2] [--repeats 3]``

1. GIL probe: one thread runs a 20M-point orbit kernel while the main thread spins; the
   longest stretch in which the main thread could not run is printed beside the kernel's time.
   fdgen's numba kernels are compiled without ``nogil``, so the two are about equal.
2. Shards of published FractalDB-1k categories (default render settings, 100 instances, 100
   samples per shard) rendered one after another, by ``--workers`` threads, and by
   ``--workers`` processes (joblib/loky); median wall time of ``--repeats`` runs, side by side.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from fdgen.database import load_database
from fdgen.families import fractal2d
from fdgen.kernels import ifs
from fdgen.kernels.rng import sample_state
from fdgen.rendering import render_shard, shard_plan, shard_task

FIXTURES = Path(__file__).resolve().parents[2] / "shared/fixtures/fractaldb-1k-categories"


def gil_probe(params: np.ndarray, points: int = 20_000_000) -> tuple[float, float]:
    """(kernel seconds, longest main-thread stall in seconds) for one orbit in a thread."""
    xs, ys, masks = np.empty(points), np.empty(points), np.empty(points, np.uint16)
    maps, cum = np.ascontiguousarray(params[:, :6]), np.cumsum(params[:, 6])

    def orbit():
        ifs.orbit_with_masks(maps, cum, sample_state(0, 0, 0), xs, ys, masks)

    orbit()  # compile / load the cache
    span, done, stamps = [], threading.Event(), []

    def timed():
        start = time.perf_counter()
        orbit()
        span.extend((start, time.perf_counter()))
        done.set()

    thread = threading.Thread(target=timed)
    thread.start()
    while not done.is_set():
        stamps.append(time.perf_counter())
    thread.join()
    start, end = span
    inside = [start, *(s for s in stamps if start <= s <= end), end]
    return end - start, float(np.diff(inside).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db_dir = Path(tmp) / "db"
        db_dir.mkdir()
        for k in range(args.categories):
            shutil.copy(FIXTURES / f"{k:05d}.csv", db_dir)
        db = load_database(db_dir)
        kernel_s, stall_s = gil_probe(db.params[0])
        print(f"GIL probe: orbit kernel {kernel_s:.3f} s, main thread stalled {stall_s:.3f} s")
        settings = fractal2d.RenderSettings(instances=100)
        plan = shard_plan(db, settings, 100)
        n = args.workers

        def run(mode: str) -> float:
            out = Path(tempfile.mkdtemp(dir=tmp))
            tasks = [shard_task(db, fractal2d, settings, "png", plan, j, str(out)) for j in
                     range(plan.num_shards)]  # fmt: skip
            start = time.perf_counter()
            if mode == "sequential":
                for task in tasks:
                    render_shard(task)
            elif mode == "threads":
                with ThreadPoolExecutor(n) as pool:
                    list(pool.map(render_shard, tasks))
            else:
                Parallel(n_jobs=n)(delayed(render_shard)(task) for task in tasks)
            elapsed = time.perf_counter() - start
            shutil.rmtree(out)
            return elapsed

        modes = ["sequential", "threads", "processes"]
        for mode in modes:
            run(mode)  # warm-up: numba cache, loky workers
        times = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode in modes:
                times[mode].append(run(mode))
        images = plan.num_samples
        print(f"{plan.num_shards} shards, {images} images (362 px, 200k points, patch_gray)")
        for mode in modes:
            median = statistics.median(times[mode])
            label = mode if mode == "sequential" else f"{n} {mode}"
            print(f"  {label:12s} median {median:.3f} s  {images / median:7,.0f} img/s")


if __name__ == "__main__":
    main()
