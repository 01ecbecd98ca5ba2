"""What a model call costs: wall and CPU seconds per call, peak memory per case, the first call apart.

`timed_call(model, ...)` times one `model.segment` call: wall (`time.perf_counter`) and CPU of the whole
process, every thread (`time.process_time`), and, for a model declaring `reports_phases`, the wall seconds of its
preprocessing, model and postprocessing (`models.base.phase`; empty, not zero, for other models). The first
call of a model object in a process is its warm-up (lazy loading, kernel compilation, caches): its wall time is
also recorded as `warmup_seconds`, which marks the call, and the cost figures (`bench.views.cost`) leave marked
calls out; `seconds` keeps every call's time, so a time limit applied from it counts the warm-up too (as the SegFM script's timing of whole docker runs does). `CaseMemory` is the peak memory of a
case: the process's resident set over its size at the start (Linux: the kernel's high-water mark VmHWM, reset
per case through /proc/self/clear_refs; elsewhere psutil's RSS at the end, a lower bound), and on CUDA
`torch.cuda.max_memory_allocated` (weights included), reset per case; torch is never imported here (a weightless model runs
without it). `environment()` is what run.json records so figures are compared like for like: device, threads and
the batch settings (executor, workers, targets per call, the model's own `batch_settings`); `SETTINGS` are the
entries two runs' costs must share to be compared.
"""

from __future__ import annotations

import os
import sys
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from models.base import PHASES, recorded_phases

PHASE_COLUMNS = [f"{name}_seconds" for name in PHASES]
COST_COLUMNS = ["cpu_seconds", "peak_rss_mb", "peak_gpu_mb", "warmup_seconds", *PHASE_COLUMNS]
MB = 2.0**20
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")
_WARM: weakref.WeakSet = weakref.WeakSet()  # the model objects already called in this process
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
SETTINGS = ("device", "gpu", "cpu_count", "torch_threads", *THREAD_VARIABLES, "rss", "batch")


@dataclass(frozen=True)
class CallCost:
    """One model call: wall and CPU seconds; `warmup_seconds` (the same wall time) when it was the warm-up;
    `phases`: wall seconds per phase (`models.base.PHASES`) when the model reports them, else None."""

    seconds: float
    cpu_seconds: float
    warmup_seconds: float | None = None
    phases: Mapping[str, float] | None = None

    def columns(self, share: int = 1) -> dict:
        """The row's cost columns (`seconds` aside) for one of the `share` targets the call served: CPU and phase
        seconds shared alike, the warm-up mark as it is; phases NaN when not reported."""
        phases = self.phases or {}
        return {"cpu_seconds": self.cpu_seconds / share, "warmup_seconds": self.warmup_seconds,
                **{column: phases[name] / share if name in phases else np.nan
                   for name, column in zip(PHASES, PHASE_COLUMNS)}}


NO_CALL = CallCost(0.0, 0.0)  # a click step without a model call (the loop stopped at a perfect mask)


def timed_call(model, image, targets, state: dict) -> tuple[dict, CallCost]:
    """`model.segment(image, targets, state)` and its cost; the process's first call of `model` is the warm-up."""
    start, cpu = time.perf_counter(), time.process_time()
    with recorded_phases() as phases:
        masks = model.segment(image, targets, state)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    reported = dict(phases) if model.capabilities.reports_phases else None
    warm = model in _WARM
    _WARM.add(model)
    return masks, CallCost(seconds, cpu, None if warm else seconds, reported)


def _cuda():
    """torch's CUDA module when torch is already imported and sees a GPU, else None."""
    torch = sys.modules.get("torch")
    return torch.cuda if torch is not None and torch.cuda.is_available() else None


def _kernel_peak() -> bool:
    """Reset the kernel's peak resident set (VmHWM) of this process; False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _vm_hwm_bytes() -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


class CaseMemory:
    """Peak memory of one case: `with CaseMemory() as memory: ...`, then `memory.peak_rss_mb` (the resident set's
    rise over its size at the start) and `memory.peak_gpu_mb` (the most allocated at once, weights included;
    None without CUDA in use)."""

    method = "VmHWM (reset per case)" if sys.platform.startswith("linux") else "psutil RSS at the end"

    def __enter__(self) -> CaseMemory:
        self._process = psutil.Process()
        self._start = self._process.memory_info().rss
        self._kernel = _kernel_peak()
        self._cuda = _cuda()
        if self._cuda is not None:
            self._cuda.reset_peak_memory_stats()
        self.peak_rss_mb = self.peak_gpu_mb = None
        return self

    def __exit__(self, *exc) -> None:
        peak = _vm_hwm_bytes() if self._kernel else self._process.memory_info().rss
        self.peak_rss_mb = max(peak - self._start, 0) / MB
        if self._cuda is not None:
            self.peak_gpu_mb = self._cuda.max_memory_allocated() / MB


def environment(device: str, batch: Mapping[str, object]) -> dict:
    """The settings a cost figure depends on: device (and GPU name), CPU threads, the `batch` settings, how memory
    is measured."""
    torch = sys.modules.get("torch")
    cuda = _cuda()
    return {"device": device, "gpu": cuda.get_device_name() if cuda is not None and device.startswith("cuda") else None,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads() if torch is not None else None,
            **{name: os.environ.get(name) for name in THREAD_VARIABLES}, "batch": dict(batch),
            "rss": CaseMemory.method, "gpu_memory": "torch.cuda.max_memory_allocated, reset per case",
            "warmup": "the first call of the model in each process (its rows' warmup_seconds) is left out of "
                      "the cost figures"}
