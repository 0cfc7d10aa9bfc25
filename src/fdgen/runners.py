"""Execution of independent tasks (one shard each) on this machine with joblib/loky."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from joblib import Parallel, delayed


def run_local(fn: Callable, tasks: Iterable, workers: int) -> Iterator:
    """Yield ``fn(task)`` for every task, in completion order, on ``workers`` processes."""
    if workers == 1:
        for task in tasks:
            yield fn(task)
        return
    results = Parallel(n_jobs=workers, return_as="generator_unordered", pre_dispatch="2*n_jobs")(
        delayed(fn)(task) for task in tasks
    )
    try:
        yield from results
    finally:
        results.close()
