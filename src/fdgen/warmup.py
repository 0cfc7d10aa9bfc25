"""Compile a family's numba kernels into numba's on-disk cache, once per machine.

``make install`` runs ``python -m fdgen.warmup`` (the default family, which ``make run``
uses). Without it, the first render or search on a machine compiles the same kernels in every
worker process at once; with it, workers only load them from the cache.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterator

from fdgen.families import DEFAULT_TYPE, get_family
from fdgen.families.base import Group, setting_choices


def _variants(settings_class) -> Iterator:
    """The default settings, then each choice of each field that declares choices."""
    default = settings_class()
    yield default
    values = dataclasses.asdict(default)
    for f in dataclasses.fields(settings_class):
        for choice in setting_choices(settings_class, f.name):
            if choice != values[f.name]:
                yield dataclasses.replace(default, **{f.name: choice})


def warm_up(type_: str = DEFAULT_TYPE) -> None:
    """Search one candidate and render one group in every format, under every choice of the
    family's search and render settings (one at a time), so that each kernel is compiled."""
    from fdgen.encode import FORMATS

    family = get_family(type_)
    for settings in _variants(family.SearchSettings):
        spec, _ = next(family.candidate_specs(settings, 0, None, 1))
        params = family.evaluate_candidates(settings, spec)[0].params
    for settings in _variants(family.RenderSettings):
        renderer = family.renderer(settings)
        _, _, size = family.plan_shape(settings, 1)
        unit_params = [params] if family.sample_unit == "image" else params
        for fmt in FORMATS:
            for sample in family.render_group(renderer, Group(0, 0, range(size), unit_params), fmt):
                sample.encoded()


if __name__ == "__main__":
    for name in sys.argv[1:] or [DEFAULT_TYPE]:
        start = time.perf_counter()
        warm_up(name)
        print(f"fdgen: {name} kernels compiled or loaded in {time.perf_counter() - start:.1f} s")
