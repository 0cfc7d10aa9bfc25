"""1p-frac (Nakamura et al., "Scaling Backwards: Minimal Synthetic Pre-training?", ECCV 2024;
REFERENCE section 2): every class is a perturbation of one single fractal.

The base system is one 2-map IFS drawn by the SVD sampler of ``svdfractal`` with the
sigma-factor U(sigma - 0.1, sigma + 0.1), from the stream SeedSequence([seed, BASE_STREAM]).
Candidate k multiplies every coefficient a..f of every map by its own U(1 - D, 1 + D) from
SeedSequence([seed, k]) and keeps p of the base; it is accepted if its patch_gray raster
(``size`` px, ``points`` points, masks and map choices from SeedSequence([seed,
ACCEPT_STREAM, k])) has more than ``fill_rate`` of its pixels drawn, else the next
perturbation is tried. Categories are FractalDB CSV files and render as FractalDB's
patch_gray (defaults: 512 px, 100,000 points, one unjittered instance, flipped to y up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fdgen.errors import check_option
from fdgen.families import fractal2d, register_family
from fdgen.families import svdfractal as svd
from fdgen.families.base import Candidate
from fdgen.kernels import ifs
from fdgen.kernels.rng import sample_state

MAPS = 2
SIGMA_SPREAD = 0.1  # the sigma-factor is U(sigma - 0.1, sigma + 0.1)
BASE_STREAM = 0x3150_4652  # keys the base system's stream apart from the candidates'
ACCEPT_STREAM = 0x3150_4641  # keys the acceptance rasters' streams
PATCH_PAD = 4  # a 3x3 patch covers 3 pixels past its point


@dataclass(frozen=True)
class SearchSettings:
    """1p-frac: the base system, the perturbation range and the acceptance test."""

    categories: int = 1000
    seed: int = 0
    sigma: float = 3.5
    delta: float = 0.1
    fill_rate: float = 0.05
    points: int = 100_000
    size: int = 512
    pad: int = 6

    def __post_init__(self) -> None:
        check_option(self.categories >= 1, "--categories", "must be >= 1")
        check_option(self.seed >= 0, "--seed", "must be >= 0")
        check_option(
            SIGMA_SPREAD <= self.sigma <= 3 * MAPS - SIGMA_SPREAD,
            "--sigma",
            f"must be in [{SIGMA_SPREAD}, {3 * MAPS - SIGMA_SPREAD}] (2 maps: s1 + 2 s2 <= 3 each)",
        )
        check_option(0 < self.delta < 1, "--delta", "must be in (0, 1)")
        check_option(0 <= self.fill_rate < 1, "--fill-rate", "must be in [0, 1)")
        check_option(self.points >= 2, "--points", "must be >= 2")
        check_option(
            self.pad >= PATCH_PAD and self.size - 2 * self.pad >= 2 and self.size <= 8192,
            "--size/--pad",
            f"need size <= 8192, size - 2 * pad >= 2 and pad >= {PATCH_PAD} (3x3 patches)",
        )
        reachable = min(1.0, 9 * self.points / self.size**2)
        check_option(
            self.fill_rate < reachable,
            "--fill-rate",
            f"{self.fill_rate} can never be exceeded: {self.points} points draw at most "
            f"{reachable:.4f} of a {self.size} x {self.size} raster",
        )


def base_system(seed: int, sigma: float) -> np.ndarray:
    """The one base system (2 x 7: a..f, p) of a seed and sigma."""
    rng = np.random.default_rng([seed, BASE_STREAM])
    alpha = rng.uniform(sigma - SIGMA_SPREAD, sigma + SIGMA_SPREAD)
    return svd.with_probabilities(svd.sample_maps(rng, MAPS, alpha))


def perturbation(base: np.ndarray, seed: int, index: int, delta: float) -> np.ndarray:
    """Candidate ``index``: a..f of the base, each times U(1 - delta, 1 + delta); p kept."""
    factors = np.random.default_rng([seed, index]).uniform(1 - delta, 1 + delta, (len(base), 6))
    return np.column_stack([base[:, :6] * factors, base[:, 6]])


def drawn_fraction(settings: SearchSettings, index: int, params: np.ndarray, scratch):
    """(acceptance score, diverged): drawn pixels over all of the candidate's patch_gray
    raster, and whether its orbit left the finite numbers (then cut as FractalDB's)."""
    xs, ys, masks, canvas = scratch
    maps, cum = np.ascontiguousarray(params[:, :6]), np.cumsum(params[:, 6])
    state = sample_state(settings.seed, ACCEPT_STREAM, index)
    kept, diverged = ifs.orbit_with_masks(maps, cum, state, xs, ys, masks)
    canvas[:] = 0
    gray = fractal2d.GRAY_VALUE
    ifs.draw_patches_gray(xs, ys, masks, kept, settings.size, settings.pad, gray, canvas)
    return float(np.count_nonzero(canvas) / canvas.size), bool(diverged)


@dataclass(frozen=True)
class RenderSettings(fractal2d.RenderSettings):
    """FractalDB's patch_gray rendering with the 1p-frac defaults: 512 px, 100,000 points,
    one instance per class, no weight jitter (D = 0: every weight row is the identity)."""

    size: int = 512
    points: int = 100_000
    weight_delta: float = 0.0
    instances: int = 1


@register_family("onepfrac")
class OnePFrac(fractal2d.FractalDB):
    """1p-frac: categories are accepted perturbations of one base system; rendered as FractalDB."""

    SearchSettings = SearchSettings
    RenderSettings = RenderSettings
    score_name = "fill_rates"

    def candidate_specs(self, settings: SearchSettings, start: int, rng_state, batch: int):
        while True:
            yield (start, batch), None
            start += batch

    def evaluate_candidates(self, settings: SearchSettings, spec) -> list[Candidate]:
        start, count = spec
        n, size = settings.points, settings.size
        scratch = np.empty(n), np.empty(n), np.empty(n, np.uint16), np.zeros((size, size), np.uint8)
        base = base_system(settings.seed, settings.sigma)
        out = []
        for k in range(start, start + count):
            params = perturbation(base, settings.seed, k, settings.delta)
            rate, diverged = drawn_fraction(settings, k, params, scratch)
            out.append(Candidate(k, params, rate, diverged, rate > settings.fill_rate))
        return out
