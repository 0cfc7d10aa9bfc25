"""3D fractals: MV-FractalDB, ExFractalDB, OFDB-3D and plain point clouds (REFERENCE section 2).

Search: sample 2..7 affine maps of R^3 (12 parameters each in [-1, 1], p proportional to
|det A|); keep the category when its 10,000-point cloud, scaled into [-1, 1] and centred, is
finite and has a variance above ``variance`` on every axis.

Render: a category has ``models`` instance models (model 0 the category itself, models 1..144
one of the 12 parameters times 0.4..1.6 in steps of 0.1, 1.0 left out). Instance i shows
model ``(i // 12) % models`` from view ``i % 12``; the 12 views of one model share one point
cloud (one group). Views are ``fixed`` (azimuth 30 k + 30 degrees about y, seeded jitter) or
``random`` (a seeded direction uniform on the sphere). Points are projected with a 45 degree
perspective camera at distance 4 and drawn as white pixels on black, or, with
``output="pointcloud"``, the cloud itself is written as ``.npy`` (float32, N x 3).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fdgen.errors import check_option
from fdgen.families import ifs_csv, register_family
from fdgen.families.base import (
    Candidate,
    Group,
    Member,
    PreviewLayout,
    choice_field,
    image_member,
    npy_bytes,
)
from fdgen.lazy import lazy_module

ifs = lazy_module("fdgen.kernels.ifs")
ifs3d = lazy_module("fdgen.kernels.ifs3d")
streams = lazy_module("fdgen.kernels.rng")

CATEGORY_SUFFIX = ".csv"
PARAMS = 12  # a..l per map
COLUMNS = PARAMS + 1  # and p
VIEWS = 12
FACTORS = tuple(round(0.4 + 0.1 * k, 1) for k in range(13) if k != 6)  # 0.4..1.6 without 1.0
MAX_MODELS = 1 + PARAMS * len(FACTORS)  # 145
FOV_DEG = 45.0
DISTANCE = 4.0
WHITE = 255
VIEW_MODES = ("fixed", "random")
OUTPUTS = ("image", "pointcloud")
# Stream tags: a model's orbit and a sample's view angles come from separate streams.
_CLOUD_KEY = 1
_VIEW_KEY = 2


# --- category files -------------------------------------------------------------------------


def format_category(params: np.ndarray) -> str:
    """Rows ``a,b,c,d,e,f,g,h,i,j,k,l,p`` with ``%.18e``, no header."""
    return ifs_csv.format_rows(params)


def read_category(path: Path) -> np.ndarray:
    """Read one 3D category file (rows a..l,p); errors name the file and line."""
    return ifs_csv.read_rows(path, "a,b,c,d,e,f,g,h,i,j,k,l,p")


def det3(a: float, b: float, c: float, d: float, e: float, f: float, g: float, h: float, i: float):
    """Determinant of [[a, b, c], [d, e, f], [g, h, i]] by cofactors of the first row.

    Plain float operations in a fixed order, each rounded once (Python has no fused
    multiply-add), so the result is the same bits on every machine; LAPACK's LU-based ``det``
    depends on the BLAS build.
    """
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def with_probabilities(maps: np.ndarray) -> np.ndarray:
    """Append p_i = |det A_i| / sum_j |det A_j| (A the 3x3 part a..i), summed in map order;
    equal p if all are 0."""
    dets = [abs(det3(*row)) for row in maps[:, :9].tolist()]
    total = 0.0
    for det in dets:  # not sum(): Python 3.12 made it compensated, so results would differ
        total += det
    probs = [det / total if total > 0 else 1.0 / len(dets) for det in dets]
    return np.column_stack([maps[:, :PARAMS], np.array(probs)])


def cumulative(params: np.ndarray) -> np.ndarray:
    """Cumulative selection probabilities of a category's maps."""
    return np.cumsum(params[:, PARAMS])


# --- search ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSettings:
    """The 3D FractalDB search; defaults are the published ones."""

    categories: int = 1000
    variance: float = 0.05
    seed: int = 0
    points: int = 10_000
    maps_min: int = 2
    maps_max: int = 7

    def __post_init__(self) -> None:
        check_option(self.categories >= 1, "--categories", "must be >= 1")
        check_option(0 < self.variance < 1, "--variance", "must be in (0, 1)")
        check_option(self.points >= 2, "--points", "must be >= 2")
        check_option(
            1 <= self.maps_min <= self.maps_max <= 64, "--maps", "needs 1 <= MIN <= MAX <= 64"
        )
        check_option(self.seed >= 0, "--seed", "must be >= 0")


