"""SVD fractals (Anderson & Farrell, "Improving Fractal Pre-training", WACV 2022; REFERENCE 2).

A category is an IFS of N maps, each A = U diag(s1, s2) V with U, V random rotations with
random axis reflections, 0 <= s2 <= s1 <= 1 and sum over the maps of (s1 + 2 s2) (the
sigma-factor) drawn from U((5 + N) / 2, (6 + N) / 2), translation U(-1, 1)^2. Every map is
contractive, so there is no filter and no orbit diverges. Category files are FractalDB's
(a, b, c, d, e, f, p; p proportional to |det|).

A sample is one rendering of one category, every draw from its own (seed, category, instance)
stream: one map scaled by U(0.8, 1.1), the orbit from the fixed point of map 1, a random view
window, one random 3x3 patch, the point density coloured in HSV, random transpose and flips,
a diamond-square background, and a 3x3 Gaussian blur at p = 0.5 (see docs/svd-fractals.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fdgen.errors import check_option
from fdgen.families import ifs_csv, register_family
from fdgen.families.base import Candidate, Family, Group, choice_field, image_member
from fdgen.kernels import svd as ks

CATEGORY_SUFFIX = ".csv"
# color_background: the paper's images; color: on black; gray: grey 127 on black, as FractalDB.
DRAW_MODES = ("color_background", "color", "gray")
GRAY_VALUE = 127
JITTER_RANGE = (0.8, 1.1)  # one map scaled by this factor ...
JITTER_TRIES = 4  # ... redrawn up to this often while it would stop being contractive
WINDOW_SCALE = (0.5, 2.0)  # view window extent factor per axis
WINDOW_SHIFT = 0.2  # view window centre shift, fraction of the extent per axis
SATURATION = (0.3, 1.0)
VALUE = (0.5, 1.0)
BLUR_P = 0.5
BLUR_SIGMA = (0.5, 1.0)
# Background colouring: (scale range, shift range) of hue, saturation and value.
NOISE_DECAY = (0.4, 0.8)
NOISE_HUE = ((0.25, 1.0), (0.0, 1.0))
NOISE_SAT = ((0.1, 0.3), (0.4, 0.6))
NOISE_VAL = ((0.3, 0.6), (0.4, 0.6))
NOISE_DRAWS = 8  # generator outputs one background's draws take: decay, stream, 3 x 2 colours


# --- sampling a system ------------------------------------------------------------------------


def sigma_range(n_maps: int) -> tuple[float, float]:
    """The published range of the sigma-factor for ``n_maps`` maps: ((5 + N) / 2, (6 + N) / 2)."""
    return (5 + n_maps) / 2, (6 + n_maps) / 2


def singular_values(rng: np.random.Generator, n_maps: int, alpha: float) -> np.ndarray:
    """(N, 2) singular values with 0 <= s2 <= s1 <= 1 and sum(s1 + 2 s2) = alpha.

    Pair by pair, s1 then s2 is uniform over the values that leave the remaining pairs a
    feasible budget (each pair takes 0..3); the last pair takes exactly what is left.
    """
    out = np.empty((n_maps, 2))
    left = alpha
    for i in range(n_maps - 1):
        room = 3.0 * (n_maps - 1 - i)  # the most the later pairs can take
        s1 = rng.uniform(max(0.0, (left - room) / 3), min(1.0, left))
        s2 = rng.uniform(max(0.0, (left - s1 - room) / 2), min(s1, (left - s1) / 2))
        out[i] = s1, s2
        left -= s1 + 2 * s2
    s2 = rng.uniform(max(0.0, (left - 1) / 2), left / 3)
    out[-1] = left - 2 * s2, s2
    return out


def _orthogonal(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` random 2x2 orthogonal matrices: a rotation by U(-pi, pi) after +-1 axis flips."""
    signs = np.where(rng.random((count, 2)) < 0.5, -1.0, 1.0)
    angle = rng.uniform(-np.pi, np.pi, count)
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    return rot * signs[:, None, :]  # rot @ diag(signs)


def with_probabilities(maps: np.ndarray) -> np.ndarray:
    """(N, 7) rows a..f, p with p = |ad - bc| / sum |ad - bc|."""
    dets = np.abs(maps[:, 0] * maps[:, 3] - maps[:, 1] * maps[:, 2])
    return np.column_stack([maps[:, :6], dets / dets.sum()])


