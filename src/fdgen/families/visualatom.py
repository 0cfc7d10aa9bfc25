"""VisualAtom (Takashima et al., CVPR 2023; REFERENCE section 2).

Like RCDB, an image is a stack of 1-pixel closed orbits grown outward with 1D Perlin noise,
but every vertex's radial offset also carries two sine waves of the category's frequencies
n1 and n2, which accumulate over the orbits. Lines on black; per instance the centre and the
per-orbit noise and grey levels change (instance 0 keeps the category's centre).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fdgen.families import contour_base as base
from fdgen.families import register_family
from fdgen.families.contour_base import CANVAS, ContourFamily, ContourRenderer, Field
from fdgen.lazy import lazy_module

kc = lazy_module("fdgen.kernels.contours")
streams = lazy_module("fdgen.kernels.rng")

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


# --- render -----------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _sines(vertices: int, n1: int, n2: int) -> np.ndarray:
    return kc.sine_terms(vertices, n1, n2)


class Renderer(ContourRenderer):
    """Renders VisualAtom instances (grey lines on black)."""

    background = BACKGROUND

    def contours(self, params: Category, category: int, instance: int):
        """Vertex pixel positions (orbits, vertices, 2) and grey levels of one instance."""
        state = streams.sample_state(self.settings.seed, category, instance)
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


@register_family("visualatom")
class VisualAtom(ContourFamily):
    """VisualAtom: one category = orbit parameters with two sine frequencies."""

    Category = Category
    fields = FIELDS
    title = "fdgen visualatom category"
    renderer_class = Renderer

    def sample_category(self, seed: int, index: int) -> Category:
        return sample_category(seed, index)
