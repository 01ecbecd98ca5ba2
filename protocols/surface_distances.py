"""Hausdorff distance at a percentile (HD95) and average symmetric surface distance (ASSD), DeepMind's definitions.

Both come from the same surface geometry as NSD (`protocols.surfels`): the dual-grid border vertices of each
mask, each carrying its surfel area, and the distance in mm from every border vertex of one mask to the nearest
border vertex of the other (an exact Euclidean distance transform with the voxel spacing). HD95 is the larger of
the two area-weighted 95th percentiles of those distances (`surface_distance.compute_robust_hausdorff`); ASSD the
area-weighted mean over both surfaces together. They cost a full distance transform of the crop per mask, so the
scoring path leaves them off unless asked; NSD does not use this module.

Empty masks (`EMPTY_DISTANCE_POLICY`, the one place the value is produced; rows carry `ref_empty`/`pred_empty`,
so a NaN or inf distance is always explained by its row): exactly one empty -> inf, as `surface_distance`
(no surface to measure to); both empty -> NaN, where `surface_distance.compute_robust_hausdorff` gives inf:
a correct empty prediction is not infinitely far from its empty reference, and NaN leaves the row out of
means instead of making every mean inf (its average surface distances are NaN there too, 0 / 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt

from protocols.boxes import bounding_box
from protocols.metrics import check_masks
from protocols.surfels import border_vertices, neighbour_codes, surfel_area_table


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(distances ref -> pred, surfel areas of ref, distances pred -> ref, surfel areas of pred), each sorted by
    distance, for two non-empty boolean masks of one shape."""
    spacing = tuple(float(s) for s in spacing)
    box = bounding_box(pred | ref)
    codes = [neighbour_codes(mask[box]) for mask in (ref, pred)]
    borders = [border_vertices(c) for c in codes]
    areas = surfel_area_table(spacing)
    distance_maps = [distance_transform_edt(~border, sampling=spacing) for border in borders]
    result = []
    for mine, other in ((0, 1), (1, 0)):
        distances = distance_maps[other][borders[mine]]
        surfels = areas[codes[mine][borders[mine]]]
        order = np.argsort(distances, kind="stable")
        result += [distances[order], surfels[order]]
    return result[0], result[1], result[2], result[3]


EMPTY_DISTANCE_POLICY = "HD and ASSD: one mask empty -> inf (as surface_distance); both empty -> NaN (it gives inf)"


def empty_distance(pred_empty: bool, ref_empty: bool) -> float | None:
    """HD/ASSD when a mask is empty (`EMPTY_DISTANCE_POLICY`), None when both have a surface."""
    if pred_empty and ref_empty:
        return float("nan")
    return float("inf") if pred_empty or ref_empty else None


def _check(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float | None:
    check_masks(pred, ref, spacing)
    return empty_distance(not pred.any(), not ref.any())


def hausdorff(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], percent: float = 95.0) -> float:
    """Robust Hausdorff distance in mm at ``percent`` (HD95 by default; 100 is the classic Hausdorff distance)."""
    fixed = _check(pred, ref, spacing)
    if fixed is not None:
        return fixed
    to_pred, ref_areas, to_ref, pred_areas = surface_distances(pred, ref, spacing)
    return max(_percentile(to_pred, ref_areas, percent), _percentile(to_ref, pred_areas, percent))


def _percentile(distances: np.ndarray, areas: np.ndarray, percent: float) -> float:
    cumulative = np.cumsum(areas) / np.sum(areas)
    index = int(np.searchsorted(cumulative, percent / 100.0))
    return float(distances[min(index, len(distances) - 1)])


def average_symmetric_surface_distance(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """ASSD in mm: the surfel-area-weighted mean distance over both surfaces together."""
    fixed = _check(pred, ref, spacing)
    if fixed is not None:
        return fixed
    to_pred, ref_areas, to_ref, pred_areas = surface_distances(pred, ref, spacing)
    total = np.sum(to_pred * ref_areas) + np.sum(to_ref * pred_areas)
    return float(total / (np.sum(ref_areas) + np.sum(pred_areas)))


def distance_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], percent: float = 95.0
) -> tuple[float, float]:
    """(HD at ``percent``, ASSD) from one computation of the surface distances (half the cost of calling both)."""
    fixed = _check(pred, ref, spacing)
    if fixed is not None:
        return fixed, fixed
    to_pred, ref_areas, to_ref, pred_areas = surface_distances(pred, ref, spacing)
    hd = max(_percentile(to_pred, ref_areas, percent), _percentile(to_ref, pred_areas, percent))
    total = np.sum(to_pred * ref_areas) + np.sum(to_ref * pred_areas)
    return hd, float(total / (np.sum(ref_areas) + np.sum(pred_areas)))
