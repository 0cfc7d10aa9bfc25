"""fdgen benchmark: FractalDB render and search speed, scaling, memory, compile time.

Run with ``make bench`` (about three minutes on 2 cores). Prints medians over repeated runs
at the recommended settings (362 px, 200,000 points, patch_gray, delta 0.4, PNG).

    python bench/bench.py                   # the standard figures
    python bench/bench.py --slice 0.1       # also FractalDB-1k: 100 categories x 1,000 images
    python bench/bench.py --slice 1         # the whole FractalDB-1k (1,000,000 images)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import naive
import numba
import numpy as np

from fdgen.database import load_database
from fdgen.encode import two_level_png_rows
from fdgen.families import fractal2d, get_family
from fdgen.kernels import ifs
from fdgen.kernels.rng import sample_state
from fdgen.output import ShardFolder, WebDatasetWriter
from fdgen.rendering import render_dataset
from fdgen.searching import run_search

RECOMMENDED = fractal2d.RenderSettings()


def median_of(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu}, {cores} cores, Python {platform.python_version()}, numpy {np.__version__}, "
        f"numba {numba.__version__}, OpenCV {cv2.__version__}; load average {load}"
    )


def make_database(root: Path, categories: int) -> Path:
    """The first ``categories`` FractalDB-1k categories, from fdgen's legacy search."""
    out = root / f"db{categories}"
    settings = fractal2d.SearchSettings(categories=categories, seed=1, rng="legacy")
    run_search(get_family("fractal"), settings, out, workers=2, show_progress=False)
    return out


def _variants(db_path: Path) -> tuple:
    db = load_database(db_path)
    return db, [(c, v) for c in range(min(len(db), 10)) for v in (0, 6, 13, 24)]


def fdgen_stages(db_path: Path) -> dict:
    """fdgen's render stages on the bench's variants: name -> (function, images it makes)."""
    db, variants = _variants(db_path)
    renderer = fractal2d.Renderer(RECOMMENDED)
    s = RECOMMENDED
    weights = fractal2d.weight_table(s.weight_delta)
    prepared = []
    for c, v in variants:
        p = db.params[c]
        maps = np.ascontiguousarray(p[:, :6] * weights[v % 25])
        prepared.append((maps, np.cumsum(p[:, 6]), sample_state(s.seed, c, v)))
    xs, ys, masks = renderer.xs, renderer.ys, renderer.masks
    kept_list = []

    def orbit():
        kept_list.clear()
        for maps, cum, state in prepared:
            kept_list.append(ifs.orbit_with_masks(maps, cum, state, xs, ys, masks)[0])

    def raster():
        cols, rows, words = renderer.cols, renderer.rows, renderer.words
        for kept in kept_list:
            ifs.draw_patches_bits(xs, ys, masks, kept, s.size, s.pad, cols, rows, words)
            ifs.unpack_bits(words, s.size, 127, renderer.image[:, :, 0])

    words = []
    for c, v in variants:
        renderer.render_variant(db.params[c], c, v)
        words.append(renderer.words.copy())
    encoded: list[bytes] = []

    def encode():
        encoded.clear()
        for w in words:
            for flip in range(4):
                ifs.png_rows_from_bits(w, s.size, flip, renderer.png_rows)
                encoded.append(two_level_png_rows(renderer.png_rows, s.size, 127))

    tmp = db_path.parent / "stage-tar"  # inside the bench's folder, removed with it
    tmp.mkdir(exist_ok=True)

    def tar_write():
        writer = WebDatasetWriter(ShardFolder(tmp), 0)
        for k, data in enumerate(encoded):
            meta = json.dumps({"category": k, "instance": k}).encode()
            writer.add(f"c{k:06d}_i{k:06d}", {"png": data, "cls": b"1", "json": meta})
        writer.commit()

    images = 4 * len(prepared)
    stages = {"orbit": orbit, "raster": raster, "encode": encode, "tar": tar_write}
    return {name: (fn, images) for name, fn in stages.items()}, encoded


def naive_stages(db_path: Path) -> dict:
    """The naive port's stages on the same variants: name -> (function, images it makes)."""
    db, variants = _variants(db_path)
    s = RECOMMENDED
    weights = fractal2d.weight_table(s.weight_delta)
    prepared = []
    for c, v in variants:
        p = db.params[c]
        prepared.append((np.ascontiguousarray(p[:, :6] * weights[v]), np.cumsum(p[:, 6])))
    orbits: list = []

    def orbit():
        orbits.clear()
        for seed, (maps, cum) in enumerate(prepared):
            xs, ys = naive.orbit(maps, cum, s.points, seed)
            orbits.append((naive.to_pixels(xs, s.size, s.pad), naive.to_pixels(ys, s.size, s.pad)))

    images: list = []

    def raster():
        images.clear()
        for seed, (px, py) in enumerate(orbits):
            image = np.zeros((s.size, s.size), np.uint8)
            naive.paste_patches(px, py, image, 127, seed)
            images.append(image)

    def encode():
        for image in images:
            up = cv2.flip(image, 0)
            for f in (up, image, cv2.flip(up, 1), cv2.flip(image, 1)):
                cv2.imencode(".png", f)

    n = 4 * len(prepared)
    return {"orbit": (orbit, n), "raster": (raster, n), "encode": (encode, n)}