def sample_maps(rng: np.random.Generator, n_maps: int, alpha: float) -> np.ndarray:
    """(N, 6) maps a..f with singular values from ``singular_values`` and translation U(-1, 1)."""
    u, v = _orthogonal(rng, n_maps), _orthogonal(rng, n_maps)
    s = singular_values(rng, n_maps, alpha)
    linear = (u * s[:, None, :]) @ v
    shift = rng.uniform(-1.0, 1.0, (n_maps, 2))
    return np.column_stack([linear.reshape(n_maps, 4), shift])


def sample_system(seed: int, index: int, maps_min: int, maps_max: int) -> np.ndarray:
    """Category ``index``: N uniform in maps_min..maps_max, sigma-factor U(sigma_range(N)),
    the maps, then p; all from the generator of SeedSequence([seed, index])."""
    rng = np.random.default_rng([seed, index])
    n_maps = int(rng.integers(maps_min, maps_max + 1))
    alpha = rng.uniform(*sigma_range(n_maps))
    return with_probabilities(sample_maps(rng, n_maps, alpha))


def largest_singular_value(a: float, b: float, c: float, d: float) -> float:
    """The spectral norm of [[a, b], [c, d]]."""
    frob = a * a + b * b + c * c + d * d
    det = a * d - b * c
    return math.sqrt(max(0.0, (frob + math.sqrt(max(0.0, frob * frob - 4 * det * det))) / 2))


# --- search (no filter) ---------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSettings:
    """SVD fractal systems; defaults are the published ones (N in {2, 3, 4})."""

    categories: int = 1000
    seed: int = 0
    maps_min: int = 2
    maps_max: int = 4

    def __post_init__(self) -> None:
        check_option(self.categories >= 1, "--categories", "must be >= 1")
        check_option(self.seed >= 0, "--seed", "must be >= 0")
        check_option(
            2 <= self.maps_min <= self.maps_max <= 64,
            "--maps",
            "needs 2 <= MIN <= MAX <= 64 (one map cannot reach the sigma-factor (5 + 1) / 2)",
        )


# --- render ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderSettings:
    """SVD fractal rendering; defaults are the paper's generator (224 px, 100k points)."""

    size: int = 224
    points: int = 100_000
    draw: str = choice_field("color_background", DRAW_MODES)
    instances: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(8 <= self.size <= 8192, "--size", "must be in [8, 8192]")
        check_option(self.points >= 1, "--points", "must be >= 1")
        check_option(self.draw in DRAW_MODES, "--draw", f"must be one of {', '.join(DRAW_MODES)}")
        check_option(self.instances >= 1, "--instances", "must be >= 1")
        check_option(self.seed >= 0, "--seed", "must be >= 0")


@dataclass(frozen=True)
class Draws:
    """Every random choice of one fractal rendering, drawn in this order from its generator."""

    jitter_map: int
    jitter: float  # 1.0: no jitter (every try would have broken contractivity)
    orbit_state: np.uint64
    shift: np.ndarray  # view window centre shift, fraction of the extent (x, y)
    scale: np.ndarray  # view window extent factor (x, y)
    mask: int  # the 3x3 patch, 1..511
    hue: float
    saturation: float
    value: float
    transpose: bool
    flip_v: bool
    flip_h: bool

    @classmethod
    def draw(cls, rng: np.random.Generator, params: np.ndarray) -> Draws:
        """The draws for a system ``params`` (N x 7)."""
        k = int(rng.integers(0, len(params)))
        top = largest_singular_value(*params[k, :4])
        factors = rng.uniform(*JITTER_RANGE, JITTER_TRIES)
        fits = [f for f in factors.tolist() if top * f <= 1.0]
        return cls(
            jitter_map=k,
            jitter=fits[0] if fits else 1.0,
            orbit_state=np.uint64(rng.integers(0, 2**64, dtype=np.uint64)),
            shift=rng.uniform(-WINDOW_SHIFT, WINDOW_SHIFT, 2),
            scale=rng.uniform(*WINDOW_SCALE, 2),
            mask=int(rng.integers(1, 512)),
            hue=float(rng.random()),
            saturation=float(rng.uniform(*SATURATION)),
            value=float(rng.uniform(*VALUE)),
            transpose=bool(rng.random() < 0.5),
            flip_v=bool(rng.random() < 0.5),
            flip_h=bool(rng.random() < 0.5),
        )


