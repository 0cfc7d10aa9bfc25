"""fdgen at cluster scale: the cost of one SLURM array task on a 21,000-category database.

Builds (once, under ``--cache``) an RCDB-21k database (``fdgen search --preset RCDB-21k``)
and a 21,000-category 3D database with the ExFractalDB-21k settings (a short search with the
preset, its category files repeated to 21,000: a full 3D search takes hours and the cost
measured here does not depend on which parameters a category holds). Then, each in a fresh
process, ``--repeats`` times, medians of wall time and peak RSS:

* ``load``: ``fdgen.load_database`` plus the database digest;
* ``task``: ``fdgen render`` of one shard of 42,000 (``--samples-per-shard 500``, 3D: 504,
  ``--num-shards 42000 --shard-index 0``, one worker), into a fresh folder;
* ``status``: ``fdgen status`` of that folder (one shard of 42,000 complete);
* ``dry-run``: ``fdgen render --dry-run --num-shards 4200`` (its shard count is checked).

    python bench/scale.py                   # both databases, 3 repeats
    python bench/scale.py --only rcdb --repeats 5
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

FDGEN = [sys.executable, "-c", "import sys; from fdgen.cli import main; sys.exit(main())"]
# Samples per shard that make 42,000 shards: RCDB renders single instances, the 3D family
# groups of 12 views (84 groups per category, 42 to a shard).
PER_SHARD = {"RCDB-21k": 500, "ExFractalDB-21k": 504}


def measured(args: list[str]) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, output) of one fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    output = proc.stdout.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(args)}\n{output}")
    return wall, usage.ru_maxrss / 1024, output


def fdgen(*args: str) -> tuple[float, float, str]:
    return measured([*FDGEN, *args])


def rcdb_database(cache: Path) -> Path:
    db = cache / "RCDB-21k"
    if not (db / "db.yaml").exists():
        shutil.rmtree(db, ignore_errors=True)
        fdgen("search", "--preset", "RCDB-21k", "--out", str(db))
    return db


def fractal3d_database(cache: Path) -> Path:
    db = cache / "ExFractalDB-21k-repeated"
    if (db / "db.yaml").exists():
        return db
    seed = cache / "ExFractalDB-21k-seed"
    shutil.rmtree(seed, ignore_errors=True)
    shutil.rmtree(db, ignore_errors=True)
    fdgen("search", "--preset", "ExFractalDB-21k", "--categories", "100", "--out", str(seed))
    sources = sorted((seed / "categories").iterdir())
    (db / "categories").mkdir(parents=True)
    for k in range(21000):
        shutil.copyfile(sources[k % len(sources)], db / "categories" / f"{k:05d}.csv")
    meta = (seed / "db.yaml").read_text()
    meta = re.sub(r"(?m)^categories: \d+", "categories: 21000", meta)
    (db / "db.yaml").write_text(meta)
    return db


def bench(name: str, db: Path, cache: Path, repeats: int) -> None:
    load = [sys.executable, "-c", f"import fdgen; fdgen.load_database({str(db)!r}).digest()"]
    rows: dict[str, list[tuple[float, float]]] = {"load": [], "task": [], "status": []}
    rows["dry-run"] = []
    shards = 0
    per_shard = str(PER_SHARD[name])
    task = ["--samples-per-shard", per_shard, "--num-shards", "42000", "--workers", "1"]
    for _ in range(repeats):
        rows["load"].append(measured(load)[:2])
        out = cache / f"{name}-shards"
        shutil.rmtree(out, ignore_errors=True)
        rows["task"].append(fdgen("render", "--db", str(db), "--shards", str(out), *task)[:2])
        rows["status"].append(fdgen("status", str(out))[:2])
        wall, rss, text = fdgen("render", "--db", str(db), "--samples-per-shard", per_shard,
                                "--num-shards", "4200", "--dry-run")  # fmt: skip
        rows["dry-run"].append((wall, rss))
        shards = int(re.search(r"in ([\d,]+) shards", text)[1].replace(",", ""))
        estimate = text
    print(f"\n{name} ({db}), medians of {repeats}:")
    for step, values in rows.items():
        walls, peaks = zip(*values, strict=True)
        print(f"  {step:8s} {statistics.median(walls):6.2f} s  {statistics.median(peaks):6.0f} MB")
    print(f"  dry run: {shards:,} shards")
    print("  " + estimate.strip().replace("\n", "\n  "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(".bench/scale"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["rcdb", "fractal3d"])
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "rcdb"):
        bench("RCDB-21k", rcdb_database(args.cache), args.cache, args.repeats)
    if args.only in (None, "fractal3d"):
        bench("ExFractalDB-21k", fractal3d_database(args.cache), args.cache, args.repeats)


if __name__ == "__main__":
    main()
