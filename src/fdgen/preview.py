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


def sheet_images(db: Database, settings, categories: int, instances: int) -> list[list]:
    """Rows of images: instance 0 of the first categories, then instances of category 0."""
    family = get_family(db.type)
    if getattr(family, "SAMPLE_UNIT", "category") == "image":
        return family.preview_rows(db, settings, categories, instances)
    renderer = family.Renderer(settings)
    group_size = family.group_size(settings)
    firsts = []
    for c in range(min(categories, len(db))):
        _, image, _ = next(iter(renderer.render_group(db.params[c], c, 0, [0])))
        firsts.append(image.copy())
    spread = np.linspace(0, settings.instances - 1, instances).round().astype(int)
    variants = []
    for i in dict.fromkeys(spread.tolist()):
        group = i // group_size
        _, image, _ = next(iter(renderer.render_group(db.params[0], 0, group, [i])))
        variants.append(image.copy())
    width = max(1, int(np.ceil(np.sqrt(len(firsts)))))
    rows = [firsts[k : k + width] for k in range(0, len(firsts), width)]
    return rows + [variants]


def contact_sheet(db: Database, settings, out: Path, categories: int, instances: int, thumb: int):
    """Write a PNG contact sheet to ``out``."""
    family = get_family(db.type)
    if hasattr(family, "preview_rows"):  # e.g. 3D: each category from several views
        rows = family.preview_rows(db, settings, categories, instances)
    else:
        rows = sheet_images(db, settings, categories, instances)
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
