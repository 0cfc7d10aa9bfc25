"""Named datasets (presets) as data: one YAML file per preset in this folder."""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml

from fdgen.errors import FdgenError


@cache
def all_presets() -> dict[str, dict]:
    """Every shipped preset by name (the YAML file's stem)."""
    presets = {}
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".yaml"):
            presets[entry.name[: -len(".yaml")]] = yaml.safe_load(entry.read_text())
    return dict(sorted(presets.items()))


def get_preset(name: str) -> dict:
    """One preset by name; a clear error lists the known names."""
    presets = all_presets()
    if name not in presets:
        raise FdgenError(f"--preset: unknown preset {name!r}; choose from {', '.join(presets)}")
    return presets[name]
