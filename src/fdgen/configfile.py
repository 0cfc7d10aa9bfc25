"""``--config FILE.yaml``: a command's options from a YAML file, for pipelines.

The file is a mapping from a command's long option names (``samples-per-shard`` or
``samples_per_shard``) to values of the option's type (flags: ``true``/``false``). The values
become click's ``default_map`` of the command, so an option typed on the command line
overrides the file and every value goes through the option's own checks. A file fdgen cannot
use ends the command with one line naming the file and the key: ``Error: FILE: key
'instance' is not an option of fdgen render; allowed: ...``, exit 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from fdgen import readback

CONFIG_HELP = (
    "YAML file of option values, `option-name: value` (long option names, dashes or "
    "underscores; flags true/false). Options given on the command line override it."
)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _fail(path: Path, reason: str):
    raise click.ClickException(f"{path}: {reason}")


def _options(command: click.Command) -> dict[str, click.Option]:
    """The command's options by long name without dashes (``samples-per-shard``)."""
    found = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "config" and param.expose_value:
            for opt in param.opts:
                if opt.startswith("--"):
                    found[opt[2:]] = param
    return found


def _kind(param: click.Option) -> tuple[tuple[type, ...], str]:
    """The YAML value types an option accepts, and their description."""
    if param.is_flag:
        return (bool,), "true or false"
    if isinstance(param.type, click.types.IntParamType):
        return (int,), "a whole number"
    if isinstance(param.type, click.types.FloatParamType):
        return (int, float), "a number"
    return (str,), "text"


def _check_value(path: Path, key: str, value: Any, param: click.Option, ctx) -> None:
    """``value`` must have the option's type and pass the option's own checks."""
    kinds, what = _kind(param)
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        choices = param.type.choices if isinstance(param.type, click.Choice) else None
        what += f" (one of {', '.join(choices)})" if choices else ""
        _fail(path, f"key {key!r} must be {what}, found {value!r}")
    try:
        param.type.convert(value, param, ctx)
    except click.BadParameter as exc:
        _fail(path, f"key {key!r}: {exc.message}")


def read_config(path: Path, command: click.Command, ctx: click.Context) -> dict[str, Any]:
    """The option values of ``command`` in the YAML file ``path``, by parameter name; a
    ``ClickException`` naming the file (and the key) when the file cannot be used."""
    try:
        data = readback.parse_yaml(path, loader=_UniqueKeyLoader)
    except OSError as exc:
        _fail(path, f"cannot read the config file ({exc.strerror or exc})")
    except readback.BadContent as exc:
        _fail(path, f"config file: {exc}")
    if data is None:  # empty, or comments only
        return {}
    if not isinstance(data, dict):
        _fail(path, f"a config file must be a mapping of option names to values, found {data!r}")
    options = _options(command)
    values: dict[str, Any] = {}
    for key, value in data.items():
        param = options.get(str(key).replace("_", "-"))
        if param is None:
            allowed = ", ".join(sorted(options))
            _fail(path, f"key {key!r} is not an option of fdgen {command.name}; allowed: {allowed}")
        if param.name in values:
            _fail(path, f"key {key!r} sets --{str(key).replace('_', '-')} a second time")
        _check_value(path, str(key), value, param, ctx)
        values[param.name] = value
    return values


def _load(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        found = read_config(Path(value), ctx.command, ctx)
        ctx.default_map = {**(ctx.default_map or {}), **found}


def config_option(command):
    """Add ``--config FILE.yaml`` to a click command (read before its other options)."""
    return click.option(
        "--config",
        metavar="FILE.yaml",
        is_eager=True,
        expose_value=False,
        callback=_load,
        help=CONFIG_HELP,
    )(command)
