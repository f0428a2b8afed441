"""ordered_map: results in order, a bounded number of tasks in flight, errors raised."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator

import pytest

from jmrn.parallel import ordered_map


def slow_square(x: int) -> tuple[int, int]:
    time.sleep(0.002 * (x % 3))  # finish out of order
    return x * x, os.getpid()


def counted(items: Iterable[int], pulled: list[int]) -> Iterator[int]:
    """``items``, each appended to ``pulled`` when it is taken."""
    for x in items:
        pulled.append(x)
        yield x


def fail_on_five(x: int) -> int:
    if x == 5:
        raise ValueError("video 5 is broken")
    return x


@pytest.mark.parametrize("n_jobs,batch_size,threads", [(1, 1, False), (2, 1, False),
                                                       (2, 3, False), (2, 3, True)])  # fmt: skip
def test_results_come_in_order_from_the_workers(n_jobs, batch_size, threads):
    results = list(ordered_map(slow_square, range(40), n_jobs, batch_size=batch_size,
                               threads=threads))  # fmt: skip
    assert [r for r, _ in results] == [x * x for x in range(40)]
    pids = {pid for _, pid in results}
    in_process = n_jobs == 1 or threads
    assert (pids == {os.getpid()}) if in_process else (os.getpid() not in pids)


@pytest.mark.parametrize("threads", [False, True])
def test_at_most_tasks_per_worker_tasks_are_taken_ahead_of_the_caller(threads):
    """Memory bound: items are pulled lazily, a fixed number ahead of the results taken."""
    pulled: list[int] = []
    results = ordered_map(slow_square, counted(range(100), pulled), n_jobs=2,
                          tasks_per_worker=3, batch_size=2, threads=threads)  # fmt: skip
    for k in range(10):
        next(results)
        assert len(pulled) <= k + 2 + 2 * 3 * 2  # the results taken, the window of batches
    results.close()
    assert len(pulled) < 30


@pytest.mark.parametrize("threads", [False, True])
def test_a_failing_task_raises_in_the_caller(threads):
    with pytest.raises(ValueError, match="video 5 is broken"):
        list(ordered_map(fail_on_five, range(20), n_jobs=2, threads=threads))


@pytest.mark.parametrize("threads", [False, True])
def test_the_first_tasks_start_before_the_caller_asks_for_a_result(threads):
    """The workers read while the caller sets up (ingest imports h5py and opens its file)."""
    pulled: list[int] = []
    results = ordered_map(slow_square, counted(range(100), pulled), n_jobs=2,
                          tasks_per_worker=3, batch_size=2, threads=threads)  # fmt: skip
    assert len(pulled) == 2 * 3 * 2  # submitted: workers x tasks_per_worker x batch_size
    assert [r for r, _ in results] == [x * x for x in range(100)]
