"""What the benchmarks share: running a command while watching the resident memory of it and
its worker processes, and the machine facts recorded next to the results."""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import resource
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil


def run_with_peak_rss(cmd: list[str], interval: float = 0.05, capture: bool = False,
                      env: dict[str, str] | None = None,
                      refresh: float = 1.0) -> tuple[float, float, str]:  # fmt: skip
    """(seconds, peak MiB summed over the process tree, stdout if ``capture``).

    The sum is an upper bound: pages shared between processes are counted in each. Polled
    every ``interval`` seconds, in a fresh process so that the parent's peak does not leak in.
    The tree's processes are listed again only every ``refresh`` seconds: listing them scans
    every process on the machine, and doing that every 20 ms took 0.14 of a core (now 0.03),
    which a 2-core run with two workers lost to the watcher.
    """
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE if capture else None, text=True, env=env)
    peak = 0
    tree, listed = [proc], -math.inf
    while proc.poll() is None:
        if time.perf_counter() - listed >= refresh:
            try:
                tree = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                pass
            listed = time.perf_counter()
        total = 0
        for p in tree:
            try:
                total += p.memory_info().rss
            except psutil.Error:  # a worker that has exited
                pass
        peak = max(peak, total)
        time.sleep(interval)
    seconds = time.perf_counter() - start
    stdout = proc.stdout.read() if capture else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed with exit code {proc.returncode}")
    return seconds, peak / 2**20, stdout


def run_json_child(cmd: list[str], interval: float) -> dict:
    """Run ``cmd``, a benchmark's child that prints its measurements as JSON on its last line,
    watching it with ``run_with_peak_rss``; adds its wall time (``process_seconds``), the peak
    summed RSS of its process tree, and ``other_cores_busy``: the CPU that the rest of the
    machine used meanwhile, in cores (> ~0.1 means other work competed with this run, so its
    speed and speed-up are too low)."""
    busy, own = busy_cpu_seconds(), own_cpu_seconds()
    wall, peak, stdout = run_with_peak_rss(cmd, interval, capture=True)
    other = (busy_cpu_seconds() - busy) - (own_cpu_seconds() - own)
    return {**json.loads(stdout.strip().splitlines()[-1]), "process_seconds": wall,
            "peak_tree_rss_mib": peak, "other_cores_busy": max(other, 0.0) / wall}  # fmt: skip


def in_turns(jobs: list[int], repeats: int, run: Callable[[int], dict]) -> dict[int, list[dict]]:
    """``run(n_jobs)`` ``repeats`` times for each of ``jobs``, the values taking turns in
    alternating order (1, -1, -1, 1, ...), so that a phase in which this shared machine runs
    slow costs each the same. The tries of each n_jobs, in order."""
    tries: dict[int, list[dict]] = {n_jobs: [] for n_jobs in jobs}
    for repeat in range(repeats):
        for n_jobs in (jobs if repeat % 2 == 0 else jobs[::-1]):
            tries[n_jobs].append(run(n_jobs))
    return tries


def fastest(tries: list[dict], seconds_key: str, listed: tuple[str, ...] = ()) -> dict:
    """The fastest try (others on the machine only ever slow a run down), with the largest
    memory peaks of all, and every try's ``seconds_key`` and ``listed`` values as
    ``<key>_all``."""
    result = dict(min(tries, key=lambda r: r[seconds_key]))
    for key in ("ru_maxrss_self_mib", "ru_maxrss_children_mib", "peak_tree_rss_mib"):
        result[key] = max(r[key] for r in tries)
    for key in (seconds_key, *listed):
        result[f"{key}_all"] = [r[key] for r in tries]
    return result


def machine_facts() -> dict:
    """CPU count and model, Python version and platform, for the results files."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform()}  # fmt: skip


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent not idle since boot."""
    t = psutil.cpu_times()
    return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its reaped descendants (a child's joblib workers are
    reaped by it, and it by this process, before the second reading)."""
    return sum(getattr(resource.getrusage(who), k) for k in ("ru_utime", "ru_stime")
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))  # fmt: skip


def _import_in_worker(modules: list[str]) -> int:
    """In a worker: import what the tasks need, and linger so that every worker gets one."""
    for name in modules:
        importlib.import_module(name)
    time.sleep(0.2)
    return os.getpid()


def start_pool(workers: int, modules: list[str]) -> float:
    """Start the worker pool that ``jmrn.parallel.ordered_map`` then gets (loky's reusable
    executor, with ordered_map's settings: a pool started with other settings, e.g. by
    joblib's ``Parallel``, would be replaced by a new one inside the timed call), each worker
    with ``modules`` imported: a one-off that would distort small runs. Seconds taken."""
    from jmrn.parallel import ordered_map

    start = time.perf_counter()
    for name in modules:
        importlib.import_module(name)
    if workers > 1:
        pids = set(ordered_map(_import_in_worker, [modules] * workers, workers, batch_size=1))
        if len(pids) != workers:
            raise RuntimeError(f"{len(pids)} of {workers} workers started")
    return time.perf_counter() - start


def stop_pool(workers: int) -> None:
    """Shut the pool down: its workers are reaped, so their CPU time and peak memory are now in
    this process's RUSAGE_CHILDREN."""
    if workers > 1:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
