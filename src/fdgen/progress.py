"""Progress reporting of long steps (search, render, verify): quiet unless asked.

``reporting(progress)`` chooses, for the calls made inside it, what ``progress_bar`` does:
``False`` nothing (the library default), ``True`` a rich bar on stderr (the CLI), or a
callable that receives a ``ProgressEvent`` after every step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long task: its name ("search", "render", "verify"), the units done so
    far out of ``total`` (None: unknown), the unit and a free-text note (e.g. a rate)."""

    task: str
    done: int
    total: int | None
    unit: str
    info: str = ""


Progress = bool | Callable[[ProgressEvent], None]
_REPORTING: ContextVar[Progress] = ContextVar("fdgen_progress", default=False)


@contextmanager
def reporting(progress: Progress) -> Iterator[None]:
    """Report the progress bars opened inside the block as ``progress`` says (see above)."""
    token = _REPORTING.set(progress)
    try:
        yield
    finally:
        _REPORTING.reset(token)


@contextmanager
def progress_bar(description: str, total: int | None, unit: str = ""):
    """Yields ``update(advance, info)`` (info is free text), reported as ``reporting`` says."""
    progress = _REPORTING.get()
    if progress is True:
        with _rich_bar(description, total, unit) as update:
            yield update
        return
    done = 0

    def update(advance: int = 0, info: str = "") -> None:
        nonlocal done
        done += advance
        if callable(progress):
            progress(ProgressEvent(description, done, total, unit, info))

    yield update


@contextmanager
def _rich_bar(description: str, total: int | None, unit: str):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total, info="")

        def update(advance: int = 0, info: str = "") -> None:
            bar.update(task, advance=advance, info=info)

        yield update
