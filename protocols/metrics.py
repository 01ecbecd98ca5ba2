"""Dice (DSC) and Normalised Surface Dice (NSD) for binary masks: numpy in, floats out, no I/O.

NSD is DeepMind's surface Dice at a tolerance (Nikolov et al. 2021; `surface_distance`
`compute_surface_dice_at_tolerance`), the definition SAT reports with a 1 mm tolerance. It is *not* MONAI's
`compute_surface_dice`, which measures boundary voxels instead of marching-cubes surfels and gives different
numbers on the same masks.

Empty masks follow an explicit policy:
- ``"sat"`` (default, as in SAT's evaluation): both empty -> 1.0; exactly one empty -> 0.0.
- ``"nan"``: both empty -> NaN (excluded from means); exactly one empty -> 0.0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from protocols.boxes import bounding_box
from protocols.errors import BenchError

EMPTY_POLICIES = ("sat", "nan")
BASE_METRICS = ("dsc", "nsd")  # what every row scores; `protocols.class_metrics` adds the others on request
# Grids a case can be scored on: its own (native) or SAT-DS's resampled 1 x 1 x 3 mm grid (bench/engine/scoring_grid.py).
EVALUATION_GRIDS = ("native", "satds")  # where `bench evaluate` scores a prediction folder


def check_spacing(spacing: Sequence[float], ndim: int) -> None:
    """Spacing must give one finite, positive length (mm) per axis."""
    values = np.asarray(spacing, float)
    if values.shape != (ndim,) or not np.all(np.isfinite(values) & (values > 0)):
        raise BenchError(f"spacing must be {ndim} finite positive numbers, got {[float(v) for v in values.ravel()]}")


def check_masks(pred: np.ndarray | None, ref: np.ndarray, spacing: Sequence[float] | None = None) -> None:
    """Boolean 2D/3D masks of one shape (pred may be None) and, if given, a valid spacing for them."""
    for name, mask in (("pred", pred), ("ref", ref)):
        if mask is None:
            continue
        if not isinstance(mask, np.ndarray) or mask.dtype != bool:
            raise BenchError(f"{name} must be a boolean numpy array, got {getattr(mask, 'dtype', type(mask))}")
        if mask.ndim not in (2, 3):
            raise BenchError(f"{name} must be 2D or 3D, got shape {' x '.join(map(str, mask.shape))}")
    if pred is not None and pred.shape != ref.shape:
        raise BenchError(f"pred and ref shapes differ: {' x '.join(map(str, pred.shape))} vs "
                         f"{' x '.join(map(str, ref.shape))}")
    if spacing is not None:
        check_spacing(spacing, ref.ndim)


def check_tolerance(tolerance_mm: float) -> None:
    """An NSD tolerance is a finite distance in mm, >= 0."""
    if not (isinstance(tolerance_mm, int | float) and math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise BenchError(f"the NSD tolerance must be a finite number of mm >= 0, got {tolerance_mm}")


def _check_policy(empty_policy: str) -> None:
    if empty_policy not in EMPTY_POLICIES:
        raise BenchError(f"empty_policy must be one of {EMPTY_POLICIES}, got {empty_policy!r}")


def empty_score(pred_empty: bool, ref_empty: bool, empty_policy: str = "sat") -> float | None:
    """Score fixed by the policy when a mask is empty, or None when both masks have foreground."""
    _check_policy(empty_policy)
    if pred_empty and ref_empty:
        return 1.0 if empty_policy == "sat" else float("nan")
    if pred_empty or ref_empty:
        return 0.0
    return None


def dice(pred: np.ndarray, ref: np.ndarray, empty_policy: str = "sat") -> float:
    """Dice similarity coefficient 2|P and R| / (|P| + |R|)."""
    check_masks(pred, ref)
    pred_voxels, ref_voxels = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    fixed = empty_score(pred_voxels == 0, ref_voxels == 0, empty_policy)
    if fixed is not None:
        return fixed
    overlap = int(np.count_nonzero(pred & ref))
    return 2.0 * overlap / (pred_voxels + ref_voxels)


def surface_overlap(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], tolerance_mm: float) -> float:
    """NSD of two non-empty masks already cropped to (at least) the bounding box of their union.

    Surfels of each mask count as overlapping when the other surface passes within the tolerance; NSD is the
    overlapping surface area of both masks over their total surface area. Only the border vertices of each
    surface are visited, never a full distance map of the crop (unless the tolerance ball is large).
    """
    from protocols.surfaces import SurfacePair  # with scipy, imported on first use: the CLI's start-up imports this module

    check_tolerance(tolerance_mm)
    return SurfacePair(pred, ref, spacing, tolerance_mm).nsd()


def surface_dice(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    tolerance_mm: float = 1.0,
    empty_policy: str = "sat",
) -> float:
    """Normalised Surface Dice at `tolerance_mm` (inclusive), with anisotropic `spacing` in mm per axis."""
    check_masks(pred, ref, spacing)
    check_tolerance(tolerance_mm)
    fixed = empty_score(not pred.any(), not ref.any(), empty_policy)
    if fixed is not None:
        return fixed
    box = bounding_box(pred | ref)
    return surface_overlap(pred[box], ref[box], spacing, tolerance_mm)
