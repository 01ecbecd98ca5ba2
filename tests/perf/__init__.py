"""Benchmarks, reported as ratios against a reference measured in the same run (`python -m tests.perf NAME`).

Every time printed is wall and CPU seconds (`timed`): on a shared machine the wall time alone misleads, the CPU
time (this process, every thread; a child process's not) says how much work was done."""

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Wall and CPU seconds of a timed call; formats as `1.23 s (CPU 0.98 s)` with the spec applied to both."""

    wall: float
    cpu: float

    def __add__(self, other: "Timing") -> "Timing":
        return Timing(self.wall + other.wall, self.cpu + other.cpu)

    def __truediv__(self, count: float) -> "Timing":
        return Timing(self.wall / count, self.cpu / count)

    def __format__(self, spec: str) -> str:
        return f"{self.wall:{spec or '.3f'}} s (CPU {self.cpu:{spec or '.3f'}} s)"


def timed(function, *args, **kwargs) -> tuple[object, Timing]:
    """`function(*args, **kwargs)` and its wall and CPU seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, Timing(time.perf_counter() - start, time.process_time() - cpu)
