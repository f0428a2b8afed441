"""Dataset-level parallelism with memory bounded by construction.

joblib's generator output dispatches a new task whenever a worker is free, whether or not
the caller has consumed earlier results, so a slow consumer (e.g. the process writing HDF5)
can let finished results pile up. Here tasks run in waves of a few per worker on one pool:
at most one wave of results exists at a time, whatever the dataset size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from joblib import Parallel, delayed, effective_n_jobs


def ordered_map(fn: Callable, items: Iterable, n_jobs: int = -1,
                tasks_per_worker: int = 4) -> Iterator:  # fmt: skip
    """Yield ``fn(item)`` for every item, in order, using ``n_jobs`` worker processes."""
    workers = effective_n_jobs(n_jobs)
    items = iter(items)
    if workers == 1:
        yield from map(fn, items)
        return
    with Parallel(n_jobs=workers) as parallel:
        while wave := list(islice(items, workers * tasks_per_worker)):
            yield from parallel(delayed(fn)(item) for item in wave)
