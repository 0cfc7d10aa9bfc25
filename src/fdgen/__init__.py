"""fdgen: fast, exact, reproducible Formula-Driven Supervised Learning datasets.

The library API (``fdgen.api``; the ``fdgen`` commands are a thin layer over it)::

    import fdgen
    fdgen.search("my-db", categories=100)
    fdgen.render("my-db", "my-db-shards", instances=10)
    assert fdgen.verify("my-db-shards").ok

``import fdgen`` stays cheap: the API and what it needs load on first use.
"""

from fdgen.errors import FdgenError

__version__ = "0.1.0"

_API = ("search", "render", "verify", "load_database", "presets")
__all__ = ["FdgenError", "__version__", *_API]


def __getattr__(name: str):
    """The API functions, imported on first use (PEP 562)."""
    if name in _API:
        from fdgen import api

        return vars(api)[name]
    raise AttributeError(f"module 'fdgen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
