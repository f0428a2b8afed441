"""Dataset-level parallelism with memory bounded by construction and no idle workers.

joblib's generator output dispatches a new task whenever a worker is free, whether or not
the caller has consumed earlier results, so a slow consumer (e.g. the process writing HDF5)
can let finished results pile up; its list output waits for a whole batch, so the workers
idle while the caller writes. Here a fixed number of tasks is in flight on joblib's process
pool (loky): each time the caller takes the oldest result, one more task is submitted. Memory
is bounded by that number whatever the dataset size, results come in order, and the workers
render the next tasks while the caller writes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from joblib import effective_n_jobs
from joblib.externals.loky import get_reusable_executor


def ordered_map(fn: Callable, items: Iterable, n_jobs: int = -1,
                tasks_per_worker: int = 4) -> Iterator:  # fmt: skip
    """Yield ``fn(item)`` for every item, in order, using ``n_jobs`` worker processes, with
    at most ``tasks_per_worker`` tasks per worker submitted or finished but not yet taken.

    An exception in a task is raised here, when its result is due; the tasks not yet started
    are then cancelled (as they are if the caller stops early).
    """
    workers = effective_n_jobs(n_jobs)
    items = iter(items)
    if workers == 1:
        yield from map(fn, items)
        return
    executor = get_reusable_executor(max_workers=workers)
    pending = deque(executor.submit(fn, item) for item in islice(items, workers * tasks_per_worker))
    try:
        while pending:
            result = pending.popleft().result()
            for item in islice(items, 1):
                pending.append(executor.submit(fn, item))
            yield result
    finally:
        for future in pending:
            future.cancel()
