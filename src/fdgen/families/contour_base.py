"""The contour families' base (RCDB, VisualAtom, SegRCDB): settings, search, render.

These families have no acceptance filter: candidate k is category k, sampled from its own
generator ``numpy.random.Generator(PCG64(SeedSequence([seed, k])))``, so a category never
depends on the others or on the worker count. Category files are small YAML mappings, one
``name: value`` line per parameter, in a fixed order. A family declares its ``Category``
record, its ``fields``, ``sample_category`` and a ``ContourRenderer`` that grows the contours
of one instance; search, category files and the render of a group are shared here.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import yaml

from fdgen.errors import FdgenError, check_option
from fdgen.families.base import Candidate, Family, Group, Sample, image_member
from fdgen.lazy import lazy_module

kc = lazy_module("fdgen.kernels.contours")

CATEGORY_SUFFIX = ".yaml"
# Files that are not plain ``name: number  # comment`` lines go through YAML: libyaml's
# parser where PyYAML has it, its pure-Python one otherwise (same resolver, same values).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A line as fdgen writes it. The numbers are those on which YAML 1.1 and ``float`` agree
# (no leading zeros, which YAML reads as octal; no 0x, 1_000, 1:30, .inf or nan).
_PLAIN_LINE = re.compile(
    r"([a-z_][a-z0-9_]*): (-?(?:0|[1-9][0-9]*)(\.[0-9]+)?(?:[eE]([-+]?)[0-9]+)?)(?:[ \t]+#.*)?"
)
CANVAS = 512  # the published geometry is defined on a 512 x 512 canvas


@dataclass(frozen=True)
class Field:
    """One parameter of a category file: name, type and allowed closed range."""

    name: str
    kind: type  # int or float
    low: float
    high: float
    doc: str


def category_generator(seed: int, index: int) -> np.random.Generator:
    """The generator of candidate (= category) ``index``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(index)])))


def truncated_exponential_int(rng: np.random.Generator, mean: float, low: int, high: int) -> int:
    """int(Exp(mean)) redrawn until it lies in [low, high] (the published vertex count)."""
    while True:
        value = int(rng.exponential(mean))
        if low <= value <= high:
            return value


def centre_offset(rng: np.random.Generator, spread: int) -> float:
    """(CANVAS + randint(-spread, spread)) / 2: a centre coordinate as published."""
    return (CANVAS + int(rng.integers(-spread, spread + 1))) / 2


def format_record(title: str, fields: tuple[Field, ...], record) -> str:
    """YAML text of a category record: a comment line, then ``name: value`` per field.

    Floats are written with ``repr`` (shortest text that reads back to the same double).
    """
    lines = [f"# {title}"]
    for f in fields:
        value = getattr(record, f.name)
        text = repr(float(value)) if f.kind is float else str(int(value))
        lines.append(f"{f.name}: {text}  # {f.doc}")
    return "\n".join(lines) + "\n"


def plain_lines(text: str) -> dict | None:
    """The mapping of a file of ``name: number`` lines (comments and blank lines allowed),
    with the values YAML gives them: int, float, or the text YAML 1.1 leaves unresolved
    (``1e-05``, no dot). None for anything else, which is then read as YAML. This is the
    format fdgen writes; YAML's constructors cost 0.2 ms a file, too much 21,000 times."""
    data = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _PLAIN_LINE.fullmatch(line.rstrip())
        if match is None:
            return None
        name, token, fraction, exp_sign = match.groups()
        if fraction is None and exp_sign is None:
            data[name] = int(token)
        elif fraction is not None and exp_sign != "":  # YAML 1.1 floats: a dot, signed exponent
            data[name] = float(token)
        else:
            data[name] = token
    return data


def read_record(path: Path, cls, fields: tuple[Field, ...]):
    """Read a category file into ``cls``; errors name the file and the field."""
    path = Path(path)
    try:
        text = path.read_text()
        data = plain_lines(text)
        if data is None:
            data = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)
    except (OSError, UnicodeDecodeError) as exc:
        raise FdgenError(f"{path}: cannot read category file ({exc})") from None
    except yaml.YAMLError as exc:
        raise FdgenError(f"{path}: not a YAML mapping ({exc})") from None
    except RecursionError:
        raise FdgenError(f"{path}: not a YAML mapping (nested too deeply)") from None
    if not isinstance(data, dict):
        raise FdgenError(f"{path}: expected 'name: value' lines, found no mapping")
    names = {f.name for f in fields}
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise FdgenError(f"{path}: unknown field(s) {', '.join(unknown)}")
    values = {}
    for f in fields:
        if f.name not in data:
            raise FdgenError(f"{path}: field {f.name} is missing")
        raw = data[f.name]
        try:
            if isinstance(raw, bool):
                raise ValueError
            number = float(raw)
            if f.kind is int:
                if number != int(number):
                    raise ValueError
                number = int(number)
        except (TypeError, ValueError, OverflowError):
            kind = "an integer" if f.kind is int else "a number"
            raise FdgenError(f"{path}: field {f.name} must be {kind}, found {raw!r}") from None
        if not (math.isfinite(number) and f.low <= number <= f.high):
            raise FdgenError(
                f"{path}: field {f.name} = {raw!r} is outside the allowed range "
                f"[{_num(f.low)}, {_num(f.high)}]"
            )
        values[f.name] = number
    return cls(**values)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


