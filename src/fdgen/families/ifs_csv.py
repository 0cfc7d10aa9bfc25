"""Category files of iterated function systems: one map per row, its parameters then p.

The original FractalDB format (``%.18e``, comma-separated, no header), shared by the 2D
(a..f, p) and 3D (a..l, p) fractal families.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fdgen.errors import FdgenError
from fdgen.families.base import Family


def format_rows(params: np.ndarray) -> str:
    """One row per map, every value written with ``%.18e`` so that it reads back exactly."""
    return "".join(",".join(f"{v:.18e}" for v in row) + "\n" for row in params)


def read_rows(path: Path, names: str) -> np.ndarray:
    """Read a category file whose rows hold the comma-separated ``names`` (p last).

    Errors name the file and line: wrong field count, a non-number, a non-finite value, a
    negative p, no rows, or probabilities summing to 0.
    """
    path = Path(path)
    columns = len(names.split(","))
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise FdgenError(f"{path}: cannot read category file ({exc})") from None
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != columns:
            raise FdgenError(
                f"{path}, line {line_no}: expected {columns} comma-separated numbers "
                f"{names}, found {len(fields)}"
            )
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise FdgenError(f"{path}, line {line_no}: not a number in {line.strip()!r}") from None
        if not all(map(math.isfinite, values)):
            raise FdgenError(f"{path}, line {line_no}: values must be finite")
        if values[-1] < 0:
            raise FdgenError(f"{path}, line {line_no}: probability p must be >= 0")
        rows.append(values)
    if not rows:
        raise FdgenError(f"{path}: no maps (the file is empty)")
    params = np.array(rows, dtype=np.float64)
    if not sum(row[-1] for row in rows) > 0:
        raise FdgenError(f"{path}: the probabilities p sum to 0")
    return params


def maps_histogram(params: list[np.ndarray]) -> str:
    """How many categories have each number of maps, e.g. ``2:10, 3:7``."""
    counts: dict[int, int] = {}
    for p in params:
        counts[len(p)] = counts.get(len(p), 0) + 1
    return ", ".join(f"{k}:{v}" for k, v in sorted(counts.items()))


class IFSFamily(Family):
    """A family whose categories are IFS maps in this format: ``columns`` names a row's
    fields; category files, reading and the ``info`` maps line are shared."""

    category_suffix = ".csv"
    columns: str  # e.g. "a,b,c,d,e,f,p"

    def format_category(self, params: np.ndarray) -> str:
        return format_rows(params)

    def read_category(self, path: Path) -> np.ndarray:
        return read_rows(path, self.columns)

    def describe(self, db) -> list[tuple[str, str]]:
        return [("maps", maps_histogram(db.params))]
