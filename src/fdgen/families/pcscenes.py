"""PC-FractalDB detection scenes (Yamada et al., CVPR 2022; REFERENCE section 2).

The categories are 3D fractals searched exactly as ``fractal3d`` (ExFractalDB / PC-FractalDB:
2..7 maps, every axis' variance above 0.05). A sample is one scene, not one category instance:
``objects`` + Poisson(``object_poisson``) objects (15 + Poisson(5) as published), each a
FractalNoiseMix cloud of a random category fitted into a box, on a floor of
``scene_size`` x ``scene_size`` (15 x 15) centred on the origin, z up.

Layout, in the order of the published ``generate_scene.py`` (one stream per scene):
the object count; then per object its box size [b, b u1, b u2] (b ~ U(0.75, 1.25), u1, u2 ~
U(0.9, 1.1); x, y, z), up to ``tries`` (100) centres (x, y each U(-7.5, 7.5), z = half the
height) until the object's footprint circle (radius half the x-y diagonal) keeps
``overlap_margin`` (0.25) from every placed one (the published ``_checkInterpositionBox2``;
the yaw is drawn later, so no rotation can make two boxes overlap); then the yaw
U(-pi, pi) and the category. When every try fails, the published code ends the scene there
(``placement_fail="stop"``); ``"skip"`` goes on with the next object instead.

Points (reconstructed: the published code writes only the boxes; a loader that was never
released put the ``.ply`` objects into them): object j is ``points`` (8,000) orbit points of
its category plus ``mix_points`` (2,001) of a mix category drawn uniformly from the database
(FractalNoiseMix), each part normalised and centred (``ifs3d.normalise``), seeded by (seed,
scene, j); the cloud's bounding box is scaled to the object's box (``fit="stretch"``: per
axis, so the box is tight; ``"keep-aspect"``: one factor), turned by the yaw and moved to the
centre.

Members: ``npy`` (float32 N x 3, the objects' points in order), ``json`` (the boxes as the
published scene files: ``size``, ``c_pos``, ``theta``, ``class_name``, plus ``class``,
``mix_class``, where its points are, ``diverged``) and, with ``point_labels="objects"``,
``labels.npy`` (int16 N x 2: the point's object index and part, 0 main and 1 mix).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fdgen.errors import check_option
from fdgen.families import register_family
from fdgen.families.base import Group, Member, PreviewLayout, Sample, choice_field, npy_bytes
from fdgen.families.fractal3d import PARAMS, Fractal3D, cumulative
from fdgen.lazy import lazy_module

cv2 = lazy_module("cv2")
ifs = lazy_module("fdgen.kernels.ifs")
ifs3d = lazy_module("fdgen.kernels.ifs3d")
kscene = lazy_module("fdgen.kernels.pcscenes")
streams = lazy_module("fdgen.kernels.rng")

_SCENE_STREAM = 0x5043_5343  # "PCSC": separates the scene streams from other keyed streams
_MAIN_PART, _MIX_PART = 1, 2
FITS = ("stretch", "keep-aspect")
PLACEMENT_FAILS = ("stop", "skip")
POINT_LABELS = ("objects", "none")

# Published distributions (generate_scene.py).
BASE_MIN, BASE_SPAN = 0.75, 0.5  # box size b ~ U(0.75, 1.25)
ASPECT_MIN, ASPECT_SPAN = 0.9, 0.2  # y and z aspects ~ U(0.9, 1.1); x's is 1


@dataclass(frozen=True)
class RenderSettings:
    """Scene rendering; defaults are the published ones (points reconstructed, see above)."""

    images: int = 10_000
    objects: int = 15
    object_poisson: float = 5.0
    scene_size: float = 15.0
    tries: int = 100
    overlap_margin: float = 0.25
    placement_fail: str = choice_field("stop", PLACEMENT_FAILS)
    points: int = 8000
    mix_points: int = 2001
    fit: str = choice_field("stretch", FITS)
    point_labels: str = choice_field("objects", POINT_LABELS)
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(self.images >= 1, "--images", "must be >= 1")
        check_option(0 <= self.objects <= 1000, "--objects", "must be in [0, 1000]")
        check_option(
            0 <= self.object_poisson <= 100, "--object-poisson", "must be in [0, 100] (a mean)"
        )
        check_option(1 <= self.scene_size <= 1000, "--scene-size", "must be in [1, 1000]")
        check_option(1 <= self.tries <= 10_000, "--tries", "must be in [1, 10000]")
        check_option(0 <= self.overlap_margin <= 10, "--overlap-margin", "must be in [0, 10]")
        check_option(
            self.placement_fail in PLACEMENT_FAILS,
            "--placement-fail",
            f"must be one of {', '.join(PLACEMENT_FAILS)}",
        )
        check_option(1 <= self.points <= 1_000_000, "--points", "must be in [1, 1000000]")
        check_option(0 <= self.mix_points <= 1_000_000, "--mix-points", "must be in [0, 1000000]")
        check_option(self.fit in FITS, "--fit", f"must be one of {', '.join(FITS)}")
        check_option(
            self.point_labels in POINT_LABELS,
            "--point-labels",
            f"must be one of {', '.join(POINT_LABELS)}",
        )
        check_option(self.seed >= 0, "--seed", "must be >= 0")


# --- layout -----------------------------------------------------------------------------------


class Uniforms:
    """Uniforms in [0, 1) from one SplitMix64 stream, drawn one at a time."""

    def __init__(self, state: np.uint64):
        self.state = np.uint64(state)
        self._one = np.empty(1)

    def __call__(self) -> float:
        self.state = np.uint64(ifs.fill_uniform(self.state, self._one))
        return float(self._one[0])

    def poisson(self, mean: float) -> int:
        """Poisson(mean) by Knuth's product of uniforms (exact, stream-stable)."""
        limit, count, product = math.exp(-mean), 0, self()
        while product > limit:
            count += 1
            product *= self()
        return count

    def below(self, n: int) -> int:
        """An integer in [0, n)."""
        return min(int(self() * n), n - 1)