def field_names(cls) -> tuple[str, ...]:
    """Field names of a record dataclass, in order."""
    return tuple(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class SearchSettings:
    """Search of a contour family: how many categories and the seed (no filter)."""

    categories: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(self.categories >= 1, "--categories", "must be >= 1")
        check_option(self.seed >= 0, "--seed", "must be >= 0")


@dataclass(frozen=True)
class RenderSettings:
    """Rendering of RCDB and VisualAtom; defaults are the published ones."""

    size: int = 512
    instances: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(16 <= self.size <= 8192, "--size", "must be in [16, 8192]")
        check_option(self.instances >= 1, "--instances", "must be >= 1")
        check_option(self.seed >= 0, "--seed", "must be >= 0")


def draw_contours(image: np.ndarray, pts: np.ndarray, grays: np.ndarray) -> None:
    """Draw each contour as a 1-pixel closed polyline (8-connected) in its grey level, pixel
    for pixel as ``cv2.polylines(image, [contour], True, grey, 1, cv2.LINE_8)`` draws it."""
    kc.draw_closed_polylines(image, pts, grays)


class ContourRenderer:
    """Renders the instances of one contour family (grey images, H x W uint8) on a
    ``background``; subclasses grow the contours of an instance in ``contours``."""

    background: ClassVar[int]

    def __init__(self, settings):
        self.settings = settings
        self.scale = settings.size / CANVAS

    def contours(self, params, category: int, instance: int) -> tuple[np.ndarray, np.ndarray]:
        """Vertex pixel positions (contours, vertices, 2) and grey levels of one instance."""
        raise NotImplementedError

    def render(self, params, category: int, instance: int) -> np.ndarray:
        """One instance as a new size x size uint8 image."""
        size = self.settings.size
        image = np.full((size, size), self.background, np.uint8)
        draw_contours(image, *self.contours(params, category, instance))
        return image

    def render_group(self, params, category: int, group: int, instances) -> Iterator:
        """Yield (instance, image, fields) for each instance."""
        for instance in instances:
            yield instance, self.render(params, category, instance), {}


class ContourFamily(Family):
    """A contour family: no filter, YAML category files, one instance per group."""

    category_suffix = CATEGORY_SUFFIX
    SearchSettings = SearchSettings
    RenderSettings = RenderSettings
    Category: ClassVar[type]  # the frozen dataclass of one category's parameters
    fields: ClassVar[tuple[Field, ...]]  # its fields in file order, with allowed ranges
    title: ClassVar[str]  # the comment line of a category file
    renderer_class: ClassVar[type]

    def sample_category(self, seed: int, index: int):
        """Category ``index`` of a search with ``seed``, from its own generator."""
        raise NotImplementedError

    def format_category(self, params) -> str:
        """The category as a small YAML mapping."""
        return format_record(self.title, self.fields, params)

    def read_category(self, path: Path):
        """Read a category file; errors name the file and field."""
        return read_record(path, self.Category, self.fields)

    def candidate_specs(self, settings, start: int, rng_state, batch: int) -> Iterator:
        """Endless (spec, None) pairs from ``start`` on: a spec is the index range
        ("contour", start, count); every candidate is accepted."""
        while True:
            yield ("contour", start, batch), None
            start += batch

    def evaluate_candidates(self, settings, spec) -> list[Candidate]:
        """The categories of one index-range spec (runs in a worker process)."""
        _, start, count = spec
        seed = settings.seed
        return [Candidate(k, self.sample_category(seed, k)) for k in range(start, start + count)]

    def renderer(self, settings) -> ContourRenderer:
        return self.renderer_class(settings)

    def render_group(self, renderer, group: Group, fmt: str) -> Iterator[Sample]:
        """One sample per instance: the image, the category as label, the metadata."""
        for instance, image, fields in renderer.render_group(
            group.params, group.unit, group.group, group.instances
        ):
            yield self.category_sample(group, instance, {fmt: image_member(image, fmt)}, fields)
