"""Where the per-case tasks of a run execute: in this process, a local process pool, or a Dask cluster.

Every command hands `map_cases` a picklable task (`case -> None`, storing its own rows atomically) and the list of
cases; the executor reports each case as it finishes, with the exception if it failed. Workers read the files
themselves (a task carries paths, never volumes), so on a cluster the data must be on a path every worker sees.

- `local` with `workers=1`: a plain loop in this process.
- `local` with `workers>1`: a process pool whose workers die with their parent.
- `dask`: an existing scheduler (`scheduler="tcp://host:8786"`, e.g. from `dask scheduler` / `dask worker` or
  dask-jobqueue), or a `LocalCluster` of `workers` single-threaded processes started here. A task lost with its
  worker is retried (`retries`); a retried case rewrites the same case file, so it is never stored twice. Cases
  go to the cluster in chunks, since a task per case costs more in scheduling than a fast case takes; the
  chunks shrink towards the end of the run (`guided_chunks`), so the workers finish together.
  `resources={"GPU": 1}` keeps model tasks one per GPU on workers started with `--resources GPU=1`.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import TypeVar

from protocols.errors import BenchError

EXECUTORS = ("local", "dask")
Case = TypeVar("Case")


def die_with_parent(parent: int) -> None:
    """Pool worker initializer, the first thing a worker runs: it dies with its parent `parent` (pid), even one
    killed by SIGKILL, so a killed run leaves no orphan writing case files (an orphan would also wait forever on
    its task queue, whose write end it holds, and keep multiprocessing's resource tracker alive). On Linux the
    kernel sends the signal (PR_SET_PDEATHSIG); elsewhere a thread watches the parent. A parent that died before
    the watch began (while a spawned worker was still importing) is caught by the pid check."""
    import signal

    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        import threading
        import time

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True, name="parent-watch").start()
    if os.getppid() != parent:
        os._exit(1)


def pool_context() -> multiprocessing.context.BaseContext:
    """How pool workers start: forked (fast) unless torch is loaded here. Once torch has run a parallel operation,
    its OpenMP threads make a forked child hang at its own first one (`bench run --workers 2` with SAM-Med3D did),
    so workers are then spawned: fresh interpreters, still children of this process, so they die with it (a fork
    server's children outlive a killed parent)."""
    return multiprocessing.get_context("spawn" if "torch" in sys.modules else "fork")


def _any_exception(error: BaseException) -> bool:
    return isinstance(error, Exception)


def _local(task: Callable[[Case], None], cases: Sequence[Case], workers: int,
           caught: Callable[[BaseException], bool]) -> Iterator[tuple[Case, BaseException | None]]:
    if workers <= 1 or len(cases) <= 1:
        for case in cases:
            try:
                task(case)
            except Exception as error:
                if not caught(error):
                    raise
                yield case, error
            else:
                yield case, None
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),),
                             mp_context=pool_context()) as pool:
        futures = {pool.submit(task, case): case for case in cases}
        for future in as_completed(futures):
            yield futures[future], future.exception()


def local_cluster(workers: int):
    """A Dask LocalCluster of single-threaded worker processes, without the nanny's MALLOC_TRIM_THRESHOLD_=65536:
    that setting makes glibc return every large array to the system at once, which made scoring 1.8x slower per
    case in a worker than in this process (AMOS-size label maps, measured)."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=max(workers, 1), threads_per_worker=1, processes=True, dashboard_address=None)


def guided_chunks(cases: Sequence[Case], slots: int) -> list[list[Case]]:
    """Consecutive chunks that shrink as the run goes on (guided self-scheduling): each takes half a share of
    what is left per worker thread, so early chunks are large (few tasks to schedule) and the last ones hold
    one case each (no worker waits long for another to finish its chunk)."""
    chunks, start = [], 0
    while start < len(cases):
        size = max(1, math.ceil((len(cases) - start) / (2 * slots)))
        chunks.append(list(cases[start:start + size]))
        start += size
    return chunks


def _run_chunk(task: Callable[[Case], None], chunk: Sequence[Case],
               caught: Callable[[BaseException], bool]) -> list[BaseException | None]:
    """A Dask task: several cases in a row on one worker (a task per case costs more in scheduling than a fast
    case takes); each case's failure is returned, not raised, so the other cases of the chunk still run."""
    outcomes: list[BaseException | None] = []
    for case in chunk:
        try:
            task(case)
        except Exception as error:
            if not caught(error):
                raise
            outcomes.append(error)
        else:
            outcomes.append(None)
    return outcomes


@contextmanager
def dask_client(workers: int = 1, scheduler: str | None = None):
    """A Dask client of the cluster at `scheduler`, or of a `local_cluster(workers)` started and closed here."""
    from distributed import Client

    cluster = None if scheduler else local_cluster(workers)
    client = Client(scheduler or cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _dask(task: Callable[[Case], None], cases: Sequence[Case], workers: int, scheduler: str | None,
          retries: int, resources: dict | None,
          caught: Callable[[BaseException], bool]) -> Iterator[tuple[Case, BaseException | None]]:
    from distributed import as_completed as dask_completed

    with dask_client(workers, scheduler) as client:
        chunks = guided_chunks(cases, max(sum(client.nthreads().values()), 1))
        futures = [client.submit(_run_chunk, task, chunk, caught, pure=False, retries=retries, resources=resources)
                   for chunk in chunks]
        chunk_of = {future.key: chunk for future, chunk in zip(futures, chunks)}
        for future in dask_completed(futures):
            chunk = chunk_of[future.key]
            if future.status == "error":
                error = future.exception()
                yield from ((case, error) for case in chunk)
            else:
                yield from zip(chunk, future.result())


def map_cases(task: Callable[[Case], None], cases: Sequence[Case], *, executor: str = "local", workers: int = 1,
              scheduler: str | None = None, retries: int = 2, resources: dict | None = None,
              caught: Callable[[BaseException], bool] = _any_exception,
              ) -> Iterator[tuple[Case, BaseException | None]]:
    """Run `task` on every case; yield (case, None) or (case, exception) as each finishes, in completion order.
    In this process and on Dask an exception that `caught` does not accept ends the run (a pool worker's comes
    back as the case's); the drivers pass `bench.engine.driver.is_case_error`."""
    if executor not in EXECUTORS:
        raise BenchError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if executor == "dask":
        return _dask(task, cases, workers, scheduler, retries, resources, caught)
    return _local(task, cases, workers, caught)