@dataclass(frozen=True)
class Box:
    """One object of a scene: box size (x, y, z), centre, yaw, category and mix category."""

    size: tuple[float, float, float]
    centre: tuple[float, float, float]
    theta: float
    category: int
    mix: int


@dataclass(frozen=True)
class Layout:
    """The boxes of one scene and how many objects its count asked for."""

    boxes: list[Box]
    requested: int
    failed: int  # objects for which every try overlapped


def scene_layout(settings: RenderSettings, categories: int, scene: int) -> Layout:
    """The boxes of scene ``scene``, drawn from its own stream (see the module docstring)."""
    draw = Uniforms(streams.sample_state(settings.seed, _SCENE_STREAM, scene))
    requested = settings.objects + draw.poisson(settings.object_poisson)
    half = 0.5 * settings.scene_size
    boxes: list[Box] = []
    centres = np.empty((requested, 2))
    radii = np.empty(requested)
    failed = 0
    for _ in range(requested):
        base = BASE_MIN + BASE_SPAN * draw()
        aspect_y = ASPECT_MIN + ASPECT_SPAN * draw()
        aspect_z = ASPECT_MIN + ASPECT_SPAN * draw()
        size = (base, base * aspect_y, base * aspect_z)
        radius = 0.5 * math.hypot(size[0], size[1])
        placed = len(boxes)
        centre = None
        for _ in range(settings.tries):
            x = (1.0 - 2.0 * draw()) * half
            y = (1.0 - 2.0 * draw()) * half
            gaps = np.hypot(centres[:placed, 0] - x, centres[:placed, 1] - y)
            if np.all(gaps >= radii[:placed] + radius + settings.overlap_margin):
                centre = (x, y, 0.5 * size[2])
                break
        if centre is None:
            failed += 1
            if settings.placement_fail == "stop":
                break
            continue
        theta = (1.0 - 2.0 * draw()) * math.pi
        category = draw.below(categories)
        mix = draw.below(categories)
        centres[placed] = centre[:2]
        radii[placed] = radius
        boxes.append(Box(size, centre, theta, category, mix))
    return Layout(boxes, requested, failed)


# --- render -----------------------------------------------------------------------------------


