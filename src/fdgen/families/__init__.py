"""Formula families, registered by their database ``type``.

A family is a class implementing ``fdgen.families.base.Family``, registered with
``@register_family("name")``. The built-in families below are imported on first use, so that
``import fdgen.families`` stays cheap and numba compiles only what runs; any other module that
registers a family (e.g. a plug-in imported by the user) works the same way.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from fdgen.errors import FdgenError

if TYPE_CHECKING:
    from fdgen.families.base import Family

# type name -> module that registers it; imported on first use.
FAMILIES = {
    "fractal": "fdgen.families.fractal2d",
    "fractal3d": "fdgen.families.fractal3d",
    "rcdb": "fdgen.families.rcdb",
    "visualatom": "fdgen.families.visualatom",
    "segrcdb": "fdgen.families.segrcdb",
    "svdfractal": "fdgen.families.svdfractal",
    "onepfrac": "fdgen.families.onepfrac",
    "svdmulti": "fdgen.families.svdmulti",
    "vgfractal": "fdgen.families.vgfractal",
    "pcfractal": "fdgen.families.pcfractal",
    "pcscenes": "fdgen.families.pcscenes",
    "videoperlin": "fdgen.families.videoperlin",
}
# The default --type, and the type of a folder of original FractalDB CSV files (no db.yaml).
DEFAULT_TYPE = "fractal"

_REGISTRY: dict[str, Family] = {}


def register_family(name: str):
    """Class decorator: register a ``Family`` subclass under the database type ``name``."""

    def register(cls: type[Family]) -> type[Family]:
        from fdgen.families.base import SAMPLE_UNITS, Family

        if not issubclass(cls, Family) or cls.sample_unit not in SAMPLE_UNITS:
            raise TypeError(f"{cls.__name__}: a Family subclass with sample_unit in {SAMPLE_UNITS}")
        cls.type = name
        _REGISTRY[name] = cls()
        return cls

    return register


def family_names() -> list[str]:
    """Every known type name: the built-in ones, then those registered since."""
    return list(dict.fromkeys([*FAMILIES, *_REGISTRY]))


def category_suffixes() -> frozenset[str]:
    """The category file suffix of every family (imports the built-in ones)."""
    for name in FAMILIES:
        get_family(name)
    return frozenset(family.category_suffix for family in _REGISTRY.values())


def get_family(name: str, where: str = "--type") -> Family:
    """The family of a type name; a clear error names the allowed types."""
    if name not in _REGISTRY and name in FAMILIES:
        importlib.import_module(FAMILIES[name])
    if name not in _REGISTRY:
        raise FdgenError(f"{where}: unknown type {name!r}; choose from {', '.join(family_names())}")
    return _REGISTRY[name]
