"""Voxel-overlap metrics of one class from its confusion counts: IoU, precision, recall and volume error.

Every value is computed from the true-positive, false-positive and false-negative voxel counts (TP, FP, FN) and
the voxel volume, the counts a case already has once DSC is known, so they cost nothing more to score:

- IoU (Jaccard) = TP / (TP + FP + FN); precision = TP / (TP + FP); recall (sensitivity) = TP / (TP + FN), as
  MONAI's `compute_confusion_matrix_metric` ("precision", "sensitivity") and nnU-Net's evaluator define them.
- volume difference = (|P| - |R|) x voxel volume, in mm^3 (signed: positive when the prediction is too large);
  relative volume error = (|P| - |R|) / |R| (signed).

Empty masks follow the same explicit policy as DSC (`protocols.metrics.empty_score`), never a 0/0:
- both empty: IoU, precision and recall are 1.0 under ``"sat"`` and NaN under ``"nan"``;
- exactly one empty: IoU, precision and recall are 0.0 (the ratio with a zero denominator, precision of an empty
  prediction or recall of an empty reference, counts as a miss like the one that is defined);
- the volume difference is always defined (0 when both are empty); the relative volume error is NaN when the
  reference is empty (no volume to be relative to), whatever the policy, and the row says so by ``ref_empty``.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.metrics import empty_score
from protocols.errors import BenchError

OVERLAP_METRICS = ("iou", "precision", "recall", "vol_diff_mm3", "rel_vol_error")
COUNT_COLUMNS = ("tp_voxels", "fp_voxels", "fn_voxels")


@dataclass(frozen=True)
class Overlap:
    """The overlap metrics of one class in one case, with the confusion counts they come from."""

    tp_voxels: int
    fp_voxels: int
    fn_voxels: int
    iou: float
    precision: float
    recall: float
    vol_diff_mm3: float
    rel_vol_error: float


def overlap_metrics(tp: int, fp: int, fn: int, voxel_mm3: float, empty_policy: str = "sat") -> Overlap:
    """Overlap metrics from TP, FP and FN voxel counts and the volume of one voxel in mm^3."""
    if min(tp, fp, fn) < 0:
        raise BenchError(f"confusion counts must be >= 0, got TP {tp}, FP {fp}, FN {fn}")
    pred, ref = tp + fp, tp + fn
    fixed = empty_score(pred == 0, ref == 0, empty_policy)
    if fixed is None:
        iou, precision, recall = tp / (tp + fp + fn), tp / pred, tp / ref
    else:
        iou = precision = recall = fixed
    rel_vol_error = (pred - ref) / ref if ref else float("nan")
    return Overlap(int(tp), int(fp), int(fn), float(iou), float(precision), float(recall),
                   float((pred - ref) * voxel_mm3), float(rel_vol_error))
