"""Reading back the files fdgen wrote: parse them and check the fields later code relies on.

Every reader of a manifest, sidecar, index, ``db.yaml`` or search progress file goes through
here, so damaged, truncated or foreign content becomes a ``BadContent`` reason ("not JSON
(...)", "field num_shards must be an integer in [0, 1000000], found -1") that the caller
turns into one error line naming the file, and code after the check can trust the fields.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

_MISSING = object()


class BadContent(ValueError):
    """A file's content is not what fdgen writes; the message is the reason, without the path."""


def _found(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _decode(path: Path) -> str:
    data = Path(path).read_bytes()  # OSError (missing, a directory, unreadable) passes through
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadContent(f"not UTF-8 text (byte {exc.start})") from None


def parse_json(path: Path):
    """The JSON value in ``path``; ``BadContent`` when it is not JSON text."""
    text = _decode(path)
    try:
        return json.loads(text)
    except RecursionError:
        raise BadContent("not JSON (nested too deeply)") from None
    except ValueError as exc:
        raise BadContent(f"not JSON ({exc})") from None


def parse_yaml(path: Path, loader: type = yaml.SafeLoader):
    """The YAML value in ``path`` as plain JSON-like data; ``BadContent`` otherwise.
    ``loader``: a ``yaml.SafeLoader`` subclass with stricter rules."""
    text = _decode(path)
    try:
        data = yaml.load(text, Loader=loader)
    except RecursionError:
        raise BadContent("not YAML (nested too deeply)") from None
    except yaml.YAMLError as exc:
        raise BadContent(f"not YAML ({' '.join(str(exc).split())})") from None
    try:  # fdgen writes plain data: no dates, binary, sets or self-references
        json.dumps(data)
    except (TypeError, ValueError, RecursionError):
        raise BadContent("holds values other than numbers, text, lists and mappings") from None
    return data


def mapping(value, what: str = "the file") -> dict:
    """``value`` if it is a mapping with text keys."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise BadContent(f"{what} must be a JSON object, found {_found(value)}")
    return value


def _field(record: dict, name: str, optional: bool):
    if name not in record:
        if optional:
            return _MISSING
        raise BadContent(f"field {name} is missing")
    return record[name]


def integer(record: dict, name: str, low: int = 0, high: int | None = None, optional=False):
    """``record[name]``, an integer (not a bool) in ``[low, high]``; None if ``optional`` and
    absent."""
    value = _field(record, name, optional)
    if value is _MISSING:
        return None
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        allowed = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise BadContent(f"field {name} must be an integer {allowed}, found {_found(value)}")
    return value


def is_finite_number(value) -> bool:
    """Whether ``value`` is an int or float (not a bool) and finite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def number(record: dict, name: str, low: float = 0.0, optional=False):
    """``record[name]``, a finite number >= ``low``; None if ``optional`` and absent."""
    value = _field(record, name, optional)
    if value is _MISSING:
        return None
    if not is_finite_number(value) or value < low:
        raise BadContent(f"field {name} must be a finite number >= {low:g}, found {_found(value)}")
    return value


def text(record: dict, name: str, choices: tuple[str, ...] | None = None, optional=False):
    """``record[name]``, a non-empty string (one of ``choices`` when given); None if
    ``optional`` and absent."""
    value = _field(record, name, optional)
    if value is _MISSING:
        return None
    if not isinstance(value, str) or not value or (choices and value not in choices):
        allowed = f"one of {', '.join(choices)}" if choices else "a non-empty string"
        raise BadContent(f"field {name} must be {allowed}, found {_found(value)}")
    return value


def sub_mapping(record: dict, name: str, optional: bool = False) -> dict | None:
    """``record[name]``, a mapping with text keys; None if ``optional`` and absent."""
    value = _field(record, name, optional)
    if value is _MISSING:
        return None
    return mapping(value, f"field {name}")
