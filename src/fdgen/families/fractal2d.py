"""FractalDB: 2D iterated function systems (Kataoka et al., ACCV 2020; REFERENCE section 1).

Search: sample N affine maps, keep the category if its 100k-point orbit fills at least
``fill_rate`` of a 512 x 512 raster. Render: instance i of a category is weight row
``(i // 4) % 25``, count ``i // 100`` and flip ``i % 4``; the four flips of one (row, count)
variant are one rendering, so they are made together as one group.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fdgen.encode import two_level_png_rows
from fdgen.errors import check_option
from fdgen.families import ifs_csv, register_family
from fdgen.families.base import Candidate, Group, Member, choice_field, image_member
from fdgen.lazy import lazy_module

cv2 = lazy_module("cv2")
ifs = lazy_module("fdgen.kernels.ifs")
streams = lazy_module("fdgen.kernels.rng")

CATEGORY_SUFFIX = ".csv"
DRAW_MODES = ("patch_gray", "patch_color", "point_gray", "point_color")
RNG_STREAMS = ("default", "legacy")  # candidate streams of the search, see SearchSettings
GRAY_VALUE = 127
FLIPS = 4
WEIGHT_ROWS = 25


# --- category files -------------------------------------------------------------------------


def format_category(params: np.ndarray) -> str:
    """Rows ``a,b,c,d,e,f,p`` with ``%.18e``, no header."""
    return ifs_csv.format_rows(params)


def read_category(path: Path) -> np.ndarray:
    """Read one FractalDB category file (rows a,b,c,d,e,f,p); errors name the file and line."""
    return ifs_csv.read_rows(path, "a,b,c,d,e,f,p")


def with_probabilities(maps: np.ndarray) -> np.ndarray:
    """Append p_i = |a_i d_i - b_i c_i| / sum_j |a_j d_j - b_j c_j|, summed in map order."""
    dets = [abs(a * d - b * c) for a, b, c, d in maps[:, :4].tolist()]
    total = 0.0
    for det in dets:
        total += det
    probs = [det / total if total > 0 else 1.0 / len(dets) for det in dets]
    return np.column_stack([maps[:, :6], np.array(probs)])


# --- search ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSettings:
    """The FractalDB search (REFERENCE 1.1); defaults are the published ones."""

    categories: int = 1000
    fill_rate: float = 0.2
    seed: int = 0
    points: int = 100_000
    size: int = 512
    pad: int = 6
    maps_min: int = 2
    maps_max: int = 7
    rng: str = choice_field("default", RNG_STREAMS)

    def __post_init__(self) -> None:
        check_option(self.categories >= 1, "--categories", "must be >= 1")
        check_option(0 < self.fill_rate <= 1, "--fill-rate", "must be in (0, 1]")
        check_option(self.points >= 2, "--points", "must be >= 2")
        check_option(
            self.pad >= 1 and self.size - 2 * self.pad >= 2,
            "--size/--pad",
            "need pad >= 1 (the last point lands on size - pad) and size - 2 * pad >= 2",
        )
        check_option(
            1 <= self.maps_min <= self.maps_max <= 64, "--maps", "needs 1 <= MIN <= MAX <= 64"
        )
        check_option(self.rng in RNG_STREAMS, "--rng", "must be default or legacy")
        check_option(self.seed >= 0, "--seed", "must be >= 0")
        reachable = self.points / self.size**2
        check_option(
            self.fill_rate <= reachable,
            "--fill-rate",
            f"{self.fill_rate} can never be reached: {self.points} points fill at most "
            f"{reachable:.4f} of a {self.size} x {self.size} raster",
        )


def _scratch(settings: SearchSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scratch arrays of one batch: uniforms, orbit x and y, test raster. Made per batch, not
    per process, so batches evaluated in threads never write into each other's arrays."""
    n, size = settings.points, settings.size
    return np.empty(n), np.empty(n), np.empty(n), np.zeros((size, size), np.uint8)


