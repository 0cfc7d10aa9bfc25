"""Video Perlin Noise (Kataoka et al., WACV 2022, "Spatiotemporal Initialization for 3D CNNs
with Generated Motion Patterns"; REFERENCE section 2): clips of spatiotemporal Perlin noise.

A category is a frequency triple (fx, fy, ft): lattice cells across the width, down the
height and over the frames of a clip. The search enumerates the grid ``spatial_frequencies``
x ``spatial_frequencies`` x ``time_frequencies`` in that order (ft fastest), without a
filter. An instance is one clip of that class: ``frames`` x ``size`` x ``size`` uint8 grey
noise (``fdgen.kernels.perlin3d``) whose permutation tables and lattice offsets come from the
stream of (seed, category, instance). A sample is the clip as ``.npy`` (T x H x W uint8,
lossless, the default) or ``.mp4`` (MPEG-4 Part 2 through OpenCV's VideoWriter, lossy), with
``.cls`` and ``.json``.

Neither code nor frame count, resolution, octaves or grid were published: the defaults here
(16 frames of 112 px, one octave, spatial 1, 2, 3, 4, 6, 8, 12, 16, 24, temporal 1, 2, 3, 4)
are a reconstruction; docs/video-perlin.md lists every choice.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fdgen.errors import FdgenError, check_option
from fdgen.families import register_family
from fdgen.families.base import (
    Candidate,
    Family,
    Group,
    Member,
    PreviewLayout,
    choice_field,
    npy_bytes,
)
from fdgen.families.contour_base import Field, format_record, read_record
from fdgen.lazy import lazy_module

perlin3d = lazy_module("fdgen.kernels.perlin3d")
streams = lazy_module("fdgen.kernels.rng")

CATEGORY_SUFFIX = ".yaml"
MAX_FREQUENCY = 256  # lattice cells per axis in the highest octave (the hash table's size)
OUTPUTS = ("npy", "mp4")
MP4_FOURCC = "mp4v"  # MPEG-4 Part 2: the encoder opencv-python-headless ships (no H.264)
MP4_FPS = 16.0  # playback rate written into the .mp4 (the paper gives none)
DEFAULT_SPATIAL = "1,2,3,4,6,8,12,16,24"
DEFAULT_TEMPORAL = "1,2,3,4"


@dataclass(frozen=True)
class Category:
    """One class: lattice cells across the width (fx), height (fy) and frames (ft)."""

    fx: int
    fy: int
    ft: int

    @property
    def name(self) -> str:
        """The class name in the style of the published example clips (``x001_y024``)."""
        return f"x{self.fx:03d}_y{self.fy:03d}_t{self.ft:03d}"


FIELDS = (
    Field("fx", int, 1, MAX_FREQUENCY, "lattice cells across the width"),
    Field("fy", int, 1, MAX_FREQUENCY, "lattice cells down the height"),
    Field("ft", int, 1, MAX_FREQUENCY, "lattice cells over the frames"),
)


def parse_frequencies(text: str, option: str) -> tuple[int, ...]:
    """Comma-separated whole numbers in 1..256, strictly increasing; errors name ``option``."""
    rule = f"expected comma-separated whole numbers in 1..{MAX_FREQUENCY}, increasing"
    parts = [p.strip() for p in str(text).split(",")]
    check_option(all(p.isdigit() for p in parts), option, f"{rule}; got {text!r}")
    values = tuple(int(p) for p in parts)
    check_option(
        all(1 <= v <= MAX_FREQUENCY for v in values) and list(values) == sorted(set(values)),
        option,
        f"{rule}; got {text!r}",
    )
    return values


@dataclass(frozen=True)
class SearchSettings:
    """The frequency grid; every triple is a category (no filter)."""

    categories: int = field(default=0, metadata={"default_text": "the whole grid"})  # 0: all
    spatial_frequencies: str = DEFAULT_SPATIAL
    time_frequencies: str = DEFAULT_TEMPORAL

    def __post_init__(self) -> None:
        spatial = parse_frequencies(self.spatial_frequencies, "--spatial-frequencies")
        temporal = parse_frequencies(self.time_frequencies, "--time-frequencies")
        size = len(spatial) ** 2 * len(temporal)
        if self.categories == 0:  # not given: every class of the grid
            object.__setattr__(self, "categories", size)
        check_option(
            1 <= self.categories <= size,
            "--categories",
            f"must be in 1..{size}: the grid holds {len(spatial)} x {len(spatial)} spatial x "
            f"{len(temporal)} temporal frequencies (got {self.categories})",
        )

    def grid(self) -> list[Category]:
        """Every class of the grid, fx slowest, ft fastest."""
        spatial = parse_frequencies(self.spatial_frequencies, "--spatial-frequencies")
        temporal = parse_frequencies(self.time_frequencies, "--time-frequencies")
        return [Category(x, y, t) for x in spatial for y in spatial for t in temporal]


@dataclass(frozen=True)
class RenderSettings:
    """Clip geometry and noise; defaults are reconstructed (docs/video-perlin.md)."""

    size: int = 112
    frames: int = 16
    octaves: int = 1
    persistence: float = 0.5
    instances: int = 100
    output: str = choice_field("npy", OUTPUTS)
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(8 <= self.size <= 1024, "--size", "must be in 8..1024")
        check_option(2 <= self.frames <= 1024, "--frames", "must be in 2..1024")
        check_option(1 <= self.octaves <= 8, "--octaves", "must be in 1..8")
        check_option(0 < self.persistence <= 1, "--persistence", "must be in (0, 1]")
        check_option(self.instances >= 1, "--instances", "must be >= 1")
        check_option(self.output in OUTPUTS, "--output", f"must be one of {', '.join(OUTPUTS)}")
        check_option(self.seed >= 0, "--seed", "must be >= 0")


def encode_mp4(clip: np.ndarray, fps: float = MP4_FPS) -> bytes:
    """MPEG-4 Part 2 (``mp4v``) bytes of a T x H x W uint8 grey clip, written by OpenCV's
    VideoWriter into a temporary file (it writes only to files)."""
    import cv2

    frames, height, width = clip.shape
    with tempfile.TemporaryDirectory(prefix="fdgen-mp4-") as tmp:
        path = os.path.join(tmp, "clip.mp4")
        fourcc = cv2.VideoWriter_fourcc(*MP4_FOURCC)
        writer = cv2.VideoWriter(path, fourcc, fps, (width, height), isColor=False)
        if not writer.isOpened():
            raise FdgenError(
                f"--output mp4: this OpenCV ({cv2.__version__}) cannot write {MP4_FOURCC} "
                "video; use --output npy"
            )
        try:
            for frame in clip:
                writer.write(np.ascontiguousarray(frame))
        finally:
            writer.release()
        return Path(path).read_bytes()


class Renderer:
    """Renders clips; holds the float and uint8 clip buffers and the per-octave tables."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        shape = (settings.frames, settings.size, settings.size)
        self.noise = np.empty(shape)
        self.tables = np.empty((settings.octaves, perlin3d.TABLE), np.int64)
        self.offsets = np.empty((settings.octaves, 3))

    def clip(self, category: Category, unit: int, instance: int) -> np.ndarray:
        """A new T x H x W uint8 clip of ``category`` for sample (unit, instance)."""
        s = self.settings
        top = 2 ** (s.octaves - 1)
        highest = max(category.fx, category.fy, category.ft) * top
        if highest > MAX_FREQUENCY:
            raise FdgenError(
                f"--octaves: {s.octaves} octaves of class {category.name} need {highest} "
                f"lattice cells on one axis, more than {MAX_FREQUENCY}; use fewer octaves"
            )
        perlin3d.draw_octaves(
            streams.sample_state(s.seed, unit, instance), self.tables, self.offsets
        )
        perlin3d.noise_clip(
            self.tables, self.offsets, category.fx, category.fy, category.ft, s.persistence,
            self.noise,
        )  # fmt: skip
        out = np.empty(self.noise.shape, np.uint8)
        perlin3d.to_uint8(self.noise, out)
        return out


