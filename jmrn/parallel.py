"""Dataset-level parallelism with memory bounded by construction and no idle workers.

joblib's generator output dispatches a new task whenever a worker is free, whether or not
the caller has consumed earlier results, so a slow consumer (e.g. the process writing HDF5)
can let finished results pile up; its list output waits for a whole batch, so the workers
idle while the caller writes. Here a fixed number of tasks is in flight on joblib's process
pool (loky): each time the caller takes the oldest result, one more task is submitted. Memory
is bounded by that number whatever the dataset size, results come in order, and the workers
render the next tasks while the caller writes.

Work whose heavy part releases the GIL (the compiled heatmap renderer and LZF encoder) runs
in threads instead (``threads=True``): nothing to start, pickle or import again. Starting two
loky workers and loading numba in each costs ~3 s on 2 cores, as long as rendering all of
HMDB51 takes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from itertools import islice

from joblib import effective_n_jobs
from joblib.externals.loky import get_reusable_executor


def _apply(fn: Callable, batch: list) -> list:
    return [fn(item) for item in batch]


def ordered_map(fn: Callable, items: Iterable, n_jobs: int = -1, tasks_per_worker: int = 4,
                batch_size: int = 1, threads: bool = False) -> Iterator:  # fmt: skip
    """Yield ``fn(item)`` for every item, in order, using ``n_jobs`` worker processes (or
    threads), with at most ``tasks_per_worker`` tasks per worker submitted or finished but
    not yet taken.

    The first tasks are submitted by this call, not at the first ``next``: the workers start
    while the caller sets up (imports h5py, opens its output file). A task is ``batch_size``
    items: submitting one costs ~0.1 ms of the caller's time (the function and its arguments
    are pickled), so small items (one JSON video) are batched. An exception in a task is
    raised here, when its result is due; the tasks not yet started are then cancelled (as
    they are if the caller stops early, closing the iterator).
    """
    workers = effective_n_jobs(n_jobs)
    items = iter(items)
    if workers == 1:
        return map(fn, items)
    if threads:
        executor = ThreadPoolExecutor(max_workers=workers)
    else:  # as joblib does: each worker's own thread pools get its share of the cores
        share = str(max(os.cpu_count() // workers, 1))
        env = {name: share for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                        "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}  # fmt: skip
        executor = get_reusable_executor(max_workers=workers, env=env)
    results = _in_order(executor, fn, items, workers * tasks_per_worker, batch_size,
                        shutdown=threads)  # fmt: skip
    next(results)  # runs up to its first yield: the first tasks are submitted now
    return results


def _in_order(executor: Executor, fn: Callable, items: Iterator, in_flight: int,
              batch_size: int, shutdown: bool) -> Iterator:  # fmt: skip
    """Yields once when the first ``in_flight`` tasks are submitted (``ordered_map`` takes
    that), then the results. ``shutdown``: the executor is this generator's own (threads;
    loky's reusable one is kept for the next call)."""
    batches = iter(lambda: list(islice(items, batch_size)), [])
    pending: deque = deque()
    try:
        pending.extend(executor.submit(_apply, fn, batch) for batch in islice(batches, in_flight))
        yield None
        while pending:
            results = pending.popleft().result()
            for batch in islice(batches, 1):
                pending.append(executor.submit(_apply, fn, batch))
            yield from results
    finally:
        for future in pending:
            future.cancel()
        if shutdown:
            executor.shutdown(wait=True)