def fixed_point(maps: np.ndarray) -> tuple[float, float]:
    """The fixed point of map 0, (I - A)^-1 b: a point of the attractor."""
    a, b, c, d, e, f = maps[0, :6]
    det = (1 - a) * (1 - d) - b * c
    if abs(det) < 1e-12:
        return 0.0, 0.0
    return ((1 - d) * e + b * f) / det, ((1 - a) * f + c * e) / det


class Renderer:
    """Renders SVD fractals; holds scratch buffers for one image size."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.gray = settings.draw == "gray"
        self.background = settings.draw == "color_background"
        self.xs, self.ys = np.empty(settings.points), np.empty(settings.points)
        self.canvases: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        levels = max(1, math.ceil(math.log2(settings.size)))
        self.levels = levels
        self.grid = np.empty((2**levels + 1, 2**levels + 1))

    def _canvas(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(counts, image, hits scratch of ``ks.density_into``) for ``size``."""
        if size not in self.canvases:
            channels = 1 if self.gray else 3
            self.canvases[size] = (
                np.zeros((size, size), np.int32),
                np.zeros((size, size, channels), np.uint8),
                ks.histogram_scratch(size, size),
            )
        return self.canvases[size]

    def window_density(self, params: np.ndarray, draws: Draws, size: int, window: bool):
        """(counts, top): the patch density of the orbit in the view window (``window``:
        shifted and scaled by the draws, else the orbit's extent) and its largest count;
        ``counts`` is the renderer's scratch for ``size``."""
        maps = np.array(params[:, :6])
        maps[draws.jitter_map] *= draws.jitter
        dets = np.abs(maps[:, 0] * maps[:, 3] - maps[:, 1] * maps[:, 2])
        weights = dets if dets.sum() > 0 else np.ones(len(maps))
        cum = np.cumsum(weights / weights.sum())
        x0, y0 = fixed_point(maps)
        _, lo_x, lo_y, hi_x, hi_y = ks.orbit(maps, cum, x0, y0, draws.orbit_state, self.xs, self.ys)
        centre = np.array([lo_x + hi_x, lo_y + hi_y]) / 2
        half = np.array([hi_x - lo_x, hi_y - lo_y]) / 2
        if window:
            centre = centre + 2 * half * draws.shift
            half = half * draws.scale
        counts, image, hits = self._canvas(size)
        lo, hi = centre - half, centre + half
        top = ks.density_into(self.xs, self.ys, *lo, *hi, draws.mask, counts, hits)
        return counts, top

    def fractal(self, params: np.ndarray, draws: Draws, size: int, window: bool) -> np.ndarray:
        """The fractal on black (size x size x channels, y down), before flips; with
        ``window`` the view window is shifted and scaled by the draws, else the orbit's extent."""
        counts, top = self.window_density(params, draws, size, window)
        image = self._canvas(size)[1]
        if self.gray:
            ks.binarize(counts, GRAY_VALUE, image[:, :, 0])
        else:
            ks.colorize_density(
                counts, max(top, 1), draws.hue, draws.saturation, draws.value, image
            )
        return image

    def oriented_fractal(self, params: np.ndarray, draws: Draws, size: int) -> np.ndarray:
        """The same pixels as ``self.flipped(self.fractal(params, draws, size, window=True),
        draws)`` (2D when grey), in an array the caller owns: the colouring writes the
        flipped image directly, in one pass."""
        counts, top = self.window_density(params, draws, size, window=True)
        orientation = draws.transpose, draws.flip_v, draws.flip_h
        if self.gray:
            image = np.empty((size, size), np.uint8)
            ks.binarize_oriented(counts, GRAY_VALUE, *orientation, image)
        else:
            image = np.empty((size, size, 3), np.uint8)
            ks.colorize_oriented(
                counts, max(top, 1), draws.hue, draws.saturation, draws.value, *orientation, image
            )
        return image

    def flipped(self, image: np.ndarray, draws: Draws) -> np.ndarray:
        """The image transposed, flipped top-bottom and left-right as drawn (a view)."""
        if draws.transpose:
            image = image.transpose(1, 0, 2)
        if draws.flip_v:
            image = image[::-1]
        if draws.flip_h:
            image = image[:, ::-1]
        return image

    @staticmethod
    def noise_draws(rng: np.random.Generator) -> tuple:
        """The draws of one background: decay, noise stream, hue, saturation, value pairs.
        They take NOISE_DRAWS 64-bit outputs of the generator (see ``skip_noise_draws``)."""
        decay = rng.uniform(*NOISE_DECAY)
        state = np.uint64(rng.integers(0, 2**64, dtype=np.uint64))
        colors = [np.array([rng.uniform(*r) for r in p]) for p in (NOISE_HUE, NOISE_SAT, NOISE_VAL)]
        return decay, state, *colors

    @staticmethod
    def skip_noise_draws(rng: np.random.Generator) -> None:
        """Advance ``rng`` past ``noise_draws`` without making them (modes without a
        background): each uniform and the full-range uint64 take one 64-bit output, as
        each double of ``random`` does, so the later draws are the same."""
        rng.random(NOISE_DRAWS)

    def noise_background(self, draws: tuple, size: int) -> np.ndarray:
        """A colourised diamond-square noise image (size x size x 3) from ``noise_draws``."""
        decay, state, hue, sat, val = draws
        ks.diamond_square(self.levels, decay, state, self.grid)
        image = np.empty((size, size, 3), np.uint8)
        ks.colorize_noise(self.grid, hue, sat, val, image)
        return image

    def blur(self, rng: np.random.Generator, image: np.ndarray) -> bool:
        """Blur ``image`` in place with probability BLUR_P; whether it did."""
        blurred = bool(rng.random() < BLUR_P)
        sigma = rng.uniform(*BLUR_SIGMA)
        if blurred:
            cv2.GaussianBlur(image, (3, 3), sigma, dst=image)
        return blurred

    def render(self, params: np.ndarray, category: int, instance: int):
        """(image, fields) of one instance; the image is owned by the caller."""
        s = self.settings
        rng = np.random.default_rng([s.seed, category, instance])
        draws = Draws.draw(rng, params)
        # drawn (or skipped) in every mode: the modes share their geometry and blur
        noise = self.noise_draws(rng) if self.background else self.skip_noise_draws(rng)
        fg = self.oriented_fractal(params, draws, s.size)
        if self.background:
            out = self.noise_background(noise, s.size)
            ks.composite(fg, out)
        else:
            out = fg
        blurred = self.blur(rng, out)
        return out, {"blurred": blurred}