def candidate(settings: SearchSettings, index: int) -> tuple[np.ndarray, np.uint64]:
    """Parameters of candidate ``index`` and the stream state its orbit starts from.

    The stream is SplitMix64 from SeedSequence(seed, index): u[0] picks N, u[1 : 1 + 12 N]
    are a..l of the N maps (2u - 1); 1 + 12 * maps_max uniforms are always drawn, then the
    orbit continues the same stream.
    """
    uniforms = np.empty(1 + PARAMS * settings.maps_max)
    state = np.uint64(ifs.fill_uniform(streams.sample_state(settings.seed, index), uniforms))
    span = settings.maps_max - settings.maps_min + 1
    n_maps = settings.maps_min + int(uniforms[0] * span)
    maps = (2.0 * uniforms[1 : 1 + PARAMS * n_maps] - 1.0).reshape(n_maps, PARAMS)
    return with_probabilities(maps), state


def search_cloud(settings: SearchSettings, params: np.ndarray, state) -> tuple[np.ndarray, bool]:
    """The normalised, centred test cloud of a candidate and whether it is finite."""
    pts = np.empty((settings.points, 3))
    kept, finite = ifs3d.orbit3d(
        np.ascontiguousarray(params[:, :PARAMS]), cumulative(params), state, pts
    )
    ok = finite and ifs3d.normalise(pts, kept)
    return pts, bool(ok)


def evaluate(settings: SearchSettings, index: int) -> Candidate:
    """Evaluate candidate ``index``: accepted when finite and every axis variance exceeds
    ``settings.variance``."""
    params, state = candidate(settings, index)
    pts, ok = search_cloud(settings, params, state)
    if not ok:
        return Candidate(index, params, 0.0, True, False)
    var = np.empty(3)
    ifs3d.axis_variances(pts, pts.shape[0], var)
    low = float(var.min())
    return Candidate(index, params, low, False, low > settings.variance)


def candidate_specs(settings: SearchSettings, start: int, rng_state, batch: int):
    """Endless batches (index ranges) from candidate ``start`` on; no shared stream state."""
    while True:
        yield ("default", start, batch), None
        start += batch


def evaluate_candidates(settings: SearchSettings, spec) -> list[Candidate]:
    """Evaluate one batch of candidates (runs in a worker process)."""
    _, start, count = spec
    return [evaluate(settings, k) for k in range(start, start + count)]


# --- instance models and views --------------------------------------------------------------


def model_table(models: int = MAX_MODELS) -> list[tuple[int, float]]:
    """(parameter index, factor) of each instance model; model 0 is (-1, 1.0), the identity.

    Model 1 + 12 p + f scales parameter p (a..l) of every map by FACTORS[f].
    """
    table = [(-1, 1.0)] + [(p, f) for p in range(PARAMS) for f in FACTORS]
    return table[:models]


def model_params(params: np.ndarray, model: int) -> np.ndarray:
    """The maps of instance model ``model`` (p unchanged)."""
    param, factor = model_table()[model]
    maps = np.array(params[:, :PARAMS], dtype=np.float64)
    if param >= 0:
        maps[:, param] *= factor
    return maps


