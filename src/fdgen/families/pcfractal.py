"""PC-FractalDB (Yamada et al., CVPR 2022): point clouds of 3D fractals with FractalNoiseMix.

Search: the 3D variance search of ``fractal3d``. A sample (instance j of category c) is
``main_points`` points of the category's orbit plus ``mix_points`` points of a "mix" fractal
(another category of the database), each part scaled into [-1, 1] by one min/max over all
axes and centred, concatenated (main first) and centred again: ``.npy`` float32 N x 3.

``mix="sample"`` (default) seeds everything per sample: the main orbit from
(seed, c, j, 1), the mix category from (seed, c, j, 2) (uniform over the other categories),
its orbit from (seed, c, j, 3). ``mix="original"`` keeps the published code's sharing: the
main points once per category (stream (seed, c, 1), so all instances of a category share
them) and one list of mix categories for the run (a seeded permutation; instance j mixes
with entry j mod categories in every category). docs/pcfractal.md gives the details.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fdgen.errors import check_option
from fdgen.families import fractal3d as f3
from fdgen.families import register_family
from fdgen.families.base import Group, Member, PreviewLayout, choice_field, npy_bytes
from fdgen.lazy import lazy_module

ifs = lazy_module("fdgen.kernels.ifs")
ifs3d = lazy_module("fdgen.kernels.ifs3d")
streams = lazy_module("fdgen.kernels.rng")

MIX_MODES = ("sample", "original")
# Stream tags of one sample's draws.
_MAIN_KEY = 1
_CHOICE_KEY = 2
_MIX_KEY = 3
_LIST_KEY = 4  # mix="original": the run's list of mix categories, from (seed, _LIST_KEY)
PREVIEW_SIZE = 224
PREVIEW_VIEW = (30.0, 20.0)  # azimuth, elevation of the preview's projection
MIX_GREY = 128


@dataclass(frozen=True)
class RenderSettings:
    """FractalNoiseMix; defaults are the published code's ratio 0.8 of 10,000 points."""

    main_points: int = 8000
    mix_points: int = 2001
    instances: int = 1000
    mix: str = choice_field("sample", MIX_MODES)
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(self.main_points >= 1, "--main-points", "must be >= 1")
        check_option(self.mix_points >= 0, "--mix-points", "must be >= 0")
        check_option(self.instances >= 1, "--instances", "must be >= 1")
        check_option(self.mix in MIX_MODES, "--mix", f"must be one of {', '.join(MIX_MODES)}")
        check_option(self.seed >= 0, "--seed", "must be >= 0")


def _orbit(params: np.ndarray, state, buffer: np.ndarray) -> tuple[int, bool]:
    """Normalised, centred orbit of ``params`` into ``buffer``: (points kept, diverged)."""
    kept, finite = ifs3d.orbit3d(
        np.ascontiguousarray(params[:, : f3.PARAMS]), f3.cumulative(params), state, buffer
    )
    if not ifs3d.normalise(buffer, kept):
        kept = 0
    return kept, not finite


