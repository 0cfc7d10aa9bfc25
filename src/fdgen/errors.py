"""The one exception type for problems the user can fix (bad input, bad folders)."""

from __future__ import annotations

import click


class FdgenError(click.ClickException):
    """A user error: the CLI prints ``Error: <message>`` and exits with code 1, no traceback."""


def check_option(ok: bool, option: str, rule: str) -> None:
    """Raise ``FdgenError("<option>: <rule>")`` unless ``ok``."""
    if not ok:
        raise FdgenError(f"{option}: {rule}")