def rotation(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """World-to-camera rotation of a camera at azimuth/elevation looking at the origin, y up.

    The camera sits at distance * (cos e sin a, sin e, cos e cos a); rows are the camera's
    right, up and backward axes (OpenGL lookAt with up = +y).
    """
    a = math.radians(azimuth_deg)
    e = math.radians(elevation_deg)
    ca, sa, ce, se = math.cos(a), math.sin(a), math.cos(e), math.sin(e)
    return np.array(
        [
            [ca, 0.0, -sa],
            [-se * sa, ce, -se * ca],
            [ce * sa, se, ce * ca],
        ]
    )


def view_angles(settings: RenderSettings, category: int, instance: int) -> tuple[float, float]:
    """(azimuth, elevation) in degrees of one sample, seeded by (seed, category, instance)."""
    u = np.empty(2)
    ifs.fill_uniform(streams.sample_state(settings.seed, category, instance, _VIEW_KEY), u)
    if settings.views == "fixed":
        jitter = settings.view_jitter
        azimuth = 30.0 * (instance % VIEWS) + 30.0 + jitter * (2.0 * u[0] - 1.0)
        elevation = jitter * (2.0 * u[1] - 1.0)
    else:
        azimuth = 360.0 * u[0]
        elevation = math.degrees(math.asin(2.0 * u[1] - 1.0))  # uniform on the sphere
    return azimuth, elevation


# --- render ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderSettings:
    """3D fractal rendering; defaults follow MV-FractalDB (224 px, 145 models x 12 views)."""

    size: int = 224
    points: int = 100_000
    instances: int = MAX_MODELS * VIEWS
    models: int = MAX_MODELS
    views: str = choice_field("fixed", VIEW_MODES)
    view_jitter: float = 5.0
    output: str = choice_field("image", OUTPUTS)
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(8 <= self.size <= 8192, "--size", "must be in 8..8192")
        check_option(self.points >= 1, "--points", "must be >= 1")
        check_option(self.instances >= 1, "--instances", "must be >= 1")
        check_option(1 <= self.models <= MAX_MODELS, "--models", f"must be in 1..{MAX_MODELS}")
        check_option(self.views in VIEW_MODES, "--views", f"must be one of {', '.join(VIEW_MODES)}")
        check_option(0 <= self.view_jitter <= 15, "--view-jitter", "must be in [0, 15] degrees")
        check_option(self.output in OUTPUTS, "--output", f"must be one of {', '.join(OUTPUTS)}")
        check_option(self.seed >= 0, "--seed", "must be >= 0")


def group_size(settings: RenderSettings) -> int:
    """Instances rendered together: the 12 views of one model share its point cloud."""
    return VIEWS


def instance_fields(settings: RenderSettings, instance: int) -> dict:
    """Model and view of an instance index."""
    return {"model": (instance // VIEWS) % settings.models, "view": instance % VIEWS}


class Renderer:
    """Renders the instances of 3D categories; holds scratch buffers for reuse."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.pts = np.empty((settings.points, 3))
        self.image = np.zeros((settings.size, settings.size), np.uint8)
        self.focal = 1.0 / math.tan(math.radians(FOV_DEG) / 2.0)
        self.pointcloud = settings.output == "pointcloud"

    def cloud(self, params: np.ndarray, category: int, model: int) -> tuple[np.ndarray, bool]:
        """Normalised, centred point cloud of one model (a view into a reused buffer) and
        whether its orbit diverged (then only its finite head is kept)."""
        maps = model_params(params, model)
        state = streams.sample_state(self.settings.seed, category, model, _CLOUD_KEY)
        kept, finite = ifs3d.orbit3d(maps, cumulative(params), state, self.pts)
        if not ifs3d.normalise(self.pts, kept):
            kept = 0
        return self.pts[:kept], not finite

    def project(self, pts: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, int]:
        """Image (reused buffer) of ``pts`` seen through rotation ``rot``, and points drawn."""
        self.image[:] = 0
        drawn = ifs3d.project_points(pts, len(pts), rot, DISTANCE, self.focal, self.image, WHITE)
        return self.image, drawn

    def render_group(self, params: np.ndarray, category: int, group: int, instances: list[int]):
        """Yield (instance, image or float32 cloud, fields) for instances of one model."""
        s = self.settings
        model = group % s.models
        pts, diverged = self.cloud(params, category, model)
        for instance in instances:
            azimuth, elevation = view_angles(s, category, instance)
            rot = rotation(azimuth, elevation)
            fields = {
                **instance_fields(s, instance),
                "azimuth": round(float(azimuth), 6),
                "elevation": round(float(elevation), 6),
                "diverged": diverged,
            }
            if self.pointcloud:
                out = np.empty((len(pts), 3), np.float32)
                ifs3d.rotate_points(pts, len(pts), rot, out)
                yield instance, out, fields
            else:
                image, drawn = self.project(pts, rot)
                yield instance, image, {**fields, "points_drawn": drawn}


# --- the family -----------------------------------------------------------------------------


@register_family("fractal3d")
class Fractal3D(ifs_csv.IFSFamily):
    """3D fractals: a category is a 3D IFS whose cloud spreads on every axis; a sample is one
    view of one instance model (an image), or the rotated cloud itself (``npy``)."""

    columns = "a,b,c,d,e,f,g,h,i,j,k,l,p"
    SearchSettings = SearchSettings
    RenderSettings = RenderSettings
    score_name = "variances"  # a candidate's score: its smallest axis variance (0: not finite)
    preview_layout = PreviewLayout("{shown} categories, {instances} views of each")

    # search and render: the module's functions
    candidate_specs = staticmethod(candidate_specs)
    evaluate_candidates = staticmethod(evaluate_candidates)
    group_size = staticmethod(group_size)
    renderer = staticmethod(Renderer)

    def render_group(self, renderer: Renderer, group: Group, fmt: str):
        """The views of one model: images (0 and WHITE only: 1-bit PNGs) or ``npy`` clouds."""
        for instance, payload, fields in renderer.render_group(
            group.params, group.unit, group.group, list(group.instances)
        ):
            if renderer.pointcloud:
                member = {"npy": Member(payload, npy_bytes)}
            else:
                member = {fmt: image_member(payload, fmt, WHITE)}
            yield self.category_sample(group, instance, member, fields)

    def members(self, settings: RenderSettings, fmt: str) -> tuple[str, ...]:
        return ("npy" if settings.output == "pointcloud" else fmt, "cls", "json")

    def preview_rows(self, db, settings: RenderSettings, categories: int, instances: int):
        """Each of the first categories (model 0) from ``instances`` views."""
        settings = dataclasses.replace(settings, output="image")
        renderer = Renderer(settings)
        picks = np.linspace(0, VIEWS - 1, min(instances, VIEWS)).round().astype(int).tolist()
        rows = []
        for c in range(min(categories, len(db))):
            rows.append(
                [image.copy() for _, image, _ in renderer.render_group(db.params[c], c, 0, picks)]
            )
        return rows
