"""IoU, precision, recall and volume error: MONAI's confusion-matrix metrics as the oracle, hand-computed counts,
and the empty-mask rules of protocols/overlap.py."""

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_confusion_matrix_metric, compute_iou, get_confusion_matrix

from protocols.case import evaluate_case
from protocols.overlap import overlap_metrics


def _monai(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    y_pred = torch.from_numpy(pred[None, None].astype(np.float32))
    y = torch.from_numpy(ref[None, None].astype(np.float32))
    matrix = get_confusion_matrix(y_pred, y)
    return {
        "iou": float(compute_iou(y_pred, y)[0, 0]),
        "precision": float(compute_confusion_matrix_metric("precision", matrix)[0, 0]),
        "recall": float(compute_confusion_matrix_metric("sensitivity", matrix)[0, 0]),
        "tp": int(matrix[0, 0, 0]), "fp": int(matrix[0, 0, 1]), "fn": int(matrix[0, 0, 3]),
    }


@pytest.mark.parametrize("seed", range(4))
def test_case_overlap_equals_monai_confusion_matrix_metrics(seed):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 4, (14, 12, 9)).astype(np.uint8)
    pred = np.where(rng.random(ref.shape) < 0.3, rng.integers(0, 4, ref.shape), ref).astype(np.uint8)
    spacing = (0.8, 1.1, 2.5)
    classes = {"a": 1, "b": 2, "c": 3, "b_or_c": (2, 3)}
    scores = evaluate_case(pred, ref, spacing, classes, metrics=("overlap",))
    for score in scores:
        values = classes[score.class_name]
        p, r = np.isin(pred, values), np.isin(ref, values)
        oracle = _monai(p, r)
        extra = score.extra
        assert (extra["tp_voxels"], extra["fp_voxels"], extra["fn_voxels"]) == (oracle["tp"], oracle["fp"],
                                                                                oracle["fn"])
        for metric in ("iou", "precision", "recall"):
            assert extra[metric] == pytest.approx(oracle[metric], rel=1e-6)  # MONAI computes in float32
        assert extra["vol_diff_mm3"] == pytest.approx((p.sum() - r.sum()) * 0.8 * 1.1 * 2.5)
        assert extra["rel_vol_error"] == pytest.approx((p.sum() - r.sum()) / r.sum())


def test_hand_computed_counts():
    """Reference 10 voxels, prediction 8 voxels of which 6 inside: TP 6, FP 2, FN 4 at 2 mm^3 per voxel."""
    result = overlap_metrics(6, 2, 4, 2.0)
    assert (result.iou, result.precision, result.recall) == (6 / 12, 6 / 8, 6 / 10)
    assert (result.vol_diff_mm3, result.rel_vol_error) == (-4.0, -0.2)


def test_empty_rules():
    both = overlap_metrics(0, 0, 0, 1.0)
    assert (both.iou, both.precision, both.recall, both.vol_diff_mm3) == (1.0, 1.0, 1.0, 0.0)
    assert math.isnan(both.rel_vol_error)
    assert all(math.isnan(v) for v in (lambda o: (o.iou, o.precision, o.recall))(overlap_metrics(0, 0, 0, 1.0, "nan")))
    missed = overlap_metrics(0, 0, 5, 1.0)  # empty prediction: precision is 0/0, counted as a miss
    assert (missed.iou, missed.precision, missed.recall, missed.rel_vol_error) == (0.0, 0.0, 0.0, -1.0)
    invented = overlap_metrics(0, 3, 0, 1.5)  # empty reference: recall is 0/0, counted as a miss
    assert (invented.iou, invented.precision, invented.recall, invented.vol_diff_mm3) == (0.0, 0.0, 0.0, 4.5)
    assert math.isnan(invented.rel_vol_error)
    # MONAI agrees where its ratio is defined: recall of an empty prediction, precision of an empty reference
    ref, pred = np.zeros((4, 4, 4), bool), np.zeros((4, 4, 4), bool)
    ref[1:3, 1:3, 1:3] = True
    assert _monai(pred, ref)["recall"] == missed.recall
    assert _monai(ref, pred)["precision"] == invented.precision
    with pytest.raises(ValueError, match="confusion counts"):
        overlap_metrics(-1, 0, 0, 1.0)


def test_default_scores_carry_no_extra_columns():
    ref = np.zeros((6, 6, 6), np.uint8)
    ref[1:4, 1:4, 1:4] = 1
    assert evaluate_case(ref, ref, (1, 1, 1), {"a": 1})[0].extra == {}


def test_ignore_label_equals_nnunet_evaluator_counts():
    """Reference voxels of the ignore label leave both sides: TP/FP/FN, DSC and IoU equal nnU-Net's
    compute_tp_fp_fn_tn with its ignore mask; the surfaces are those of the masks with those voxels removed."""
    from nnunetv2.evaluation.evaluate_predictions import compute_tp_fp_fn_tn

    from protocols.metrics import surface_dice

    rng = np.random.default_rng(7)
    ref = rng.integers(0, 3, (12, 10, 8)).astype(np.uint8)
    ref[rng.random(ref.shape) < 0.15] = 9  # unlabelled voxels
    pred = np.where(rng.random(ref.shape) < 0.3, rng.integers(0, 3, ref.shape), ref).astype(np.uint8)
    pred[pred == 9] = 1
    spacing = (1.0, 1.5, 2.0)
    scores = evaluate_case(pred, ref, spacing, {"a": 1, "b": 2}, metrics=("iou",), ignore_label=9)
    ignored = ref == 9
    for score, value in zip(scores, (1, 2)):
        tp, fp, fn, _ = compute_tp_fp_fn_tn(ref == value, pred == value, ignored)
        assert (score.extra["tp_voxels"], score.extra["fp_voxels"], score.extra["fn_voxels"]) == (tp, fp, fn)
        assert score.dsc == pytest.approx(2 * tp / (2 * tp + fp + fn)) and score.extra["iou"] == tp / (tp + fp + fn)
        kept_pred, kept_ref = (pred == value) & ~ignored, (ref == value) & ~ignored
        assert score.nsd == surface_dice(kept_pred, kept_ref, spacing)
    assert evaluate_case(pred, ref, spacing, {"a": 1})[0].dsc != scores[0].dsc  # the ignore label changed it
    with pytest.raises(ValueError, match="also a class label"):
        evaluate_case(pred, ref, spacing, {"a": 1, "void": 9}, ignore_label=9)
    with pytest.raises(ValueError, match="label map"):
        evaluate_case(pred, {"a": ref == 1}, spacing, {"a": 1}, ignore_label=9)