# --- the family -----------------------------------------------------------------------------


@register_family("svdfractal")
class SVDFractal(Family):
    """SVD fractals: a category is a contractive IFS (no filter); a sample is one randomised
    rendering of it."""

    category_suffix = CATEGORY_SUFFIX
    SearchSettings = SearchSettings
    RenderSettings = RenderSettings

    def format_category(self, params: np.ndarray) -> str:
        return ifs_csv.format_rows(params)

    def read_category(self, path: Path) -> np.ndarray:
        return ifs_csv.read_rows(path, "a,b,c,d,e,f,p")

    def candidate_specs(self, settings: SearchSettings, start: int, rng_state, batch: int):
        while True:
            yield (start, batch), None
            start += batch

    def evaluate_candidates(self, settings: SearchSettings, spec) -> list[Candidate]:
        start, count = spec
        return [
            Candidate(k, sample_system(settings.seed, k, settings.maps_min, settings.maps_max))
            for k in range(start, start + count)
        ]

    def renderer(self, settings: RenderSettings) -> Renderer:
        return Renderer(settings)

    def render_group(self, renderer: Renderer, group: Group, fmt: str):
        """One sample per instance; unblurred grey images as 1-bit PNGs."""
        for instance in group.instances:
            image, fields = renderer.render(group.params, group.unit, instance)
            two_level = GRAY_VALUE if renderer.gray and not fields["blurred"] else None
            payload = {fmt: image_member(image, fmt, two_level)}
            yield self.category_sample(group, instance, payload, fields)

    def describe(self, db) -> list[tuple[str, str]]:
        return [("maps", ifs_csv.maps_histogram(db.params))]
