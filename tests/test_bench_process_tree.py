"""bench/process_tree.py: what the benchmarks' speed-ups rest on (the pool they time is the
one they started; one and all workers take turns; the fastest try is reported)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1] / "bench"))  # for process_tree

from process_tree import fastest, in_turns, start_pool, stop_pool  # noqa: E402

from jmrn.parallel import ordered_map  # noqa: E402


def test_the_started_pool_is_the_one_ordered_map_then_uses():
    """A pool started with other settings (joblib's Parallel did) is replaced by a new one
    inside the timed call: the workers that answer afterwards must be the started ones, with
    the module start_pool imported in each (colorsys: nothing else here imports it)."""
    try:
        start_pool(2, ["colorsys"])
        answers = list(ordered_map(_pid_and_imported, range(8), 2, batch_size=1))
        assert all(imported for _, imported in answers)
        assert len({pid for pid, _ in answers}) == 2 and os.getpid() not in dict(answers)
    finally:
        stop_pool(2)


def _pid_and_imported(_: int) -> tuple[int, bool]:
    import time

    time.sleep(0.05)  # both workers take tasks
    return os.getpid(), "colorsys" in sys.modules


def test_one_and_all_workers_take_turns_in_alternating_order():
    calls = []
    tries = in_turns([1, -1], 4, lambda n: calls.append(n) or {"n": n, "call": len(calls)})
    assert calls == [1, -1, -1, 1, 1, -1, -1, 1]
    assert [t["call"] for t in tries[1]] == [1, 4, 5, 8]
    assert [t["call"] for t in tries[-1]] == [2, 3, 6, 7]


def test_the_fastest_try_is_reported_with_the_largest_peaks():
    tries = [{"seconds": s, "peak_tree_rss_mib": m, "ru_maxrss_self_mib": m,
              "ru_maxrss_children_mib": m, "other_cores_busy": o}
             for s, m, o in [(3.0, 100, 0.1), (2.0, 50, 0.3), (2.5, 80, 0.2)]]  # fmt: skip
    result = fastest(tries, "seconds", ("other_cores_busy",))
    assert result["seconds"] == 2.0 and result["other_cores_busy"] == 0.3
    assert result["peak_tree_rss_mib"] == 100
    assert result["seconds_all"] == [3.0, 2.0, 2.5]
    assert result["other_cores_busy_all"] == [0.1, 0.3, 0.2]
    assert tries[1]["peak_tree_rss_mib"] == 50  # the tries themselves are left as they were
