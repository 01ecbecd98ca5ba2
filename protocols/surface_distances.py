"""Hausdorff distance at a percentile (HD95) and average symmetric surface distance (ASSD), DeepMind's definitions.

Both come from the same surface geometry as NSD (`protocols.surfaces.SurfacePair`): the dual-grid border vertices
of each mask, each carrying its surfel area, and the exact distance in mm from every border vertex of one mask to
the nearest border vertex of the other (the distances surface-distance reads from a Euclidean distance transform).
HD95 is the larger of the two area-weighted 95th percentiles of those distances
(`surface_distance.compute_robust_hausdorff`); ASSD the area-weighted mean over both surfaces together. They cost
several times NSD, so the scoring path leaves them off unless asked.

Empty masks: both empty -> NaN; exactly one empty -> inf (no surface to measure to), as in `surface_distance`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protocols.boxes import bounding_box
from protocols.metrics import check_masks
from protocols.surfaces import SurfacePair


def _pair(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> SurfacePair:
    box = bounding_box(pred | ref)
    return SurfacePair(pred[box], ref[box], spacing)


def _check(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float | None:
    check_masks(pred, ref, spacing)
    pred_empty, ref_empty = not pred.any(), not ref.any()
    if pred_empty and ref_empty:
        return float("nan")
    return float("inf") if pred_empty or ref_empty else None


def hausdorff(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], percent: float = 95.0) -> float:
    """Robust Hausdorff distance in mm at ``percent`` (HD95 by default; 100 is the classic Hausdorff distance)."""
    fixed = _check(pred, ref, spacing)
    if fixed is not None:
        return fixed
    return _pair(pred, ref, spacing).hausdorff(percent)


def average_symmetric_surface_distance(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """ASSD in mm: the surfel-area-weighted mean distance over both surfaces together."""
    fixed = _check(pred, ref, spacing)
    if fixed is not None:
        return fixed
    return _pair(pred, ref, spacing).assd()


def distance_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], percent: float = 95.0
) -> tuple[float, float]:
    """(HD at ``percent``, ASSD) from one computation of the surface distances (half the cost of calling both)."""
    fixed = _check(pred, ref, spacing)
    if fixed is not None:
        return fixed, fixed
    pair = _pair(pred, ref, spacing)
    return pair.hausdorff(percent), pair.assd()
