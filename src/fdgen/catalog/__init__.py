"""Named datasets (presets) as data: one YAML file per preset in this folder."""

from __future__ import annotations

import dataclasses
from functools import cache
from importlib import resources

import yaml

from fdgen.errors import FdgenError

_SECTIONS = {"search": "SearchSettings", "render": "RenderSettings"}
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _check_section(cls, values, where: str) -> None:
    """Keys of a preset section must be fields of ``cls`` with values of the field's type,
    and together they must make valid settings."""
    if not isinstance(values, dict):
        raise FdgenError(f"{where}: must be a mapping of setting: value")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in values.items():
        if name not in fields:
            known = ", ".join(fields)
            raise FdgenError(f"{where}: unknown setting {name!r}; known: {known}")
        kinds = _TYPES.get(str(fields[name].type))
        wrong = kinds and (
            not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))
        )
        if wrong:
            raise FdgenError(f"{where}.{name}: expected {fields[name].type}, got {value!r}")
    try:
        cls(**values)
    except FdgenError as exc:
        raise FdgenError(f"{where}: {exc.message}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise FdgenError(f"{where}: invalid settings ({exc})") from None


def parse_preset(text: str, where: str) -> dict:
    """A preset from YAML text, validated: a mapping with a known ``type``, an optional
    ``description`` and ``search:``/``render:`` sections valid for that type's settings."""
    from fdgen.families import get_family

    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FdgenError(f"{where}: not valid YAML ({exc})") from None
    if not isinstance(cfg, dict):
        raise FdgenError(f"{where}: a preset must be a mapping with 'type', 'search', 'render'")
    type_ = cfg.get("type")
    if not isinstance(type_, str):
        raise FdgenError(f"{where}: 'type' must name a formula family")
    family = get_family(type_, where=f"{where}: type")
    unknown = sorted(str(k) for k in cfg if k not in ("type", "description", *_SECTIONS))
    if unknown:
        raise FdgenError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if not isinstance(cfg.get("description", ""), str):
        raise FdgenError(f"{where}: 'description' must be text")
    for section, cls_name in _SECTIONS.items():
        if section in cfg:
            _check_section(getattr(family, cls_name), cfg[section], f"{where}: {section}")
    return cfg


@cache
def preset_names() -> tuple[str, ...]:
    """The shipped presets' names, sorted, without parsing them (parsing imports families)."""
    names = (e.name for e in resources.files(__name__).iterdir() if e.name.endswith(".yaml"))
    return tuple(sorted(n[: -len(".yaml")] for n in names))


@cache
def all_presets() -> dict[str, dict]:
    """Every shipped preset by name (the YAML file's stem)."""
    presets = {}
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".yaml"):
            presets[entry.name[: -len(".yaml")]] = parse_preset(entry.read_text(), entry.name)
    return dict(sorted(presets.items()))


def get_preset(name: str) -> dict:
    """One preset by name; a clear error lists the known names."""
    presets = all_presets()
    if name not in presets:
        raise FdgenError(f"--preset: unknown preset {name!r}; choose from {', '.join(presets)}")
    return presets[name]