class Renderer:
    """FractalNoiseMix clouds; holds the two parts' buffers and the run's mix list."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.main = np.empty((settings.main_points, 3))
        self.mix = np.empty((max(settings.mix_points, 1), 3))
        self.mix_lists: dict[int, np.ndarray] = {}

    def mix_list(self, categories: int) -> np.ndarray:
        """mix="original": the run's seeded permutation of the categories."""
        if categories not in self.mix_lists:
            order = np.empty(categories, np.int64)
            state = streams.sample_state(self.settings.seed, _LIST_KEY)
            ifs3d.shuffle_indices(state, categories, order)
            self.mix_lists[categories] = order
        return self.mix_lists[categories]

    def mix_category(self, category: int, instance: int, categories: int) -> int:
        """The category whose fractal is mixed into instance ``instance`` of ``category``."""
        s = self.settings
        if s.mix == "original":
            return int(self.mix_list(categories)[instance % categories])
        if categories == 1:
            return category
        u = np.empty(1)
        ifs.fill_uniform(streams.sample_state(s.seed, category, instance, _CHOICE_KEY), u)
        other = min(int(u[0] * (categories - 1)), categories - 2)
        return other + (other >= category)

    def cloud(self, pool: list, category: int, instance: int) -> tuple[np.ndarray, dict]:
        """The float32 cloud of one sample (main part first) and its json fields."""
        s = self.settings
        if s.mix == "original":
            main_state = streams.sample_state(s.seed, category, _MAIN_KEY)
        else:
            main_state = streams.sample_state(s.seed, category, instance, _MAIN_KEY)
        kept_main, main_diverged = _orbit(pool[category], main_state, self.main)
        mixed = self.mix_category(category, instance, len(pool))
        kept_mix, mix_diverged = 0, False
        if s.mix_points:
            mix_state = streams.sample_state(s.seed, category, instance, _MIX_KEY)
            kept_mix, mix_diverged = _orbit(pool[mixed], mix_state, self.mix[: s.mix_points])
        out = np.empty((kept_main + kept_mix, 3), np.float32)
        ifs3d.mix_clouds(self.main, kept_main, self.mix, kept_mix, out)
        fields = {
            "mix_category": mixed,
            "main_points": kept_main,
            "mix_points": kept_mix,
            "diverged": bool(main_diverged or mix_diverged),
        }
        return out, fields


def projection(cloud: np.ndarray, main_points: int, size: int = PREVIEW_SIZE) -> np.ndarray:
    """A grey image of a cloud from the preview view: main points white, mix points grey."""
    image = np.zeros((size, size), np.uint8)
    focal = 1.0 / math.tan(math.radians(f3.FOV_DEG) / 2.0)
    rot = f3.rotation(*PREVIEW_VIEW)
    pts = np.ascontiguousarray(cloud, dtype=np.float64)
    mix = np.ascontiguousarray(pts[main_points:])
    ifs3d.project_points(mix, len(mix), rot, f3.DISTANCE, focal, image, MIX_GREY)
    ifs3d.project_points(pts, main_points, rot, f3.DISTANCE, focal, image, f3.WHITE)
    return image


@register_family("pcfractal")
class PCFractal(f3.Fractal3D):
    """PC-FractalDB: the 3D search of ``fractal3d``; a sample is one FractalNoiseMix cloud."""

    RenderSettings = RenderSettings
    renderer = staticmethod(Renderer)
    preview_layout = PreviewLayout(
        "{shown} categories (a projection: main points white, mix points grey), "
        "{instances} instances of the first"
    )

    def group_size(self, settings: RenderSettings) -> int:
        return 1

    def unit_input(self, db, unit: int):
        """The whole list of categories: a sample mixes in another one. The list is one
        object, so a shard task pickles it once whatever its number of categories."""
        return (unit, db.params), db.names[unit] + self.category_suffix

    def render_group(self, renderer: Renderer, group: Group, fmt: str):
        unit, pool = group.params
        for instance in group.instances:
            cloud, fields = renderer.cloud(pool, unit, instance)
            yield self.category_sample(group, instance, {"npy": Member(cloud, npy_bytes)}, fields)

    def members(self, settings: RenderSettings, fmt: str) -> tuple[str, ...]:
        return ("npy", "cls", "json")

    def preview_rows(self, db, settings: RenderSettings, categories: int, instances: int):
        """Sample 0 of the first categories, then instances of category 0 (projections)."""
        renderer = Renderer(settings)

        def image_of(unit: int, instance: int) -> np.ndarray:
            cloud, fields = renderer.cloud(db.params, unit, instance)
            return projection(cloud, fields["main_points"])

        firsts = [image_of(c, 0) for c in range(min(categories, len(db)))]
        spread = np.linspace(0, settings.instances - 1, instances).round().astype(int)
        variants = [image_of(0, i) for i in dict.fromkeys(spread.tolist())]
        width = max(1, int(np.ceil(np.sqrt(len(firsts)))))
        return [firsts[k : k + width] for k in range(0, len(firsts), width)] + [variants]
