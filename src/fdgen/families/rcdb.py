"""RCDB, the Radial Contour DataBase (Kataoka et al., CVPR 2022; REFERENCE section 2).

A category is a set of drawing parameters; an image is a stack of 1-pixel closed contours,
each grown outward from the previous one with 1D Perlin noise, each with its own grey level,
on a white background. Per instance the radius, the oval rates and the centre are redrawn
(instance 0 keeps the category's own).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fdgen.families import contour_base as base
from fdgen.families import register_family
from fdgen.families.contour_base import CANVAS, ContourFamily, ContourRenderer, Field
from fdgen.lazy import lazy_module

kc = lazy_module("fdgen.kernels.contours")
streams = lazy_module("fdgen.kernels.rng")

BACKGROUND = 255

# Published distributions (the original script's defaults for RCDB-1k/21k).
VERTICES_MEAN, VERTICES_MIN, VERTICES_MAX = 100, 3, 200  # int(Exp(mean 100)) redrawn into range
CONTOURS_MIN, CONTOURS_MAX = 1, 200
PERLIN_MAX = 4.0  # U(0, 4)
STEP_MAX = 0.1  # U(0, 0.1), the original's "line width"
RADIUS_MIN, RADIUS_MAX = 0, 100
OVAL_MIN, OVAL_MAX = 1.0, 2.0
CENTRE_SPREAD = 400  # centre = (512 + randint(-400, 400)) / 2


@dataclass(frozen=True)
class Category:
    """Parameters of one RCDB category (geometry on the 512 x 512 canvas)."""

    vertices: int
    contours: int
    perlin: float
    step: float
    radius: int
    oval_x: float
    oval_y: float
    centre_x: float
    centre_y: float


FIELDS = (
    Field("vertices", int, 3, 100_000, "vertices per contour"),
    Field("contours", int, 1, 100_000, "contours drawn"),
    Field("perlin", float, 0.0, 1000.0, "Perlin noise coefficient"),
    Field("step", float, -1000.0, 1000.0, "radial step per contour (original: line_width)"),
    Field("radius", int, 0, 100_000, "start radius, px"),
    Field("oval_x", float, 0.0, 1000.0, "oval rate x"),
    Field("oval_y", float, 0.0, 1000.0, "oval rate y"),
    Field("centre_x", float, -100_000.0, 100_000.0, "centre x of instance 0, px"),
    Field("centre_y", float, -100_000.0, 100_000.0, "centre y of instance 0, px"),
)


# --- search (no filter) -----------------------------------------------------------------------


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
    centre_y = base.centre_offset(rng, CENTRE_SPREAD)
    centre_x = base.centre_offset(rng, CENTRE_SPREAD)
    return Category(vertices, contours, perlin, step, radius, oval_x, oval_y, centre_x, centre_y)


# --- render -----------------------------------------------------------------------------------


def instance_geometry(params: Category, state):
    """(state, radius, oval_x, oval_y, centre_x, centre_y) of an instance > 0, redrawn from
    its stream in the original's order: oval x, oval y, radius, centre y, centre x."""
    state, oval_x = kc.uniform(state, OVAL_MIN, OVAL_MAX)
    state, oval_y = kc.uniform(np.uint64(state), OVAL_MIN, OVAL_MAX)
    state, radius = kc.randint(np.uint64(state), RADIUS_MIN, RADIUS_MAX)
    state, dy = kc.randint(np.uint64(state), -CENTRE_SPREAD, CENTRE_SPREAD)
    state, dx = kc.randint(np.uint64(state), -CENTRE_SPREAD, CENTRE_SPREAD)
    return np.uint64(state), radius, oval_x, oval_y, (CANVAS + dx) / 2, (CANVAS + dy) / 2


class Renderer(ContourRenderer):
    """Renders RCDB instances (grey lines on white)."""

    background = BACKGROUND

    def contours(self, params: Category, category: int, instance: int):
        """Vertex pixel positions (contours, vertices, 2) and grey levels of one instance."""
        state = streams.sample_state(self.settings.seed, category, instance)
        geometry = (params.radius, params.oval_x, params.oval_y, params.centre_x, params.centre_y)
        if instance > 0:
            state, *geometry = instance_geometry(params, state)
        pts = np.empty((params.contours, params.vertices, 2), np.int32)
        grays = np.empty(params.contours, np.int64)
        sines = np.zeros(params.vertices)
        kc.grow_contours(
            state, *map(float, geometry), 2.0 * params.perlin, params.perlin, params.step,
            sines, self.scale, pts, grays,
        )  # fmt: skip
        return pts, grays


@register_family("rcdb")
class RCDB(ContourFamily):
    """RCDB: one category = one set of contour parameters; a sample = one instance."""

    Category = Category
    fields = FIELDS
    title = "fdgen rcdb category"
    renderer_class = Renderer

    def sample_category(self, seed: int, index: int) -> Category:
        return sample_category(seed, index)