STAGES = ("orbit", "raster", "encode", "tar")


def side_by_side(db_path: Path, repeats: int) -> tuple[dict, dict, float]:
    """Per-image milliseconds of each stage, naive port and fdgen, one process: the two run
    alternately, stage by stage, so that a shared machine's load hits both alike. Returns
    the naive port's and fdgen's medians (the naive port's tar write is fdgen's: the same
    writer) and the mean PNG size in KiB."""
    ours, encoded = fdgen_stages(db_path)
    theirs = naive_stages(db_path)
    times: dict = {(who, k): [] for who in ("naive", "fdgen") for k in STAGES}
    for round_ in range(repeats + 1):  # round 0 warms up
        for key in STAGES:
            for who, stages in (("naive", theirs), ("fdgen", ours)):
                if key not in stages:
                    continue
                fn, images = stages[key]
                start = time.perf_counter()
                fn()
                if round_:
                    times[who, key].append(1e3 * (time.perf_counter() - start) / images)
    med = {key: statistics.median(t) for key, t in times.items() if t}
    b = {k + "_ms": med["fdgen", k] for k in STAGES}
    n = {k + "_ms": med.get(("naive", k), med["fdgen", k]) for k in STAGES}
    for d in (n, b):
        d["sum_ms"] = sum(d[k + "_ms"] for k in STAGES)
    return n, b, statistics.mean(len(e) for e in encoded) / 1024


def naive_search_ms(candidates: int, repeats: int) -> float:
    """Milliseconds per candidate of the naive port's search (one core, defaults)."""
    search = fractal2d.SearchSettings()

    def run():
        rs = np.random.RandomState(1)
        for _ in range(candidates):
            naive.search_candidate(rs, search.points, search.size, search.pad)

    return 1e3 * median_of(run, repeats) / candidates


