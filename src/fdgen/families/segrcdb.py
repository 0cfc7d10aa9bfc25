"""SegRCDB (Shinoda et al., ICCV 2023; REFERENCE section 2): RCDB contours for segmentation.

A category is an RCDB-style set of parameters (vertices, contours, noise, step, radius, oval
rates); its class id is its position plus one (1..254; 0 is background). A sample is one
image, not one category instance: ``objects`` (32) objects of random categories at random
centres, drawn in order on black, with a mask where later objects overwrite earlier ones.

Mask variants (``--mask``): ``lines`` (the contour lines, published mode M1), ``ring`` (the
band between the first and the last contour, M2) and ``filled`` (the area inside the outermost
contour, M3).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fdgen.errors import FdgenError, check_option
from fdgen.families import contour_base as base
from fdgen.families import rcdb, register_family
from fdgen.families.base import Group, PreviewLayout, Sample, choice_field, image_member
from fdgen.families.contour_base import CANVAS, ContourFamily, draw_contours
from fdgen.families.contour_base import SearchSettings as _ContourSearch
from fdgen.lazy import lazy_module

cv2 = lazy_module("cv2")
kc = lazy_module("fdgen.kernels.contours")
streams = lazy_module("fdgen.kernels.rng")

BACKGROUND = 0
MAX_CLASSES = 254  # class ids 1..254 in an 8-bit mask; 0 is background, 255 is left free
MASK_MODES = ("lines", "ring", "filled")
_IMAGE_STREAM = 0x5345_4752  # separates the per-image streams from other keyed streams

# Published distributions (make_SegRCDB.sh of the original).
VERTICES_MEAN, VERTICES_MIN, VERTICES_MAX = 100, 3, 500  # int(Exp(mean 500 / 5)) in range
CONTOURS_MIN, CONTOURS_MAX = 1, 50
PERLIN_MAX = 4.0
STEP_MAX = 0.1
RADIUS_MIN, RADIUS_MAX = 0, 50
OVAL_MIN, OVAL_MAX = 1.0, 2.0
CENTRE_SPREAD = 512  # object centre = (512 + randint(-512, 512)) / 2


@dataclass(frozen=True)
class Category:
    """Parameters of one SegRCDB category (geometry on the 512 x 512 canvas)."""

    vertices: int
    contours: int
    perlin: float
    step: float
    radius: int
    oval_x: float
    oval_y: float


# RCDB's fields less the centre, which SegRCDB draws per object.
FIELDS = tuple(f for f in rcdb.FIELDS if f.name in base.field_names(Category))


# --- search (no filter) -----------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSettings(_ContourSearch):
    """SegRCDB search: at most 254 categories (8-bit masks)."""

    categories: int = 254

    def __post_init__(self) -> None:
        super().__post_init__()
        check_option(self.categories <= MAX_CLASSES, "--categories", f"must be <= {MAX_CLASSES}")


def sample_category(seed: int, index: int) -> Category:
    """Category ``index``, drawn in the original's order from its own generator."""
    rng = base.category_generator(seed, index)
    vertices = base.truncated_exponential_int(rng, VERTICES_MEAN, VERTICES_MIN, VERTICES_MAX)
    contours = int(rng.integers(CONTOURS_MIN, CONTOURS_MAX + 1))
    perlin = float(rng.uniform(0.0, PERLIN_MAX))
    step = float(rng.uniform(0.0, STEP_MAX))
    radius = int(rng.integers(RADIUS_MIN, RADIUS_MAX + 1))
    oval_x = float(rng.uniform(OVAL_MIN, OVAL_MAX))
    oval_y = float(rng.uniform(OVAL_MIN, OVAL_MAX))
    return Category(vertices, contours, perlin, step, radius, oval_x, oval_y)


# --- render -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderSettings:
    """SegRCDB rendering; defaults are the published ones (mask mode M1 = ``lines``)."""

    size: int = 512
    images: int = 20_000
    objects: int = 32
    mask: str = choice_field("lines", MASK_MODES)
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(16 <= self.size <= 8192, "--size", "must be in [16, 8192]")
        check_option(self.images >= 1, "--images", "must be >= 1")
        check_option(1 <= self.objects <= 10_000, "--objects", "must be in [1, 10000]")
        check_option(self.mask in MASK_MODES, "--mask", f"must be one of {', '.join(MASK_MODES)}")
        check_option(self.seed >= 0, "--seed", "must be >= 0")


def _paint_ring(mask: np.ndarray, first: np.ndarray, last: np.ndarray, class_id: int) -> None:
    """Set ``class_id`` on the band between the first and the last contour, both lines
    included, inside their bounding box only (pixels inside the first contour are kept)."""
    size = mask.shape[0]
    both = np.concatenate([first, last])
    x0, y0 = np.maximum(both.min(axis=0), 0)
    x1, y1 = np.minimum(both.max(axis=0), size - 1)
    if x0 > x1 or y0 > y1:
        return  # entirely off the canvas
    origin = np.array([x0, y0], np.int32)
    inner, outer = first - origin, last - origin
    band = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(band, [outer], 1)
    cv2.fillPoly(band, [inner], 0)
    cv2.polylines(band, [inner, outer], True, 1, 1, cv2.LINE_8)
    mask[y0 : y1 + 1, x0 : x1 + 1][band != 0] = class_id


