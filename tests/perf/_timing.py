"""CPU and wall time of benchmark runs: on a shared machine CPU seconds of this process are the comparable number
(wall time includes waiting for cores that other processes hold), so both are measured and printed."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Seconds of one run: CPU of this process (user + system, all its threads) and CPU of its finished child
    processes, and wall-clock."""

    cpu: float
    wall: float
    children_cpu: float = 0.0

    @property
    def total_cpu(self) -> float:
        """CPU seconds of this process and of the worker processes it waited for."""
        return self.cpu + self.children_cpu

    def __str__(self) -> str:
        children = f" + {self.children_cpu:.3f} s in workers" if self.children_cpu else ""
        return f"{self.cpu:8.4f} s CPU{children}, {self.wall:8.4f} s wall"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu() -> float:
    """CPU seconds so far of this process, of its finished child processes and of its live descendants (a pool's
    or a Dask cluster's workers): the difference of two readings is the work done in between, wherever it ran."""
    import psutil

    live = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        live += times.user + times.system
    return time.process_time() + _children_cpu() + live


def timed(function) -> tuple[Timing, object]:
    """The timing of one call and its result."""
    children, wall, cpu = _children_cpu(), time.perf_counter(), time.process_time()
    result = function()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Timing(cpu, wall, _children_cpu() - children), result


def best_of(repeats: int, function) -> tuple[Timing, object]:
    """The least CPU time and the least wall time of `repeats` calls (each the least disturbed by other load),
    and the last result."""
    timings, result = [], None
    for _ in range(repeats):
        timing, result = timed(function)
        timings.append(timing)
    return Timing(min(t.cpu for t in timings), min(t.wall for t in timings),
                  min(t.children_cpu for t in timings)), result


def load_line() -> str:
    """The machine's load (other processes compete for its cores during the run)."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} (1 min) {five:.2f} (5 min)"