def render_throughput(db_path: Path, root: Path, workers: int, instances: int, repeats: int):
    """Median images/s of render_dataset end to end (plan, render, encode, tar, sidecars)."""
    db = load_database(db_path)
    settings = fractal2d.RenderSettings(instances=instances)
    out = root / f"shards-w{workers}"
    rates = []
    for _ in range(repeats + 1):
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        render_dataset(db, settings, out, "png", 200, workers, force=True)
        rates.append(len(db) * instances / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def search_throughput(workers: int, candidates: int, repeats: int) -> float:
    """Median candidates/s of the parallel search driver (default stream, defaults)."""
    rates = []
    for rep in range(repeats + 1):
        with tempfile.TemporaryDirectory() as tmp:
            # fill_rate 1 is never reached: the search runs until stopped by the candidate cap.
            settings = fractal2d.SearchSettings(categories=1, seed=rep, fill_rate=0.38)
            start = time.perf_counter()
            run_capped_search(settings, Path(tmp), workers, candidates)
            rates.append(candidates / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def run_capped_search(settings, out: Path, workers: int, candidates: int) -> None:
    """Evaluate exactly ``candidates`` candidates through joblib, as the search driver does."""
    from joblib import Parallel, delayed

    from fdgen.searching import BATCH

    specs = [("default", k, BATCH) for k in range(0, candidates, BATCH)]
    Parallel(n_jobs=workers)(delayed(fractal2d.evaluate_candidates)(settings, s) for s in specs)


def worker_peak_rss_mb() -> list[float]:
    """Peak resident memory (VmHWM) of this process's live joblib/loky worker processes."""
    peaks = []
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"loky" not in cmdline or b"resource_tracker" in cmdline:
                    continue
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM"):
                        peaks.append(int(line.split()[1]) / 1024)
            except OSError:
                pass
    return peaks


def parent_peak_rss_mb(db_path: Path, root: Path, instances: int) -> float:
    """Peak RSS of a fresh process rendering the database with 2 workers."""
    code = (
        "import resource,sys;from pathlib import Path;"
        "from fdgen.database import load_database;from fdgen.families import fractal2d;"
        "from fdgen.rendering import render_dataset;"
        f"db=load_database(Path({str(db_path)!r}));"
        f"s=fractal2d.RenderSettings(instances={instances},points=20000);"
        f"render_dataset(db,s,Path({str(root)!r})/'mem{instances}','png',500,2,force=True);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def compile_seconds(cache_dir: Path) -> tuple[float, float]:
    """Seconds to import fdgen and render one image + search one candidate: cold, then warm."""
    code = (
        "import time;t=time.perf_counter();"
        "import numpy as np;from fdgen.families import fractal2d as f;"
        "r=f.Renderer(f.RenderSettings(points=1000));"
        "p=np.array([[0.5,0,0,0.5,0,0,0.5],[0.5,0,0,0.5,0.5,0.5,0.5]]);"
        "list(r.render_group(p,0,0,[0,1,2,3]));"
        "f.evaluate_candidates(f.SearchSettings(points=1000,size=64,fill_rate=0.1),"
        "('default',0,1));"
        "print(time.perf_counter()-t)"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    times = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return times[0], times[1]


def first_run(db_path: Path, root: Path, instances: int = 40) -> dict:
    """Wall seconds of ``fdgen render`` (2 workers) on fresh numba caches, as on a fresh clone:
    without the install-time warm-up (every worker compiles), and after it (its own time, then
    the first render and a second, warm one)."""
    cli = "import sys;from fdgen.cli import main;sys.exit(main(sys.argv[1:]))"
    render = [sys.executable, "-c", cli, "render", "--db", str(db_path), "--instances"]
    shards = root / "first-run"
    render += [str(instances), "--workers", "2", "--shards", str(shards)]

    def timed(command: list[str], cache: Path) -> float:
        env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
        shutil.rmtree(shards, ignore_errors=True)  # each run renders every shard: a rerun into
        # a finished folder would only check it
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env)
        return time.perf_counter() - start

    out = {"no_warmup": timed(render, root / "cache-cold")}
    cache = root / "cache-warmed"
    out["warmup"] = timed([sys.executable, "-m", "fdgen.warmup"], cache)
    out["first"] = timed(render, cache)
    out["warm"] = timed(render, cache)
    return out


def startup_seconds(db_path: Path, root: Path, repeats: int) -> tuple[float, float, float]:
    """Median wall seconds of fresh processes: ``fdgen render --help``, ``fdgen render`` of 4 images
    (one variant, one worker) and the naive port rendering the same 4 images to PNG files."""
    one = root / "one-category"
    one.mkdir(exist_ok=True)
    first = sorted((db_path / "categories").glob("*.csv"))[0]
    shutil.copy(first, one / "00000.csv")
    cli = "import sys;from fdgen.cli import main;sys.exit(main(sys.argv[1:]))"
    render = [sys.executable, "-c", cli, "render", "--db", str(one), "--instances", "4"]
    shards = root / "start-shards"
    render += ["--workers", "1", "--shards", str(shards)]
    port = (
        "from pathlib import Path;import naive;from fdgen.families import fractal2d as f;"
        f"p=f.read_category(Path({str(one / '00000.csv')!r}));w=f.weight_table(0.4);"
        f"[Path({str(root)!r},f'n{{k}}.png').write_bytes(b) for k,b in "
        "enumerate(naive.render_variant(p,w[0],362,6,200000,0))]"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent)] + sys.path)}
    commands = [[sys.executable, "-c", cli, "render", "--help"], render]
    commands.append([sys.executable, "-c", port])
    times: list[list[float]] = [[], [], []]
    for _ in range(repeats + 1):  # the first round fills numba's cache for the naive port
        for k, command in enumerate(commands):
            shutil.rmtree(shards, ignore_errors=True)  # fdgen renders its 4 images every time
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True, env=env)
            times[k].append(time.perf_counter() - start)
    help_s, render_s, port_s = (statistics.median(t[1:]) for t in times)
    return help_s, render_s, port_s


