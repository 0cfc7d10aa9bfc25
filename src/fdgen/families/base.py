"""The family interface: what a formula family declares, how it searches and renders.

A family is one class derived from ``Family`` and registered by name
(``@register_family("rcdb")``, see ``fdgen.families``). Generic code (search, render, output,
preview, torch, cli) reads only what is declared here: the settings classes, the sample unit,
the score name, the members of a sample, the preview rows. It plugs in at two points: the
search (``candidate_specs`` then ``evaluate_candidates`` in workers) and the render of one
group of samples (``render_group``, yielding ``Sample`` objects).

A ``Sample`` holds its members in tar order, each a raw value with its encoder, so a shard
writer takes the bytes (``Sample.encoded()``) and the on-the-fly dataset the arrays
(``Sample.value(name)``) of the same object.
"""

from __future__ import annotations

import dataclasses
import io
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fdgen.encode import encode_image

SAMPLE_UNITS = ("category", "image")


def choice_field(default: str, choices: Sequence[str]):
    """A settings field that takes one of ``choices``: the CLI offers them (``--help``, shell
    completion) from here, and the settings' ``__post_init__`` checks them."""
    return field(default=default, metadata={"choices": tuple(choices)})


def setting_choices(settings_class, name: str) -> tuple[str, ...]:
    """The choices a field of a settings class declares (see ``choice_field``), else ()."""
    fields = {f.name: f for f in dataclasses.fields(settings_class)}
    return fields[name].metadata.get("choices", ()) if name in fields else ()


# --- search -------------------------------------------------------------------------------


@dataclass
class Candidate:
    """One evaluated candidate of a search: its number, parameters and filter outcome.

    ``score`` is the family's filter score (FractalDB: the filling rate, 3D: the smallest axis
    variance), recorded in db.yaml under the family's ``score_name``; None without a filter.
    """

    index: int
    params: Any
    score: float | None = None
    diverged: bool = False
    accepted: bool = True


# --- samples and their members -------------------------------------------------------------


def npy_bytes(array: np.ndarray) -> bytes:
    """``.npy`` file bytes of an array (deterministic: the header holds only dtype and shape)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _text(value: object) -> bytes:
    return str(value).encode()


def _json(meta: dict) -> bytes:
    return json.dumps(meta, sort_keys=True).encode()


# Encoders by the extension a member name ends with ("seg.png" -> "png"), as in webdataset.
ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "png": partial(encode_image, fmt="png"),
    "jpg": partial(encode_image, fmt="jpg"),
    "npy": npy_bytes,
    "cls": _text,
    "json": _json,
}


def encoder(name: str) -> Callable[[Any], bytes]:
    """The encoder of a member name, chosen by the extension it ends with."""
    return ENCODERS[name.rsplit(".", 1)[-1]]


@dataclass(frozen=True)
class Member:
    """One tar member of a sample: the raw value (array, label, metadata) and its encoder."""

    value: Any
    encode: Callable[[Any], bytes]

    def encoded(self) -> bytes:
        return self.encode(self.value)


def image_member(image: np.ndarray, fmt: str, two_level: int | None = None) -> Member:
    """An image member in ``fmt``; ``two_level``: the one non-zero grey value of an image that
    holds only 0 and that value, written as a 1-bit PNG (see ``fdgen.encode``)."""
    if fmt == "png" and two_level is not None:
        return Member(image, partial(encode_image, fmt="png", two_level=two_level))
    return Member(image, encoder(fmt))


@dataclass
class Sample:
    """One sample: its key and its members in tar order (payload, ``cls``, ``json``, others).

    Array values may be views of a renderer's buffer, valid until the next sample is made.
    """

    key: str
    members: dict[str, Member]
    meta: dict
    label: int | None

    @classmethod
    def build(
        cls,
        key: str,
        payload: dict[str, Member],
        meta: dict,
        label: int | None,
        extra: dict[str, Member] | None = None,
    ) -> Sample:
        """A sample from its payload member(s), metadata, label (None: no ``cls``) and extra
        members, laid out in tar order."""
        members = dict(payload)
        if label is not None:
            members["cls"] = Member(label, ENCODERS["cls"])
        members["json"] = Member(meta, ENCODERS["json"])
        members.update(extra or {})
        return cls(key, members, meta, label)

    @property
    def payload(self) -> Any:
        """The raw value of the first member (the image, or e.g. a point cloud)."""
        return next(iter(self.members.values())).value

    def value(self, name: str) -> Any:
        """The raw value of member ``name``."""
        return self.members[name].value

    def encoded(self) -> dict[str, bytes]:
        """Every member's bytes by name, in tar order."""
        return {name: m.encoded() for name, m in self.members.items()}


@dataclass(frozen=True)
class Group:
    """One group of samples rendered together: a unit (category, or 0 for per-image families),
    the group number, the sample numbers, the unit's parameters and its category file name."""

    unit: int
    group: int
    instances: Sequence[int]
    params: Any
    file: str | None = None


# --- the interface ------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewLayout:
    """What a contact sheet shows, as the CLI reports it: ``text`` is formatted with
    ``shown`` (categories or images shown) and ``instances``."""

    text: str = "{shown} categories, {instances} instances of the first"


