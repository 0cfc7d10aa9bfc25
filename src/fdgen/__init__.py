"""fdgen: fast, exact, reproducible Formula-Driven Supervised Learning datasets."""

__version__ = "0.1.0"