class Renderer:
    """Renders scenes; holds the scratch buffers of one object's orbit."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.object_pts = np.empty((settings.points + settings.mix_points, 3))

    def _part(self, params: np.ndarray, state, start: int, count: int) -> tuple[int, bool]:
        """Orbit ``count`` points of ``params`` into object_pts[start:], normalised; returns
        (points kept, diverged)."""
        if count == 0:
            return 0, False
        view = self.object_pts[start : start + count]
        maps = np.ascontiguousarray(params[:, :PARAMS])
        kept, finite = ifs3d.orbit3d(maps, cumulative(params), state, view)
        if not ifs3d.normalise(view, kept):
            kept = 0
        return int(kept), not finite

    def render(self, categories: list[np.ndarray], scene: int):
        """(points float32 N x 3, labels int16 N x 2, metadata) of one scene."""
        s = self.settings
        layout = scene_layout(s, len(categories), scene)
        per_object = s.points + s.mix_points
        points = np.empty((len(layout.boxes) * per_object, 3), np.float32)
        labels = np.empty((len(layout.boxes) * per_object, 2), np.int16)
        objects = []
        total = 0
        for j, box in enumerate(layout.boxes):
            main_state = streams.sample_state(s.seed, _SCENE_STREAM, scene, j, _MAIN_PART)
            mix_state = streams.sample_state(s.seed, _SCENE_STREAM, scene, j, _MIX_PART)
            main, main_diverged = self._part(categories[box.category], main_state, 0, s.points)
            mix, mix_diverged = self._part(categories[box.mix], mix_state, main, s.mix_points)
            count = main + mix
            if count:
                kscene.place_in_box(
                    self.object_pts, count, np.array(box.size), s.fit == "keep-aspect",
                    math.cos(box.theta), math.sin(box.theta), np.array(box.centre), points, total,
                )  # fmt: skip
            labels[total : total + count, 0] = j
            labels[total : total + main, 1] = 0
            labels[total + main : total + count, 1] = 1
            objects.append(
                {
                    "size": list(box.size),
                    "c_pos": list(box.centre),
                    "theta": box.theta,
                    "class_name": f"{box.category:06d}",
                    "class": box.category,
                    "mix_class": box.mix,
                    "points": [total, main, mix],
                    "diverged": main_diverged or mix_diverged,
                }
            )
            total += count
        meta = {
            "image": scene,
            "objects": objects,
            "requested_objects": layout.requested,
            "placement_failed": layout.failed,
            "scene_size": s.scene_size,
            "fit": s.fit,
        }
        return points[:total], labels[:total], meta


def top_view(points: np.ndarray, meta: dict, size: int = 512) -> np.ndarray:
    """An RGB top-down image of a scene: points (x right, y up) coloured by class, boxes drawn
    as rotated rectangles, the floor's edge in grey."""
    half = 0.5 * meta["scene_size"] + 1.0  # room for boxes whose centre is on the edge
    scale = size / (2.0 * half)

    def pixels(xy: np.ndarray) -> np.ndarray:
        return np.column_stack([(xy[:, 0] + half) * scale, (half - xy[:, 1]) * scale])

    image = np.zeros((size, size, 3), np.uint8)
    floor = 0.5 * meta["scene_size"] * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])
    cv2.polylines(image, [pixels(floor).round().astype(np.int32)], True, (90, 90, 90), 1)
    for obj in meta["objects"]:
        hue = (obj["class"] * 47) % 180
        rgb = cv2.cvtColor(np.array([[[hue, 200, 255]]], np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
        start, main, mix = obj["points"]
        px = pixels(points[start : start + main + mix, :2].astype(np.float64)).astype(np.int64)
        inside = (px >= 0).all(axis=1) & (px < size).all(axis=1)
        image[px[inside, 1], px[inside, 0]] = rgb // 2
        (sx, sy, _), (cx, cy, _), t = obj["size"], obj["c_pos"], obj["theta"]
        corners = np.array([[-sx, -sy], [sx, -sy], [sx, sy], [-sx, sy]]) * 0.5
        turned = corners @ np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
        outline = pixels(turned + [cx, cy]).round().astype(np.int32)
        cv2.polylines(image, [outline], True, tuple(int(v) for v in rgb), 1, cv2.LINE_AA)
    return image


@register_family("pcscenes")
class PCScenes(Fractal3D):
    """PC-FractalDB detection scenes: the 3D fractal search, and a sample is one scene of
    boxed fractal objects (``npy`` points, ``json`` boxes, ``labels.npy`` point labels)."""

    RenderSettings = RenderSettings
    sample_unit = "image"
    preview_layout = PreviewLayout("{shown} scenes from above, with their boxes")
    renderer = staticmethod(Renderer)

    def group_size(self, settings) -> int:
        return 1

    def sample_key(self, unit: int, instance: int) -> str:
        return f"scene{instance:08d}"

    def render_group(self, renderer: Renderer, group: Group, fmt: str) -> Iterator[Sample]:
        """One sample per scene index: its points, boxes and (optionally) point labels."""
        for index in group.instances:
            points, labels, meta = renderer.render(group.params, index)
            extra = {}
            if renderer.settings.point_labels == "objects":
                extra["labels.npy"] = Member(labels, npy_bytes)
            payload = {"npy": Member(points, npy_bytes)}
            yield Sample.build(self.sample_key(group.unit, index), payload, meta, None, extra)

    def members(self, settings: RenderSettings, fmt: str) -> tuple[str, ...]:
        if settings.point_labels == "objects":
            return ("npy", "json", "labels.npy")
        return ("npy", "json")

    def preview_rows(self, db, settings: RenderSettings, categories: int, instances: int):
        """The first ``categories`` scenes from above, ``instances`` to a row."""
        renderer = Renderer(settings)
        views = []
        for scene in range(categories):
            points, _, meta = renderer.render(db.params, scene)
            views.append(top_view(points, meta))
        width = max(1, instances)
        return [views[k : k + width] for k in range(0, len(views), width)]
