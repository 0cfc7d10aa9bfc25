"""fdgen: fast, exact, reproducible Formula-Driven Supervised Learning datasets.

The library API (``fdgen.api``; the ``fdgen`` commands are a thin layer over it)::

    import fdgen
    fdgen.search("my-db", categories=100)
    fdgen.render("my-db", "my-db-shards", instances=10)
    assert fdgen.verify("my-db-shards").ok

``import fdgen`` stays cheap: the API and what it needs load on first use.
"""

import sys
import types

from fdgen.errors import FdgenError

__version__ = "0.1.0"

_API = ("search", "render", "verify", "load_database", "presets")
__all__ = ["FdgenError", "__version__", *_API]


class _Package(types.ModuleType):
    """The ``fdgen`` module. ``fdgen.search`` and ``fdgen.render`` stay the API functions
    when the submodules of the same names load (reach those with ``from fdgen.render import
    ...`` or ``sys.modules``): the import system's binding of a submodule is ignored here."""

    def __getattr__(self, name: str):
        if name in _API:
            from fdgen import api

            return vars(api)[name]
        raise AttributeError(f"module 'fdgen' has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_API})


sys.modules[__name__].__class__ = _Package
