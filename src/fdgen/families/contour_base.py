"""Shared pieces of the contour families (RCDB, VisualAtom, SegRCDB).

These families have no acceptance filter: candidate k is category k, sampled from its own
generator ``numpy.random.Generator(PCG64(SeedSequence([seed, k])))``, so a category never
depends on the others or on the worker count. Category files are small YAML mappings, one
``name: value`` line per parameter, in a fixed order.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from fdgen.errors import FdgenError, check_option

CATEGORY_SUFFIX = ".yaml"
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


def read_record(path: Path, cls, fields: tuple[Field, ...]):
    """Read a category file into ``cls``; errors name the file and the field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
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


@dataclass
class Candidate:
    """One sampled category: every candidate is accepted (no filter)."""

    index: int
    params: object
    fill_rate: float | None = None
    diverged: bool = False
    accepted: bool = True


def candidate_specs(settings, start: int, rng_state, batch: int):
    """Endless (spec, None) pairs from ``start`` on: a spec is the index range
    ("contour", start, count); every candidate is accepted."""
    while True:
        yield ("contour", start, batch), None
        start += batch


def sample_batch(sample_category, seed: int, spec) -> list[Candidate]:
    """The categories of one index-range spec, drawn by ``sample_category(seed, index)``."""
    _, start, count = spec
    return [Candidate(k, sample_category(seed, k)) for k in range(start, start + count)]


@dataclass(frozen=True)
class SearchSettings:
    """Search of a contour family: how many categories and the seed (no filter)."""

    categories: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        check_option(self.categories >= 1, "--categories", "must be >= 1")
        check_option(self.seed >= 0, "--seed", "must be >= 0")
