"""The one exception type for problems the user can fix (bad input, bad folders)."""

from __future__ import annotations


class FdgenError(Exception):
    """A user error, with a one-line ``message`` naming the option, file or field.

    A plain exception, so library callers catch it like any other; the ``fdgen`` command line
    prints ``Error: <message>`` and exits with code 1, no traceback.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def check_option(ok: bool, option: str, rule: str) -> None:
    """Raise ``FdgenError("<option>: <rule>")`` unless ``ok``."""
    if not ok:
        raise FdgenError(f"{option}: {rule}")