def _evaluate(settings: SearchSettings, index: int, params, uniforms, scratch) -> Candidate:
    spare, xs, ys, canvas = scratch
    maps, cum = np.ascontiguousarray(params[:, :6]), np.cumsum(params[:, 6])
    kept, diverged = ifs.orbit_from_uniforms(maps, cum, uniforms, xs, ys)
    # the uniforms buffer is spent once the orbit is made: its bytes hold the pixel columns and rows
    pixels = spare.view(np.int32)
    cols, rows = pixels[: settings.points], pixels[settings.points :]
    filled = ifs.filled_pixels(xs, ys, kept, settings.size, settings.pad, canvas, cols, rows)
    rate = filled / (settings.size * settings.size)
    return Candidate(index, params, rate, bool(diverged), rate >= settings.fill_rate)


def _evaluate_default(settings: SearchSettings, index: int, scratch) -> Candidate:
    params, orbit_state = default_candidate(settings, index)
    uniforms = scratch[0][: settings.points - 1]
    ifs.fill_uniform(orbit_state, uniforms)
    return _evaluate(settings, index, params, uniforms, scratch)


def default_candidate(settings: SearchSettings, index: int) -> tuple[np.ndarray, np.uint64]:
    """Parameters of candidate ``index`` of the default stream, and its orbit's stream state.

    The stream is SplitMix64 from SeedSequence(seed, index): draw 0 picks N, draws 1 .. 6N
    are a..f of the N maps (2u - 1), and the orbit's uniforms start at draw 1 + 6 * maps_max.
    """
    head = np.empty(1 + 6 * settings.maps_max)
    orbit_state = np.uint64(ifs.fill_uniform(streams.sample_state(settings.seed, index), head))
    span = settings.maps_max - settings.maps_min + 1
    n_maps = settings.maps_min + int(head[0] * span)
    maps = (2.0 * head[1 : 1 + 6 * n_maps] - 1.0).reshape(n_maps, 6)
    return with_probabilities(maps), orbit_state


def legacy_candidate(rs: np.random.RandomState, settings: SearchSettings) -> np.ndarray:
    """Draw one candidate's maps from the original's single legacy stream (not its orbit)."""
    n_maps = rs.randint(settings.maps_min, settings.maps_max + 1)
    maps = np.array([rs.uniform(-1.0, 1.0, 6) for _ in range(n_maps)])
    return with_probabilities(maps)


def candidate_specs(settings: SearchSettings, start: int, rng_state, batch: int):
    """Endless batches of work from candidate ``start`` on.

    Yields (spec, rng_state_after). For the default stream a spec is just an index range; for
    the legacy stream the parent walks the one global stream and a spec carries each
    candidate's maps and the generator state just before its orbit.
    """
    if settings.rng == "default":
        while True:
            yield ("default", start, batch), None
            start += batch
    rs = np.random.RandomState(settings.seed)
    if rng_state is not None:
        rs.set_state(_state_from_json(rng_state))
    while True:
        items = []
        for index in range(start, start + batch):
            params = legacy_candidate(rs, settings)
            items.append((index, params, rs.get_state()))
            rs.random(settings.points)  # advance past this candidate's orbit
        yield ("legacy", items), _state_to_json(rs.get_state())
        start += batch


def evaluate_candidates(settings: SearchSettings, spec) -> list[Candidate]:
    """Evaluate one batch of candidates (runs in a worker process or thread)."""
    scratch = _scratch(settings)
    if spec[0] == "default":
        _, start, count = spec
        return [_evaluate_default(settings, k, scratch) for k in range(start, start + count)]
    rs = np.random.RandomState()
    out = []
    for index, params, state in spec[1]:
        rs.set_state(state)
        out.append(_evaluate(settings, index, params, rs.random(settings.points), scratch))
    return out


def _state_to_json(state) -> list:
    name, keys, pos, has_gauss, cached = state
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _state_from_json(state: list):
    name, keys, pos, has_gauss, cached = state
    return (name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached)


