"""A minimal formula family in one file: checkerboards (the example of ARCHITECTURE.md).

A category is a number of cells per side, drawn per candidate from its own generator and kept
when it is at least ``min_cells``; an instance is that checkerboard, shifted by one cell or not
(seeded per sample). Importing this module registers the type ``checker``; nothing else in
fdgen names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fdgen.errors import FdgenError, check_option
from fdgen.families import register_family
from fdgen.families.base import Candidate, Family, image_member

WHITE = 255


@dataclass(frozen=True)
class SearchSettings:
    categories: int = 10
    seed: int = 0
    min_cells: int = 2

    def __post_init__(self) -> None:
        check_option(self.categories >= 1, "--categories", "must be >= 1")


@dataclass(frozen=True)
class RenderSettings:
    size: int = 64
    instances: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(8 <= self.size <= 1024, "--size", "must be in [8, 1024]")


def checkerboard(size: int, cells: int, shift: int) -> np.ndarray:
    """A size x size board of ``cells`` x ``cells`` squares, 0 and WHITE."""
    y, x = np.indices((size, size)) * cells // size
    return ((y + x + shift) % 2 * WHITE).astype(np.uint8)


@register_family("checker")
class Checker(Family):
    category_suffix = ".txt"
    SearchSettings = SearchSettings
    RenderSettings = RenderSettings
    score_name = "cells"

    def format_category(self, params: int) -> str:
        return f"{params}\n"

    def read_category(self, path: Path) -> int:
        text = Path(path).read_text().strip()
        if not text.isdigit():
            raise FdgenError(f"{path}: expected a whole number of cells, found {text!r}")
        return int(text)

    def candidate_specs(self, settings, start, rng_state, batch):
        while True:
            yield (start, batch), None
            start += batch

    def evaluate_candidates(self, settings, spec):
        start, count = spec
        out = []
        for k in range(start, start + count):
            cells = int(np.random.default_rng([settings.seed, k]).integers(1, 17))
            out.append(Candidate(k, cells, float(cells), accepted=cells >= settings.min_cells))
        return out

    def renderer(self, settings):
        return settings  # nothing to keep between samples

    def render_group(self, renderer, group, fmt):
        for instance in group.instances:
            shift = int(np.random.default_rng([renderer.seed, group.unit, instance]).integers(2))
            image = checkerboard(renderer.size, group.params, shift)
            payload = {fmt: image_member(image, fmt, two_level=WHITE)}
            yield self.category_sample(group, instance, payload, {"shift": shift})