@register_family("videoperlin")
class VideoPerlin(Family):
    """Video Perlin Noise: a class is a frequency triple; a sample is one noise clip."""

    category_suffix = CATEGORY_SUFFIX
    SearchSettings = SearchSettings
    RenderSettings = RenderSettings
    preview_layout = PreviewLayout("{shown} categories, {instances} frames of each")

    def format_category(self, params: Category) -> str:
        return format_record(f"Video Perlin Noise class {params.name}", FIELDS, params)

    def read_category(self, path: Path) -> Category:
        return read_record(path, Category, FIELDS)

    def candidate_specs(self, settings: SearchSettings, start: int, rng_state, batch: int):
        """Endless index ranges from ``start`` on; candidate k is grid entry k."""
        while True:
            yield (start, batch), None
            start += batch

    def evaluate_candidates(self, settings: SearchSettings, spec) -> list[Candidate]:
        start, count = spec
        grid = settings.grid()
        # past the grid's end (the search asks for whole batches): refused, never kept
        return [
            Candidate(k, grid[k]) if k < len(grid) else Candidate(k, None, accepted=False)
            for k in range(start, start + count)
        ]

    def renderer(self, settings: RenderSettings) -> Renderer:
        return Renderer(settings)

    def render_group(self, renderer: Renderer, group: Group, fmt: str):
        """One clip per instance (``fmt``, the image format, does not apply)."""
        category: Category = group.params
        for instance in group.instances:
            clip = renderer.clip(category, group.unit, instance)
            if renderer.settings.output == "mp4":
                payload = {"mp4": Member(clip, encode_mp4)}
            else:
                payload = {"npy": Member(clip, npy_bytes)}
            fields = {
                "class": category.name,
                "fx": category.fx,
                "fy": category.fy,
                "ft": category.ft,
                "frames": renderer.settings.frames,
            }
            yield self.category_sample(group, instance, payload, fields)

    def members(self, settings: RenderSettings, fmt: str) -> tuple[str, ...]:
        return (settings.output, "cls", "json")

    def payload_tensor(self, payload: np.ndarray) -> np.ndarray:
        """A clip as C x T x H x W (1 x T x H x W), the layout of 3D CNNs."""
        return payload[None]

    def describe(self, db) -> list[tuple[str, str]]:
        settings = db.meta.get("settings", {})
        spatial = settings.get("spatial_frequencies", DEFAULT_SPATIAL)
        temporal = settings.get("time_frequencies", DEFAULT_TEMPORAL)
        return [("grid", f"fx, fy in {{{spatial}}} x ft in {{{temporal}}}")]

    def preview_rows(self, db, settings: RenderSettings, categories: int, instances: int):
        """One row per category: ``instances`` frames of its clip 0, spread over the clip."""
        renderer = Renderer(settings)
        picks = np.linspace(0, settings.frames - 1, min(instances, settings.frames))
        picks = list(dict.fromkeys(picks.round().astype(int).tolist()))
        return [
            [frame for frame in renderer.clip(db.params[c], c, 0)[picks]]
            for c in range(min(categories, len(db)))
        ]
