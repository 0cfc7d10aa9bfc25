"""Contact sheets: a quick look at what a database renders to."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fdgen.database import Database
from fdgen.encode import encode_image
from fdgen.families import get_family

GAP = 4


def _thumb(image: np.ndarray, size: int) -> np.ndarray:
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=cv2.INTER_AREA)


def contact_sheet(db: Database, settings, out: Path, categories: int, instances: int, thumb: int):
    """Write a PNG contact sheet of the family's preview rows to ``out``."""
    rows = get_family(db.type).preview_rows(db, settings, categories, instances)
    columns = max(len(r) for r in rows)
    height = len(rows) * (thumb + GAP) + GAP
    width = columns * (thumb + GAP) + GAP
    sheet = np.full((height, width, 3), 40, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            y, x = GAP + r * (thumb + GAP), GAP + c * (thumb + GAP)
            sheet[y : y + thumb, x : x + thumb] = _thumb(image, thumb)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(encode_image(sheet, "png"))
