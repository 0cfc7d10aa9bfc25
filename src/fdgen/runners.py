"""Execution of independent tasks (one shard each): joblib/loky on this machine, or Dask.

Tasks are pure functions of their input (a shard's bytes depend only on the shard plan), so
any backend, worker count or retry gives the same output.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from fdgen.errors import FdgenError

BACKENDS = ("local", "dask")
DASK_RETRIES = 2  # reruns of a task that raised; tasks lost with a worker are rerun by Dask


def default_workers() -> int:
    """All cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def run_local(fn: Callable, tasks: Iterable, workers: int) -> Iterator:
    """Yield ``fn(task)`` for every task, in completion order, on ``workers`` processes."""
    if workers == 1:
        for task in tasks:
            yield fn(task)
        return
    from joblib import Parallel, delayed  # 0.2 s to import: not for one worker

    results = Parallel(n_jobs=workers, return_as="generator_unordered", pre_dispatch="2*n_jobs")(
        delayed(fn)(task) for task in tasks
    )
    try:
        yield from results
    finally:
        results.close()


def _dask():
    try:
        import distributed
    except ImportError:
        raise FdgenError(
            "--backend dask needs the optional package 'distributed': pip install 'fdgen[dask]'"
        ) from None
    return distributed


def run_dask(
    fn: Callable,
    tasks: Iterable,
    workers: int,
    scheduler: str | None,
    key: Callable[[object], str],
) -> Iterator:
    """Yield ``fn(task)`` for every task, in completion order, on a Dask cluster.

    One Dask task per shard, named by ``key(task)`` (a stable name: a resubmission of the same
    shard is the same task). ``scheduler`` is the address of a running ``dask scheduler``;
    without it a ``LocalCluster`` of ``workers`` single-threaded processes is started. Tasks
    are submitted a window at a time so that the scheduler never holds the whole plan. A task
    whose worker dies is rerun elsewhere by the scheduler (up to its ``allowed-failures``);
    a task that raises is retried ``DASK_RETRIES`` times, then the error is reported.
    """
    distributed = _dask()
    cluster = None
    try:
        if scheduler:
            # timeout: Dask's distributed.comm.timeouts.connect (DASK_DISTRIBUTED__COMM__...)
            client = distributed.Client(scheduler, set_as_default=False)
        else:
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        where = f"--scheduler {scheduler}" if scheduler else "--backend dask"
        raise FdgenError(f"{where}: cannot connect to the Dask scheduler ({exc})") from None
    try:
        threads = sum(client.nthreads().values()) or workers
        window = max(8, 4 * threads)
        pending = iter(tasks)
        queue = distributed.as_completed(loop=client.loop)
        for task in islice(pending, window):
            queue.add(client.submit(fn, task, key=key(task), pure=False, retries=DASK_RETRIES))
        for future in queue:
            try:
                result = future.result()
            except distributed.KilledWorker as exc:
                raise FdgenError(
                    f"Dask task {future.key} killed every worker it ran on ({exc}); "
                    "see the workers' logs (out of memory?)"
                ) from None
            except ImportError as exc:
                raise FdgenError(
                    f"Dask task {future.key}: a worker cannot import what it needs ({exc}); "
                    "install the same fdgen on every worker"
                ) from None
            future.release()
            for task in islice(pending, 1):
                queue.add(client.submit(fn, task, key=key(task), pure=False, retries=DASK_RETRIES))
            yield result
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_tasks(
    fn: Callable,
    tasks: Iterable,
    workers: int,
    backend: str = "local",
    scheduler: str | None = None,
    key: Callable[[object], str] = str,
) -> Iterator:
    """Run ``fn`` over ``tasks`` on the chosen backend; yields results in completion order."""
    if backend == "dask":
        return run_dask(fn, tasks, workers, scheduler, key)
    if scheduler:
        raise FdgenError("--scheduler applies only to --backend dask")
    return run_local(fn, tasks, workers)
