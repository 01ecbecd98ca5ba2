"""Helpers shared by the reference models: distances from every voxel to a set of clicks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protocols.prompts import Click


def nearest_click_distance(shape: tuple[int, ...], spacing: Sequence[float], clicks: Sequence[Click]) -> np.ndarray:
    """Euclidean distance (mm) from every voxel to the nearest of `clicks` (inf when there are none)."""
    squared = np.full(shape, np.inf, np.float32)
    grids = [np.arange(n, dtype=np.float32) * np.float32(s) for n, s in zip(shape, spacing)]
    for click in clicks:
        total = np.zeros((1,) * len(shape), np.float32)
        for axis, (grid, coord, step) in enumerate(zip(grids, click.point, spacing)):
            view = [1] * len(shape)
            view[axis] = -1
            total = total + np.square(grid - np.float32(coord * step)).reshape(view)
        np.minimum(squared, total, out=squared)
    return np.sqrt(squared)