class Renderer:
    """Renders SegRCDB images and masks (H x W uint8 each)."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.scale = settings.size / CANVAS

    def objects(self, categories: list[Category], image_index: int):
        """Yield (class id, vertex pixel positions, grey levels) of each object in drawing order.

        The image's stream draws, per object: the category, the centre (y, then x), then the
        contours (see ``grow_contours``); so the first k objects do not depend on ``objects``.
        """
        if len(categories) > MAX_CLASSES:
            raise FdgenError(
                f"--db: SegRCDB masks hold at most {MAX_CLASSES} classes; "
                f"the database has {len(categories)} categories"
            )
        state = streams.sample_state(self.settings.seed, _IMAGE_STREAM, image_index)
        for _ in range(self.settings.objects):
            state, cat = kc.randint(state, 0, len(categories) - 1)
            state, dy = kc.randint(np.uint64(state), -CENTRE_SPREAD, CENTRE_SPREAD)
            state, dx = kc.randint(np.uint64(state), -CENTRE_SPREAD, CENTRE_SPREAD)
            p = categories[cat]
            pts = np.empty((p.contours, p.vertices, 2), np.int32)
            grays = np.empty(p.contours, np.int64)
            state = kc.grow_contours(
                np.uint64(state), float(p.radius), p.oval_x, p.oval_y, (CANVAS + dx) / 2,
                (CANVAS + dy) / 2, 2.0 * p.perlin, p.perlin, p.step, np.zeros(p.vertices),
                self.scale, pts, grays,
            )  # fmt: skip
            state = np.uint64(state)
            yield int(cat) + 1, pts, grays

    def render(self, categories: list[Category], image_index: int):
        """(image, mask, class ids of the objects in drawing order) of one image."""
        s = self.settings
        image = np.full((s.size, s.size), BACKGROUND, np.uint8)
        mask = np.zeros((s.size, s.size), np.uint8)
        objects = []
        for class_id, pts, grays in self.objects(categories, image_index):
            objects.append(class_id)
            draw_contours(image, pts, grays)
            if s.mask == "lines":
                draw_contours(mask, pts, np.full(len(pts), class_id))
            elif s.mask == "filled":
                cv2.fillPoly(mask, [pts[-1]], class_id)
            else:
                _paint_ring(mask, pts[0], pts[-1], class_id)
        return image, mask, objects


def mask_colors(mask: np.ndarray) -> np.ndarray:
    """An RGB view of a mask for contact sheets: black background, one hue per class id."""
    hues = (np.arange(256) * 47) % 180
    lut = np.stack([hues, np.full(256, 200), np.full(256, 255)], axis=1).astype(np.uint8)
    lut[0] = 0
    hsv = lut[mask]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


@register_family("segrcdb")
class SegRCDB(ContourFamily):
    """SegRCDB: a sample is one image of ``objects`` objects of random categories, with its
    segmentation mask as the ``seg.png`` member (the training target; no ``cls``)."""

    Category = Category
    fields = FIELDS
    title = "fdgen segrcdb category (class id = file number + 1)"
    SearchSettings = SearchSettings
    RenderSettings = RenderSettings
    renderer_class = Renderer
    sample_unit = "image"
    target_member = "seg.png"
    preview_layout = PreviewLayout("{shown} images, masks of the first {instances}")

    def sample_category(self, seed: int, index: int) -> Category:
        return sample_category(seed, index)

    def render_group(self, renderer: Renderer, group: Group, fmt: str) -> Iterator[Sample]:
        """One sample per image index: the image, its metadata and its mask."""
        for index in group.instances:
            image, mask, objects = renderer.render(group.params, index)
            meta = {"image": index, "objects": objects, "mask": renderer.settings.mask}
            key, payload = self.sample_key(group.unit, index), {fmt: image_member(image, fmt)}
            yield Sample.build(key, payload, meta, None, {"seg.png": image_member(mask, "png")})

    def members(self, settings, fmt: str) -> tuple[str, ...]:
        return (fmt, "json", "seg.png")

    def preview_rows(self, db, settings, categories: int, instances: int) -> list[list]:
        """The first ``categories`` images, then the masks of the first ``instances``."""
        renderer = Renderer(settings)
        count = max(categories, instances)
        rendered = [renderer.render(db.params, k)[:2] for k in range(count)]
        firsts = [image for image, _ in rendered[:categories]]
        width = max(1, instances)  # image k sits above its mask
        rows = [firsts[k : k + width] for k in range(0, len(firsts), width)]
        return rows + [[mask_colors(mask) for _, mask in rendered[:instances]]]
