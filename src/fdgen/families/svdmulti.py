"""Multi-instance SVD fractals (Anderson & Farrell, WACV 2022; REFERENCE section 2).

The categories are ``svdfractal``'s. A sample is one image, not one category instance: a
diamond-square background, then 1..``objects`` fractals (uniform count) of random categories,
each rendered at half the image size on its own extent, coloured, flipped, resized to
U(0.15, 0.6) of the image and placed at a random position (up to half off the canvas),
non-black pixels overwriting; then the blur. The json's ``labels`` lists the categories in
drawing order, the target of multi-label training; ``labels.npy`` holds the same list as an
int64 array (the target of ``fdgen.torch``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from fdgen.errors import check_option
from fdgen.families import register_family
from fdgen.families import svdfractal as svd
from fdgen.families.base import (
    Group,
    Member,
    PreviewLayout,
    Sample,
    choice_field,
    image_member,
    npy_bytes,
)

DRAW_MODES = ("color_background", "color")
OBJECT_SIZE = (0.15, 0.6)  # object side, fraction of the image side
_IMAGE_STREAM = 0x5356_444D  # separates the per-image streams from other keyed streams


@dataclass(frozen=True)
class RenderSettings:
    """Multi-instance rendering; defaults are the paper's (224 px, 1..5 objects)."""

    size: int = 224
    points: int = 100_000
    images: int = 1_000_000
    objects: int = 5
    draw: str = choice_field("color_background", DRAW_MODES)
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(16 <= self.size <= 8192, "--size", "must be in [16, 8192]")
        check_option(self.points >= 1, "--points", "must be >= 1")
        check_option(self.images >= 1, "--images", "must be >= 1")
        check_option(1 <= self.objects <= 100, "--objects", "must be in [1, 100]")
        check_option(self.draw in DRAW_MODES, "--draw", f"must be one of {', '.join(DRAW_MODES)}")
        check_option(self.seed >= 0, "--seed", "must be >= 0")


class Renderer:
    """Renders multi-instance images (size x size x 3)."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        inner = svd.RenderSettings(size=settings.size, points=settings.points, draw="color")
        self.fractals = svd.Renderer(inner)

    def render(self, categories: list[np.ndarray], index: int):
        """(image, labels in drawing order, blurred) of image ``index``."""
        s, fr = self.settings, self.fractals
        rng = np.random.default_rng([s.seed, _IMAGE_STREAM, index])
        noise = fr.noise_draws(rng)
        if s.draw == "color_background":
            image = fr.noise_background(noise, s.size)
        else:
            image = np.zeros((s.size, s.size, 3), np.uint8)
        labels = []
        for _ in range(int(rng.integers(1, s.objects + 1))):
            label = int(rng.integers(0, len(categories)))
            params = categories[label]
            # The paper's multi-instance generator does not jitter the parameters.
            draws = dataclasses.replace(svd.Draws.draw(rng, params), jitter=1.0)
            side = max(1, int(rng.uniform(*OBJECT_SIZE) * s.size))
            x, y = (int(v) for v in rng.integers(-(side // 2), s.size - side // 2, 2))
            fg = fr.flipped(fr.fractal(params, draws, max(8, s.size // 2), window=False), draws)
            fg = cv2.resize(np.ascontiguousarray(fg), (side, side), interpolation=cv2.INTER_LINEAR)
            x0, y0 = max(x, 0), max(y, 0)
            x1, y1 = min(x + side, s.size), min(y + side, s.size)
            crop = np.ascontiguousarray(fg[y0 - y : y1 - y, x0 - x : x1 - x])
            svd.ks.composite(crop, image[y0:y1, x0:x1])
            labels.append(label)
        blurred = fr.blur(rng, image)
        return image, labels, blurred


@register_family("svdmulti")
class SVDMulti(svd.SVDFractal):
    """Multi-instance SVD fractals: a sample is one image of 1..``objects`` fractals of random
    categories; its json ``labels`` (no ``cls``) is the multi-label target, also written as
    ``labels.npy``."""

    RenderSettings = RenderSettings
    sample_unit = "image"
    target_member = "labels.npy"
    preview_layout = PreviewLayout("{shown} images")

    def renderer(self, settings: RenderSettings) -> Renderer:
        return Renderer(settings)

    def render_group(self, renderer: Renderer, group: Group, fmt: str) -> Iterator[Sample]:
        """One sample per image index: the image and its labels."""
        for index in group.instances:
            image, labels, blurred = renderer.render(group.params, index)
            meta = {"image": index, "labels": labels, "blurred": blurred}
            key, payload = self.sample_key(group.unit, index), {fmt: image_member(image, fmt)}
            extra = {"labels.npy": Member(np.array(labels, np.int64), npy_bytes)}
            yield Sample.build(key, payload, meta, None, extra)

    def members(self, settings, fmt: str) -> tuple[str, ...]:
        return (fmt, "json", "labels.npy")

    def preview_rows(self, db, settings, categories: int, instances: int) -> list[list]:
        """The first ``categories`` images, ``instances`` to a row."""
        renderer = Renderer(settings)
        images = [renderer.render(db.params, k)[0] for k in range(categories)]
        width = max(1, instances)
        return [images[k : k + width] for k in range(0, len(images), width)]