def fractaldb_slice(root: Path, fraction: float) -> None:
    """Render a slice of FractalDB-1k (all 1,000 instances of the first categories)."""
    categories = max(1, round(1000 * fraction))
    start = time.perf_counter()
    db_path = make_database(root, categories)
    search_s = time.perf_counter() - start
    db = load_database(db_path)
    out = root / "fractaldb-slice"
    start = time.perf_counter()
    manifest = render_dataset(db, RECOMMENDED, out, "png", 5000, 2, force=True)
    elapsed = time.perf_counter() - start
    images = manifest["num_samples"]
    size = manifest["bytes"]
    print(f"\nFractalDB-1k slice: {categories} categories x 1,000 images, 2 workers")
    print(f"  legacy search      {search_s:8.1f} s")
    print(f"  wall time          {elapsed:8.1f} s   ({images / elapsed:,.0f} images/s)")
    print(f"  disk               {size / 2**20:8.1f} MiB ({size / images / 1024:.1f} KiB/image)")
    print(f"  diverged images    {manifest['diverged']:8d}   ({manifest['diverged'] / images:.2%})")
    if categories < 1000:
        print(
            f"  extrapolated 1k    {elapsed * 1000 / categories / 60:8.1f} min, "
            f"{size * 1000 / categories / 2**30:.1f} GiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per median [3]")
    parser.add_argument("--slice", type=float, default=0.0, help="FractalDB-1k fraction [0]")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fdgen-bench-"))
    try:
        print(f"machine: {machine()}")
        cold, warm = compile_seconds(root / "numba-cache")
        print(
            f"numba: import + first image + first candidate {cold:.1f} s on a cold cache, "
            f"{warm:.1f} s cached"
        )
        db_path = make_database(root, 8)

        n, b, png_kb = side_by_side(db_path, 2 * args.repeats + 1)
        print("\nrender stages, ms per image (one core; the 4 flips share one orbit and raster)")
        print("           naive port   fdgen")
        for key in ("orbit", "raster", "encode", "tar", "sum"):
            print(f"  {key:8s} {n[key + '_ms']:9.3f} {b[key + '_ms']:9.3f}")
        print(
            f"  images/s per core: naive port {1e3 / n['sum_ms']:,.0f}, fdgen "
            f"{1e3 / b['sum_ms']:,.0f} -> {n['sum_ms'] / b['sum_ms']:.2f}x "
            f"(PNG {png_kb:.1f} KiB)"
        )
        help_s, render_s, port_s = startup_seconds(db_path, root, args.repeats)
        print(
            f"  start-up, fresh process: fdgen render --help {help_s:.2f} s; 4 images: "
            f"fdgen render {render_s:.2f} s, naive port {port_s:.2f} s"
        )

        fr = first_run(db_path, root)
        images = 40 * len(load_database(db_path))
        print(
            f"\nfirst run on a fresh numba cache, {images} images, 2 workers: no warm-up "
            f"{fr['no_warmup']:.1f} s; warm-up (make install) {fr['warmup']:.1f} s, then the "
            f"first render {fr['first']:.1f} s vs warm {fr['warm']:.1f} s "
            f"({fr['first'] / fr['warm'] - 1:+.0%})"
        )

        r1 = render_throughput(db_path, root, 1, 100, args.repeats)
        r2 = render_throughput(db_path, root, 2, 100, args.repeats)
        peaks = worker_peak_rss_mb()
        print("\nrender end to end (8 categories x 100 images, 200 per shard)")
        print(f"  1 worker   {r1:8,.0f} images/s")
        print(
            f"  2 workers  {r2:8,.0f} images/s  -> {r2 / 2:,.0f} per core, "
            f"efficiency {r2 / (2 * r1):.0%}"
        )
        print(f"  peak RSS per worker {', '.join(f'{p:.0f}' for p in peaks)} MB")
        small = parent_peak_rss_mb(db_path, root, 50)
        large = parent_peak_rss_mb(db_path, root, 400)
        print(f"  parent peak RSS: {small:.0f} MB for 400 images, {large:.0f} MB for 3,200")

        per_cand = (
            median_of(
                lambda: fractal2d.evaluate_candidates(
                    fractal2d.SearchSettings(), ("default", 0, 256)
                ),
                args.repeats,
            )
            / 256
        )
        legacy_settings = fractal2d.SearchSettings(rng="legacy", seed=1)
        specs = fractal2d.candidate_specs(legacy_settings, 0, None, 256)
        spec, _ = next(specs)
        per_legacy = (
            median_of(lambda: fractal2d.evaluate_candidates(legacy_settings, spec), args.repeats)
            / 256
        )
        s1 = search_throughput(1, 2048, args.repeats)
        s2 = search_throughput(2, 4096, args.repeats)
        per_naive = naive_search_ms(64, args.repeats)
        print("\nsearch (100,000 points, 512 px test raster)")
        print(
            f"  naive port      {per_naive:6.3f} ms per candidate (one core) -> fdgen "
            f"{per_naive / (1e3 * per_cand):.2f}x"
        )
        print(f"  default stream  {1e3 * per_cand:6.3f} ms per candidate (one core)")
        print(
            f"  legacy stream   {1e3 * per_legacy:6.3f} ms per candidate in the worker "
            f"(plus the parent's walk of the one stream)"
        )
        print(
            f"  driver: 1 worker {s1:,.0f}/s, 2 workers {s2:,.0f}/s, efficiency {s2 / (2 * s1):.0%}"
        )
        if args.slice > 0:
            fractaldb_slice(root, args.slice)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
