"""Modules loaded on first use, so that ``fdgen --help``, ``fdgen render --help`` and option
errors do not pay for numba (and its kernels), OpenCV or the deflate kernel.

``ifs = lazy_module("fdgen.kernels.ifs")`` binds a stand-in; the first ``ifs.name`` imports the
module (under Python's import lock, so threads may race to it safely) and every later access
reads the same attribute of the loaded module.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stand-in for a module that is imported on the first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _module(self) -> ModuleType:
        return importlib.import_module(self._name)

    def __getattr__(self, attr: str) -> Any:
        try:
            value = vars(self._module())[attr]
        except KeyError:
            raise AttributeError(f"module {self._name!r} has no attribute {attr!r}") from None
        self.__dict__[attr] = value  # the next access skips __getattr__
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it on first use (see ``LazyModule``)."""
    return LazyModule(name)
