"""The one exception type for problems the user can fix (bad input, bad folders)."""

from __future__ import annotations

import click


class FdgenError(click.ClickException):
    """A user error: the CLI prints ``Error: <message>`` and exits with code 1, no traceback."""
