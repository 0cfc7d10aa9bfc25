"""Formula families, looked up by their database ``type``.

Every family module offers the same small interface, used by ``search.py`` and ``shards.py``:

- ``TYPE``, ``CATEGORY_SUFFIX``; ``format_category(params) -> str``, ``read_category(path)``
- ``SearchSettings`` (a frozen dataclass) and ``evaluate_candidates(settings, spec) -> list``
  of ``Candidate``; ``candidate_specs(settings, start, rng_state)`` yields batch specs
- ``RenderSettings`` (a frozen dataclass), ``group_size(settings)`` (instances rendered
  together, e.g. the four flips of one FractalDB variant) and ``Renderer(settings)`` with
  ``render_group(params, category, group, instances) -> list[Sample]`` (a renderer may keep
  scratch buffers: the render uses each one in one task at a time; ``evaluate_candidates``
  may run in threads, so it keeps none between calls)
Optional: ``Renderer.encode(payload, fmt)`` -> tar members for non-image payloads (or None);
``preview_rows(db, settings, categories, instances)`` -> contact-sheet rows; ``render_group``
may yield a 4th item, a dict of extra images by tar member name (e.g. ``{"seg.png": mask}``,
a uint8 array), encoded by the shard writer in the format the name ends with. A family with
``SAMPLE_UNIT = "image"`` (SegRCDB) renders ``settings.images`` samples that each draw on
every category: ``render_group`` then receives the list of all categories' parameters,
samples are keyed ``img{index:08d}`` without ``cls``, and ``preview_rows(db, settings,
images, masks)`` supplies the contact-sheet rows.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from fdgen.errors import FdgenError

# type name -> module; modules are imported on first use so that numba compiles only what runs.
FAMILIES = {
    "fractal": "fdgen.families.fractal2d",
    "fractal3d": "fdgen.families.fractal3d",
    "rcdb": "fdgen.families.rcdb",
    "visualatom": "fdgen.families.visualatom",
    "segrcdb": "fdgen.families.segrcdb",
}


def get_family(name: str, where: str = "--type") -> ModuleType:
    """The family module for a type name; a clear error names the allowed types."""
    if name not in FAMILIES:
        raise FdgenError(f"{where}: unknown type {name!r}; choose from {', '.join(FAMILIES)}")
    return importlib.import_module(FAMILIES[name])