class Family(ABC):
    """A formula family. Subclasses declare the class attributes and implement the methods
    marked abstract; the rest has defaults that fit families whose sample is one instance
    of one category."""

    type: ClassVar[str]  # the database type name, set by @register_family
    category_suffix: ClassVar[str]  # category file suffix, e.g. ".csv"
    SearchSettings: ClassVar[type]  # frozen dataclass, validated in __post_init__
    RenderSettings: ClassVar[type]  # frozen dataclass with ``seed`` (and ``instances`` or
    # ``images``, see ``plan_shape``)
    sample_unit: ClassVar[str] = "category"  # or "image": a sample draws on every category
    score_name: ClassVar[str | None] = None  # db.yaml key of the kept categories' scores
    target_member: ClassVar[str | None] = None  # member that is the target instead of cls
    preview_layout: ClassVar[PreviewLayout] = PreviewLayout()

    # --- category files

    @abstractmethod
    def format_category(self, params) -> str:
        """The text of a category file."""

    @abstractmethod
    def read_category(self, path: Path):
        """Read one category file; errors (FdgenError) name the file and the field or line."""

    # --- search

    @abstractmethod
    def candidate_specs(self, settings, start: int, rng_state, batch: int) -> Iterator:
        """Endless ``(spec, rng_state_after)`` pairs from candidate ``start`` on: a spec is a
        small picklable batch of work; ``rng_state_after`` is JSON data or None."""

    @abstractmethod
    def evaluate_candidates(self, settings, spec) -> list[Candidate]:
        """Evaluate one batch of candidates (runs in a worker process, possibly in threads:
        it keeps no scratch state between calls)."""

    # --- render

    def group_size(self, settings) -> int:
        """Samples rendered together as one group (e.g. four flips of one rendering)."""
        return 1

    def plan_shape(self, settings, categories: int) -> tuple[int, int, int]:
        """(units, samples per unit, group size) of a render of ``categories`` categories."""
        if self.sample_unit == "image":
            return 1, settings.images, 1
        return categories, settings.instances, self.group_size(settings)

    def unit_input(self, db, unit: int) -> tuple[Any, str | None]:
        """(parameters, category file name) a group of ``unit`` renders from."""
        if self.sample_unit == "image":
            return list(db.params), None
        return db.params[unit], db.names[unit] + self.category_suffix

    def sample_key(self, unit: int, instance: int) -> str:
        """WebDataset key of a sample (no dots)."""
        if self.sample_unit == "image":
            return f"img{instance:08d}"
        return f"c{unit:06d}_i{instance:06d}"

    @abstractmethod
    def renderer(self, settings) -> Any:
        """A new renderer with its own scratch buffers. The caller owns it and passes it to
        ``render_group``; it is used by one task at a time, never by two threads at once."""

    @abstractmethod
    def render_group(self, renderer, group: Group, fmt: str) -> Iterator[Sample]:
        """The samples of one group, in writing order; ``fmt`` is the image format."""

    def members(self, settings, fmt: str) -> tuple[str, ...]:
        """The member names of every sample of a render, in tar order (verify's schema)."""
        if self.sample_unit == "image":
            return (fmt, "json")
        return (fmt, "cls", "json")

    def category_sample(self, group: Group, instance: int, payload: dict, fields: dict) -> Sample:
        """A sample of one category instance: key, label = category, metadata with the
        category, instance and file name besides the renderer's fields."""
        meta = {"category": group.unit, "instance": instance, **fields, "file": group.file}
        return Sample.build(self.sample_key(group.unit, instance), payload, meta, group.unit)

    def payload_tensor(self, payload: np.ndarray) -> np.ndarray:
        """The array the on-the-fly dataset's ``tuple`` output makes a tensor of: a payload
        H x W (an image, or a point cloud N x 3) gets a leading axis, an image H x W x C
        becomes C x H x W. A video family returns C x T x H x W."""
        return payload[None] if payload.ndim == 2 else payload.transpose(2, 0, 1).copy()

    # --- reporting

    def describe(self, db) -> list[tuple[str, str]]:
        """Extra (label, text) lines that ``fdgen info`` shows for a database."""
        return []

    def preview_rows(self, db, settings, categories: int, instances: int) -> list[list]:
        """Contact-sheet rows of images: sample 0 of the first ``categories`` categories, then
        ``instances`` samples of category 0 spread over its range."""
        renderer = self.renderer(settings)
        group_size = self.group_size(settings)

        def image_of(unit: int, instance: int) -> np.ndarray:
            group = Group(unit, instance // group_size, [instance], *self.unit_input(db, unit))
            return next(iter(self.render_group(renderer, group, "png"))).payload.copy()

        firsts = [image_of(c, 0) for c in range(min(categories, len(db)))]
        spread = np.linspace(0, settings.instances - 1, instances).round().astype(int)
        variants = [image_of(0, i) for i in dict.fromkeys(spread.tolist())]
        width = max(1, int(np.ceil(np.sqrt(len(firsts)))))
        rows = [firsts[k : k + width] for k in range(0, len(firsts), width)]
        return rows + [variants]

    def preview_text(self, db, categories: int, instances: int) -> str:
        """What a contact sheet of ``preview_rows(db, _, categories, instances)`` shows."""
        shown = categories if self.sample_unit == "image" else min(categories, len(db))
        return self.preview_layout.text.format(shown=shown, instances=instances)
