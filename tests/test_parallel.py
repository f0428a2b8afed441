"""ordered_map: results in order, a bounded number of tasks in flight, errors raised."""

from __future__ import annotations

import os
import time

import pytest

from jmrn.parallel import ordered_map


def slow_square(x: int) -> tuple[int, int]:
    time.sleep(0.002 * (x % 3))  # finish out of order
    return x * x, os.getpid()


def fail_on_five(x: int) -> int:
    if x == 5:
        raise ValueError("video 5 is broken")
    return x


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_results_come_in_order_from_the_workers(n_jobs):
    results = list(ordered_map(slow_square, range(40), n_jobs))
    assert [r for r, _ in results] == [x * x for x in range(40)]
    pids = {pid for _, pid in results}
    assert (pids == {os.getpid()}) if n_jobs == 1 else (os.getpid() not in pids)


def test_at_most_tasks_per_worker_tasks_are_taken_ahead_of_the_caller():
    """Memory bound: items are pulled lazily, a fixed number ahead of the results taken."""
    pulled = []

    def items():
        for x in range(100):
            pulled.append(x)
            yield x

    results = ordered_map(slow_square, items(), n_jobs=2, tasks_per_worker=3)
    for k in range(10):
        next(results)
        assert len(pulled) <= k + 1 + 2 * 3  # the results taken plus the window
    results.close()
    assert len(pulled) < 20


def test_a_failing_task_raises_in_the_caller():
    with pytest.raises(ValueError, match="video 5 is broken"):
        list(ordered_map(fail_on_five, range(20), n_jobs=2))