# --- render ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderSettings:
    """FractalDB rendering (REFERENCE 1.2); defaults are the recommended published settings."""

    size: int = 362
    pad: int = 6
    points: int = 200_000
    draw: str = choice_field("patch_gray", DRAW_MODES)
    weight_delta: float = 0.4
    instances: int = 1000
    seed: int = 0

    @property
    def min_pad(self) -> int:
        """Smallest padding that keeps every drawn pixel inside the image."""
        return 4 if self.draw.startswith("patch") else 1

    def __post_init__(self) -> None:
        check_option(self.draw in DRAW_MODES, "--draw", f"must be one of {', '.join(DRAW_MODES)}")
        check_option(self.points >= 1, "--points", "must be >= 1")
        check_option(
            self.pad >= self.min_pad and self.size - 2 * self.pad >= 2 and self.size <= 8192,
            "--size/--pad",
            f"need size <= 8192, size - 2 * pad >= 2 and pad >= {self.min_pad} for {self.draw} "
            "(a point lands up to size - pad; a patch covers 3 pixels past it)",
        )
        check_option(self.draw in DRAW_MODES, "--draw", f"must be one of {', '.join(DRAW_MODES)}")
        check_option(0 <= self.weight_delta <= 0.5, "--weight-delta", "must be in [0, 0.5]")
        check_option(self.instances >= 1, "--instances", "must be >= 1")
        check_option(self.seed >= 0, "--seed", "must be >= 0")


def weight_table(delta: float) -> np.ndarray:
    """The 25 x 6 weight rows for delta D, as the original tables.

    Rows 0-4 scale a by 1-2D, 1-D, 1, 1+D, 1+2D; rows 5-24 scale b, c, d, e, f in turn by
    the four factors other than 1. A factor of 0 is written as 0.01, as the original does.
    """
    factors = [round(1 - 2 * delta, 12), round(1 - delta, 12), 1.0]
    factors += [round(1 + delta, 12), round(1 + 2 * delta, 12)]
    factors = [0.01 if f == 0 else f for f in factors]
    rows = []
    for param in range(6):
        for f in factors if param == 0 else factors[:2] + factors[3:]:
            row = [1.0] * 6
            row[param] = f
            rows.append(row)
    return np.array(rows)


def hue_colors() -> np.ndarray:
    """128 RGB colours: hue cycles with the point index, saturation and value 0.75."""
    rgb = [colorsys.hsv_to_rgb(k / 128, 0.75, 0.75) for k in range(128)]
    return np.array([[round(255 * c) for c in color] for color in rgb], dtype=np.uint8)


def group_size(settings: RenderSettings) -> int:
    """Instances rendered together: the four flips of one variant."""
    return FLIPS


