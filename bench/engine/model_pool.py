"""The models of one process, each built and loaded once and reused by every case the process runs.

Lifetime: the process. The CLI's process builds a run's model before the first case (so a bad checkpoint fails
before any case) and runs its cases with it; a local pool worker or a Dask worker is a process of its own and
builds the model on its first case, then keeps it for the rest (a Dask worker with a GPU holds one model per GPU,
`bench.engine.runner` asks Dask for one GPU per case). A model is built once per (model, options, checkpoint,
device): the device is chosen from the model's declared capabilities (class data, `models.registry`) before
anything is built.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from models.base import Model


class ModelPool:
    """Built models by key, with the seconds each took to build, load and move (run.json's cost)."""

    def __init__(self) -> None:
        self._models: dict[Hashable, Model] = {}
        self._load_seconds: dict[Hashable, float] = {}

    def get(self, key: Hashable, build: Callable[[], Model]) -> Model:
        """The model under `key`, built by `build` the first time it is asked for."""
        if key not in self._models:
            start = time.perf_counter()
            self._models[key] = build()
            self._load_seconds[key] = time.perf_counter() - start
        return self._models[key]

    def load_seconds(self, key: Hashable) -> float | None:
        return self._load_seconds.get(key)

    def models(self) -> list[Model]:
        """The models built so far, in the order they were built."""
        return list(self._models.values())

    def clear(self) -> None:
        """Forget every model (tests that register throw-away models; a process that changes runs)."""
        self._models.clear()
        self._load_seconds.clear()


PROCESS_MODELS = ModelPool()
