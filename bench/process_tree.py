"""What the benchmarks share: running a command while watching the resident memory of it and
its worker processes, and the machine facts recorded next to the results."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

import psutil


def run_with_peak_rss(cmd: list[str], interval: float = 0.05, capture: bool = False,
                      env: dict[str, str] | None = None) -> tuple[float, float, str]:  # fmt: skip
    """(seconds, peak MiB summed over the process tree, stdout if ``capture``).

    The sum is an upper bound: pages shared between processes are counted in each. Polled
    every ``interval`` seconds, in a fresh process so that the parent's peak does not leak in.
    """
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE if capture else None, text=True, env=env)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [proc, *proc.children(recursive=True)]:
                total += p.memory_info().rss
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(interval)
    seconds = time.perf_counter() - start
    stdout = proc.stdout.read() if capture else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed with exit code {proc.returncode}")
    return seconds, peak / 2**20, stdout


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