def instance_fields(instance: int) -> dict:
    """Weight row, count and flip of an instance index."""
    return {
        "weight_row": (instance // FLIPS) % WEIGHT_ROWS,
        "count": instance // (FLIPS * WEIGHT_ROWS),
        "flip": instance % FLIPS,
    }


def oriented(raster: np.ndarray, flip: int, mirrored: np.ndarray | None = None) -> np.ndarray:
    """The raster turned y-up (a first top-bottom flip), then flip 0 as is, 1 top-bottom,
    2 left-right, 3 both. Views, except that left-right flips read ``mirrored`` (the raster
    mirrored left-right, a contiguous copy) when given: encoders are slow on reversed rows."""
    up = raster[::-1]
    if flip < 2:
        return up if flip == 0 else raster
    side = mirrored if mirrored is not None else raster[:, ::-1]
    return side[::-1] if flip == 2 else side


class Renderer:
    """Renders variants of categories; holds its scratch buffers for reuse."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        n = settings.points
        self.xs, self.ys = np.empty(n), np.empty(n)
        self.masks = np.empty(n, np.uint16)
        self.gray = settings.draw.endswith("_gray")
        self.patch = settings.draw.startswith("patch")
        channels = 1 if self.gray else 3
        self.image = np.zeros((settings.size, settings.size, channels), np.uint8)
        self.colors = np.array([[GRAY_VALUE]], np.uint8) if self.gray else hue_colors()
        self.weights = weight_table(settings.weight_delta)
        # patch_gray draws on a bit raster (1 bit per pixel) and encodes PNGs from its rows
        self.packed = self.patch and self.gray
        if self.packed:
            size = settings.size
            self.cols, self.rows = np.empty(n, np.int32), np.empty(n, np.int32)
            self.words = np.zeros((size, ifs.bit_words(size)), np.uint64)
            self.png_rows = np.empty((size, 1 + (size + 7) // 8), np.uint8)

    def render_variant(self, params: np.ndarray, category: int, variant: int):
        """Raster (size x size x channels, y down as computed) of one variant, and whether its
        orbit diverged. The returned array is reused by the next call."""
        s = self.settings
        row = variant % WEIGHT_ROWS
        maps = np.ascontiguousarray(params[:, :6] * self.weights[row])
        cum = np.cumsum(params[:, 6])
        state = streams.sample_state(s.seed, category, variant)
        kept, diverged = ifs.orbit_with_masks(maps, cum, state, self.xs, self.ys, self.masks)
        image = self.image
        xs, ys, masks = self.xs, self.ys, self.masks
        if self.packed:
            cols, rows, words = self.cols, self.rows, self.words
            ifs.draw_patches_bits(xs, ys, masks, kept, s.size, s.pad, cols, rows, words)
            ifs.unpack_bits(words, s.size, GRAY_VALUE, image[:, :, 0])
            return image, bool(diverged)
        image[:] = 0
        if self.patch:
            ifs.draw_patches(xs, ys, masks, kept, s.size, s.pad, self.colors, image)
        else:
            ifs.draw_points(xs, ys, kept, s.size, s.pad, self.colors, image)
        return image, bool(diverged)

    def render_group(self, params: np.ndarray, category: int, group: int, instances: list[int]):
        """Yield (instance, image, fields) for the given instances of variant ``group``."""
        raster, diverged = self.render_variant(params, category, group)
        mirrored = None
        if not self.packed and any(i % FLIPS >= 2 for i in instances):
            mirrored = cv2.flip(raster, 1).reshape(raster.shape)
        for instance in instances:
            fields = instance_fields(instance)
            image = oriented(raster, fields["flip"], mirrored)
            yield instance, image, {**fields, "diverged": diverged}

    def png_from_bits(self, flip: int) -> bytes:
        """The 1-bit PNG of flip ``flip`` of the current variant, written from the bit raster's
        rows (patch_gray only): the bytes ``encode_image`` makes of that image."""
        size = self.settings.size
        ifs.png_rows_from_bits(self.words, size, flip, self.png_rows)
        return two_level_png_rows(self.png_rows, size, GRAY_VALUE)

    def image_member(self, image: np.ndarray, flip: int, fmt: str) -> Member:
        """The image member of flip ``flip`` of the current variant; a patch_gray PNG is encoded
        from the bit raster, so like the image it is valid until the next variant."""
        if self.packed and fmt == "png":
            return Member(image, lambda _image: self.png_from_bits(flip))
        return image_member(image, fmt, GRAY_VALUE if self.gray else None)


# --- the family -----------------------------------------------------------------------------


@register_family("fractal")
class FractalDB(ifs_csv.IFSFamily):
    """FractalDB: a category is an IFS whose orbit fills enough of a raster; a sample is one
    flip of one weight variant, ``group_size`` flips rendered together."""

    columns = "a,b,c,d,e,f,p"
    SearchSettings = SearchSettings
    RenderSettings = RenderSettings
    score_name = "fill_rates"

    # search and render: the module's functions
    candidate_specs = staticmethod(candidate_specs)
    evaluate_candidates = staticmethod(evaluate_candidates)
    group_size = staticmethod(group_size)
    renderer = staticmethod(Renderer)

    def render_group(self, renderer: Renderer, group: Group, fmt: str):
        """The flips of one variant; grey images (0 and GRAY_VALUE only) as 1-bit PNGs."""
        for instance, image, fields in renderer.render_group(
            group.params, group.unit, group.group, list(group.instances)
        ):
            payload = {fmt: renderer.image_member(image, fields["flip"], fmt)}
            yield self.category_sample(group, instance, payload, fields)
