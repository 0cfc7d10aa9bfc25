"""VG-FractalDB (Yamada et al., ECCV 2024): an image and a point cloud of one 3D IFS instance.

The paper pre-trains one transformer on both modalities of a class; its generator and data
were never released, so this is a reconstruction (docs/vgfractal.md lists every choice): the
ExFractalDB search and instance models (``fractal3d``), and per sample one model's orbit of
``points`` points, normalised and centred, which gives both members:

- ``png``: the orbit seen from the sample's view (45 degree perspective camera at distance 4,
  white points on black, ``size`` px), exactly as ``fractal3d`` draws it;
- ``npy``: every ``points // cloud_points``-th point of the same orbit (``cloud_points``
  points), float32 N x 3, in the camera's frame (``cloud_frame="camera"``: projecting it with
  the fixed camera at (0, 0, 4) looking down -z gives the image's pixels) or in the model's
  own frame (``"world"``: the json's angles give the view).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from fdgen.errors import check_option
from fdgen.families import fractal3d as f3
from fdgen.families import register_family
from fdgen.families.base import Group, Member, PreviewLayout, choice_field, image_member, npy_bytes
from fdgen.lazy import lazy_module

ifs3d = lazy_module("fdgen.kernels.ifs3d")

CLOUD_FRAMES = ("camera", "world")


@dataclass(frozen=True)
class RenderSettings:
    """VG-FractalDB rendering (a reconstruction: see docs/vgfractal.md). Defaults: the
    ExFractalDB image (224 px, 100,000 points, random views, 145 models) and a 10,000-point
    cloud (the 3D search's and PC-FractalDB's cloud size)."""

    size: int = 224
    points: int = 100_000
    cloud_points: int = 10_000
    cloud_frame: str = choice_field("camera", CLOUD_FRAMES)
    instances: int = 1000
    models: int = f3.MAX_MODELS
    views: str = choice_field("random", f3.VIEW_MODES)
    view_jitter: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(8 <= self.size <= 8192, "--size", "must be in 8..8192")
        check_option(self.points >= 1, "--points", "must be >= 1")
        check_option(
            1 <= self.cloud_points <= self.points,
            "--cloud-points",
            f"must be in 1..--points ({self.points})",
        )
        check_option(
            self.cloud_frame in CLOUD_FRAMES,
            "--cloud-frame",
            f"must be one of {', '.join(CLOUD_FRAMES)}",
        )
        check_option(self.instances >= 1, "--instances", "must be >= 1")
        check_option(
            1 <= self.models <= f3.MAX_MODELS, "--models", f"must be in 1..{f3.MAX_MODELS}"
        )
        check_option(
            self.views in f3.VIEW_MODES, "--views", f"must be one of {', '.join(f3.VIEW_MODES)}"
        )
        check_option(0 <= self.view_jitter <= 15, "--view-jitter", "must be in [0, 15] degrees")
        check_option(self.seed >= 0, "--seed", "must be >= 0")

    @property
    def stride(self) -> int:
        """The cloud takes every stride-th point of the image's orbit."""
        return self.points // self.cloud_points


class Renderer(f3.Renderer):
    """Image and cloud of the instances of one model; reuses the orbit and image buffers."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.pts = np.empty((settings.points, 3))
        self.image = np.zeros((settings.size, settings.size), np.uint8)
        self.focal = 1.0 / math.tan(math.radians(f3.FOV_DEG) / 2.0)
        self.pointcloud = False

    def render_pairs(self, params: np.ndarray, category: int, group: int, instances: list[int]):
        """Yield (instance, image, float32 cloud, fields) for instances of one model."""
        s = self.settings
        model = group % s.models
        pts, diverged = self.cloud(params, category, model)
        subset = pts[:: s.stride][: s.cloud_points]
        for instance in instances:
            azimuth, elevation = f3.view_angles(s, category, instance)
            rot = f3.rotation(azimuth, elevation)
            image, drawn = self.project(pts, rot)
            cloud = np.empty((len(subset), 3), np.float32)
            if s.cloud_frame == "camera":
                ifs3d.rotate_points(subset, len(subset), rot, cloud)
            else:
                cloud[:] = subset
            fields = {
                **f3.instance_fields(s, instance),
                "azimuth": round(float(azimuth), 6),
                "elevation": round(float(elevation), 6),
                "diverged": diverged,
                "points_drawn": drawn,
                "cloud_points": len(cloud),
                "cloud_frame": s.cloud_frame,
            }
            yield instance, image, cloud, fields


def _cloud_image(cloud: np.ndarray, size: int) -> np.ndarray:
    """A cloud in the camera frame drawn by the fixed camera (for the preview sheet)."""
    image = np.zeros((size, size), np.uint8)
    focal = 1.0 / math.tan(math.radians(f3.FOV_DEG) / 2.0)
    pts = np.ascontiguousarray(cloud, dtype=np.float64)
    ifs3d.project_points(pts, len(pts), np.eye(3), f3.DISTANCE, focal, image, f3.WHITE)
    return image


@register_family("vgfractal")
class VGFractal(f3.Fractal3D):
    """VG-FractalDB: the 3D search of ``fractal3d``; a sample is one instance's image (png)
    and point cloud (npy) with one label."""

    RenderSettings = RenderSettings
    renderer = staticmethod(Renderer)
    preview_layout = PreviewLayout(
        "{shown} categories: image and its point cloud (seen by the fixed camera) of "
        "{instances} instances each"
    )

    def render_group(self, renderer: Renderer, group: Group, fmt: str):
        for instance, image, cloud, fields in renderer.render_pairs(
            group.params, group.unit, group.group, list(group.instances)
        ):
            payload = {fmt: image_member(image, fmt, f3.WHITE), "npy": Member(cloud, npy_bytes)}
            yield self.category_sample(group, instance, payload, fields)

    def members(self, settings: RenderSettings, fmt: str) -> tuple[str, ...]:
        return (fmt, "npy", "cls", "json")

    def preview_rows(self, db, settings: RenderSettings, categories: int, instances: int):
        """Per category (rows): image, then its cloud in the camera frame drawn by the fixed
        camera, for the first ``instances`` (at most 6) samples of model 0."""
        settings = dataclasses.replace(settings, cloud_frame="camera")
        renderer = Renderer(settings)
        picks = list(range(min(instances, 6)))
        rows = []
        for c in range(min(categories, len(db))):
            row = []
            for _, image, cloud, _ in renderer.render_pairs(db.params[c], c, 0, picks):
                row += [image.copy(), _cloud_image(cloud, settings.size)]
            rows.append(row)
        return rows
