"""Golden bytes: sha256 of fixed, tiny searches and renders of every family, draw mode and output.

``tests/golden.json`` holds the table; ``tests/test_golden.py`` recomputes it and fails on any
difference. A change of output bytes must be deliberate: regenerate the table with

    PYTHONPATH=src python tests/golden.py --update

and add a line to the README changelog in the same commit, saying which outputs changed and why.

Each case runs the real CLI in-process (one worker) into a temporary folder; the digested files
are the database's category files (search output) and every shard tar (render output). The
FractalDB renders use the first three published FractalDB-1k categories from the shared
fixtures; the other families search their own tiny databases.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

from fdgen.cli import main

TABLE = Path(__file__).with_name("golden.json")
FIXTURE_CSVS = Path(__file__).resolve().parents[2] / "shared/fixtures/fractaldb-1k-categories"

# name -> (kind, arguments). A search writes DB/<name>; a render reads the database named by
# its "db" entry (a search case above it, or "fixture" for the published FractalDB-1k files).
FRACTAL = ["--instances", "4", "--size", "48", "--points", "2000", "--samples-per-shard", "6"]
F3D = ["--size", "32", "--points", "400", "--instances", "24", "--models", "2"]
F3D += ["--samples-per-shard", "12"]
VG = ["--size", "32", "--points", "600", "--cloud-points", "200", "--instances", "24"]
VG += ["--models", "2", "--samples-per-shard", "12"]
PC = ["--instances", "3", "--main-points", "400", "--mix-points", "101", "--samples-per-shard", "4"]
CONTOUR = ["--instances", "2", "--size", "64", "--samples-per-shard", "3"]
SEG = ["--images", "3", "--objects", "3", "--size", "64", "--samples-per-shard", "2"]
SVD = ["--instances", "3", "--size", "40", "--points", "3000", "--samples-per-shard", "4"]
SCENES = ["--images", "3", "--points", "300", "--mix-points", "60", "--samples-per-shard", "2"]
TINY_2D_SEARCH = ["--points", "4000", "--size", "64", "--pad", "2", "--fill-rate", "0.15"]

CASES: dict[str, dict] = {
    "fractal-search": {"search": ["--categories", "2", *TINY_2D_SEARCH]},
    "fractal-search-legacy": {
        "search": ["--categories", "2", "--rng", "legacy", "--seed", "1", *TINY_2D_SEARCH]
    },
    **{
        f"fractal-{draw}-{fmt}": {
            "db": "fixture",
            "render": [*FRACTAL, "--draw", draw, "--format", fmt],
        }
        for fmt in ("png", "jpg")
        for draw in ("patch_gray", "patch_color", "point_gray", "point_color")
    },
    "fractal-search-render": {"db": "fractal-search", "render": FRACTAL},
    # a validation split (val-NNNNNN.tar, held-out seed) beside the same training shards
    "fractal-val": {"db": "fixture", "render": [*FRACTAL, "--val-instances", "3"]},
    "fractal3d-search": {
        "search": ["--type", "fractal3d", "--categories", "2", "--points", "2000"]
    },
    "fractal3d-fixed": {"db": "fractal3d-search", "render": [*F3D, "--views", "fixed"]},
    "fractal3d-random": {"db": "fractal3d-search", "render": [*F3D, "--views", "random"]},
    "fractal3d-pointcloud": {"db": "fractal3d-search", "render": [*F3D, "--output", "pointcloud"]},
    "fractal3d-jpg": {"db": "fractal3d-search", "render": [*F3D, "--format", "jpg"]},
    "vgfractal-search": {
        "search": ["--type", "vgfractal", "--categories", "2", "--points", "2000"]
    },
    "vgfractal": {"db": "vgfractal-search", "render": VG},
    "vgfractal-world": {"db": "vgfractal-search", "render": [*VG, "--cloud-frame", "world"]},
    "pcfractal-search": {
        "search": ["--type", "pcfractal", "--categories", "3", "--points", "2000"]
    },
    "pcfractal": {"db": "pcfractal-search", "render": PC},
    "pcfractal-original": {"db": "pcfractal-search", "render": [*PC, "--mix", "original"]},
    "rcdb-search": {"search": ["--type", "rcdb", "--categories", "2"]},
    "rcdb": {"db": "rcdb-search", "render": CONTOUR},
    "rcdb-jpg": {"db": "rcdb-search", "render": [*CONTOUR, "--format", "jpg"]},
    "visualatom-search": {"search": ["--type", "visualatom", "--categories", "2"]},
    "visualatom": {"db": "visualatom-search", "render": CONTOUR},
    "segrcdb-search": {"search": ["--type", "segrcdb", "--categories", "3"]},
    **{
        f"segrcdb-{mask}": {"db": "segrcdb-search", "render": [*SEG, "--mask", mask]}
        for mask in ("lines", "ring", "filled")
    },
    "svdfractal-search": {"search": ["--type", "svdfractal", "--categories", "2"]},
    **{
        f"svdfractal-{draw}": {"db": "svdfractal-search", "render": [*SVD, "--draw", draw]}
        for draw in ("color_background", "color", "gray")
    },
    "svdmulti-search": {"search": ["--type", "svdmulti", "--categories", "3"]},
    **{
        f"svdmulti-{draw}": {
            "db": "svdmulti-search",
            "render": [
                "--images",
                "3",
                "--size",
                "48",
                "--points",
                "2000",
                "--draw",
                draw,
                "--samples-per-shard",
                "2",
            ],
        }  # fmt: skip
        for draw in ("color_background", "color")
    },
    "segrcdb-val": {"db": "segrcdb-search", "render": [*SEG, "--val-images", "2"]},
    "pcscenes-search": {"search": ["--type", "pcscenes", "--categories", "2", "--points", "2000"]},
    "pcscenes": {"db": "pcscenes-search", "render": SCENES},
    "pcscenes-keep-aspect-skip": {
        "db": "pcscenes-search",
        "render": [
            *SCENES,
            "--fit",
            "keep-aspect",
            "--placement-fail",
            "skip",
            "--scene-size",
            "6",
            "--point-labels",
            "none",
        ],
    },  # fmt: skip
    "onepfrac-search": {
        "search": ["--type", "onepfrac", "--categories", "2", "--points", "4000", "--size", "64"]
    },
    "onepfrac": {
        "db": "onepfrac-search",
        "render": ["--size", "48", "--points", "2000", "--samples-per-shard", "1"],
    },
    "videoperlin-search": {
        "search": [
            "--type", "videoperlin", "--categories", "4", "--spatial-frequencies", "1,8",
            "--time-frequencies", "2",
        ]
    },
    "videoperlin": {
        "db": "videoperlin-search",
        "render": [
            "--instances", "2", "--size", "24", "--frames", "6", "--octaves", "2",
            "--samples-per-shard", "5",
        ],
    },
}  # fmt: skip

# Entries whose bytes come from OpenCV's bundled libjpeg rather than fdgen's own code.
JPEG_CASES = sorted(name for name, case in CASES.items() if "jpg" in case.get("render", []))


def _cli(*args: str) -> None:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exit_code != 0:
        raise RuntimeError(f"fdgen {' '.join(map(str, args))} failed:\n{result.output}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compute(workdir: Path) -> dict[str, str]:
    """Run every case under ``workdir``; return {"case/file": sha256} for its outputs."""
    databases = {"fixture": workdir / "fixture"}
    databases["fixture"].mkdir()
    for k in range(3):
        shutil.copy(FIXTURE_CSVS / f"{k:05d}.csv", databases["fixture"])
    digests = {}
    for name, case in CASES.items():
        out = workdir / name
        if "search" in case:
            _cli("search", *case["search"], "--workers", "1", "--out", out)
            databases[name] = out
            files = sorted((out / "categories").iterdir())
        else:
            db = databases[case["db"]]
            _cli("render", "--db", db, "--shards", out, "--workers", "1", *case["render"])
            files = sorted(out.glob("shard-*.tar")) + sorted(out.glob("val-*.tar"))
        if not files:
            raise RuntimeError(f"case {name} wrote no files")
        for path in files:
            digests[f"{name}/{path.name}"] = _sha256(path)
    return digests


def load() -> dict[str, str]:
    """The committed table's digests."""
    return json.loads(TABLE.read_text())["digests"]


def update() -> None:
    """Recompute and write the table."""
    import cv2
    import numba
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        digests = compute(Path(tmp))
    table = {
        "about": (
            "sha256 of fixed tiny searches (category files) and renders (shard tars) of every "
            "family; checked by tests/test_golden.py. Regenerate with "
            "`PYTHONPATH=src python tests/golden.py --update` and add a README changelog "
            "line in the same commit. JPEG entries depend on OpenCV's libjpeg."
        ),
        "recorded_with": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "numba": numba.__version__,
            "opencv": cv2.__version__,
        },
        "jpeg_entries": JPEG_CASES,
        "digests": digests,
    }
    TABLE.write_text(json.dumps(table, indent=1, sort_keys=False) + "\n")
    print(f"wrote {len(digests)} digests to {TABLE}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: PYTHONPATH=src python tests/golden.py --update")
    update()
