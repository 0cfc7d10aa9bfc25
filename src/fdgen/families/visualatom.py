"""VisualAtom (Takashima et al., CVPR 2023; REFERENCE section 2).

Like RCDB, an image is a stack of 1-pixel closed orbits grown outward with 1D Perlin noise,
but every vertex's radial offset also carries two sine waves of the category's frequencies
n1 and n2, which accumulate over the orbits. Lines on black; per instance the centre and the
per-orbit noise and grey levels change (instance 0 keeps the category's centre).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from fdgen.errors import check_option
from fdgen.families import contour_base as base
from fdgen.families.contour_base import CANVAS, CATEGORY_SUFFIX, Field, SearchSettings
from fdgen.families.rcdb import draw_contours
from fdgen.kernels import contours as kc
from fdgen.kernels.rng import sample_state

TYPE = "visualatom"
BACKGROUND = 0

# Published distributions (make_VisualAtom.sh of the original).
VERTICES_MIN, VERTICES_MAX = 200, 1000
ORBITS_MIN, ORBITS_MAX = 1, 200
PERLIN_MAX = 4.0  # U(0, 4)
STEP_MAX = 0.1  # U(0, 0.1), the original's "line width"
RADIUS_MIN, RADIUS_MAX = 10, 60
FREQ_MIN, FREQ_MAX = 0, 20  # n1, n2; n2 redrawn while n2 == n1 != 0
OVAL_MIN, OVAL_MAX = 1.0, 2.0
CENTRE_SPREAD = 512  # centre = (512 + randint(-512, 512)) / 2

__all__ = ["CATEGORY_SUFFIX", "SearchSettings", "TYPE"]


@dataclass(frozen=True)
class Category:
    """Parameters of one VisualAtom category (geometry on the 512 x 512 canvas)."""

    vertices: int
    orbits: int
    perlin: float
    step: float
    radius: int
    n1: int
    n2: int
    oval_x: float
    oval_y: float
    centre_x: float
    centre_y: float


FIELDS = (
    Field("vertices", int, 3, 100_000, "vertices per orbit"),
    Field("orbits", int, 1, 100_000, "orbits (contours) drawn"),
    Field("perlin", float, 0.0, 1000.0, "Perlin noise coefficient"),
    Field("step", float, -1000.0, 1000.0, "radial step per orbit (original: line_width)"),
    Field("radius", int, 0, 100_000, "start radius, px"),
    Field("n1", int, 0, 10_000, "first sine frequency"),
    Field("n2", int, 0, 10_000, "second sine frequency"),
    Field("oval_x", float, 0.0, 1000.0, "oval rate x"),
    Field("oval_y", float, 0.0, 1000.0, "oval rate y"),
    Field("centre_x", float, -100_000.0, 100_000.0, "centre x of instance 0, px"),
    Field("centre_y", float, -100_000.0, 100_000.0, "centre y of instance 0, px"),
)


def format_category(params: Category) -> str:
    """The category as a small YAML mapping."""
    return base.format_record("fdgen visualatom category", FIELDS, params)


def read_category(path: Path) -> Category:
    """Read a VisualAtom category file; errors name the file and field."""
    return base.read_record(path, Category, FIELDS)


# --- search (no filter) -----------------------------------------------------------------------


def sample_category(seed: int, index: int) -> Category:
    """Category ``index``, drawn in the original's order from its own generator."""
    rng = base.category_generator(seed, index)
    vertices = int(rng.integers(VERTICES_MIN, VERTICES_MAX + 1))
    orbits = int(rng.integers(ORBITS_MIN, ORBITS_MAX + 1))
    perlin = float(rng.uniform(0.0, PERLIN_MAX))
    step = float(rng.uniform(0.0, STEP_MAX))
    radius = int(rng.integers(RADIUS_MIN, RADIUS_MAX + 1))
    n1 = int(rng.integers(FREQ_MIN, FREQ_MAX + 1))
    while True:
        n2 = int(rng.integers(FREQ_MIN, FREQ_MAX + 1))
        if n2 != n1 or n1 == 0:
            break
    oval_x = float(rng.uniform(OVAL_MIN, OVAL_MAX))
    oval_y = float(rng.uniform(OVAL_MIN, OVAL_MAX))
    centre_y = base.centre_offset(rng, CENTRE_SPREAD)
    centre_x = base.centre_offset(rng, CENTRE_SPREAD)
    return Category(
        vertices, orbits, perlin, step, radius, n1, n2, oval_x, oval_y, centre_x, centre_y
    )


candidate_specs = base.candidate_specs


def evaluate_candidates(settings: SearchSettings, spec) -> list[base.Candidate]:
    """Sample one batch of categories (runs in a worker process)."""
    return base.sample_batch(sample_category, settings.seed, spec)


# --- render -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderSettings:
    """VisualAtom rendering; defaults are the published ones."""

    size: int = 512
    instances: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(16 <= self.size <= 8192, "--size", "must be in [16, 8192]")
        check_option(self.instances >= 1, "--instances", "must be >= 1")
        check_option(self.seed >= 0, "--seed", "must be >= 0")


def group_size(settings: RenderSettings) -> int:
    """Every instance is rendered on its own."""
    return 1


@lru_cache(maxsize=64)
def _sines(vertices: int, n1: int, n2: int) -> np.ndarray:
    return kc.sine_terms(vertices, n1, n2)


class Renderer:
    """Renders VisualAtom instances (grey images, H x W uint8)."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.scale = settings.size / CANVAS
        self.two_level_value = None

    def contours(self, params: Category, category: int, instance: int):
        """Vertex pixel positions (orbits, vertices, 2) and grey levels of one instance."""
        state = sample_state(self.settings.seed, category, instance)
        centre_x, centre_y = params.centre_x, params.centre_y
        if instance > 0:  # the original redraws the centre after each image: y, then x
            state, dy = kc.randint(state, -CENTRE_SPREAD, CENTRE_SPREAD)
            state, dx = kc.randint(np.uint64(state), -CENTRE_SPREAD, CENTRE_SPREAD)
            state = np.uint64(state)
            centre_x, centre_y = (CANVAS + dx) / 2, (CANVAS + dy) / 2
        pts = np.empty((params.orbits, params.vertices, 2), np.int32)
        grays = np.empty(params.orbits, np.int64)
        sines = _sines(params.vertices, params.n1, params.n2)
        kc.grow_contours(
            state, float(params.radius), params.oval_x, params.oval_y, float(centre_x),
            float(centre_y), params.perlin, params.perlin, params.step, sines, self.scale,
            pts, grays,
        )  # fmt: skip
        return pts, grays

    def render(self, params: Category, category: int, instance: int) -> np.ndarray:
        """One instance as a new size x size uint8 image."""
        size = self.settings.size
        image = np.full((size, size), BACKGROUND, np.uint8)
        draw_contours(image, *self.contours(params, category, instance))
        return image

    def render_group(self, params: Category, category: int, group: int, instances: list[int]):
        """Yield (instance, image, fields) for each instance."""
        for instance in instances:
            yield instance, self.render(params, category, instance), {}
