"""evaluate_case: all classes in one pass, label maps or per-class masks, equal to scoring each class alone."""

import numpy as np
import pytest
import surface_distance
from scipy import ndimage

from protocols.boxes import label_boxes
from protocols.case import SegmentationIndex, evaluate_case
from protocols.metrics import dice, surface_dice


def _label_maps(seed=0, shape=(40, 36, 12)):
    rng = np.random.default_rng(seed)
    ref = np.zeros(shape, np.uint8)
    ref[5:20, 4:18, 2:9] = 1
    ref[24:35, 20:33, 3:10] = 2
    ref[0:6, 30:36, 0:12] = 3  # touches three image borders
    pred = np.zeros_like(ref)
    for value in (1, 2, 3):
        organ = ndimage.shift(ref == value, (*rng.integers(-2, 3, 2), rng.integers(-1, 2)), order=0)
        pred[organ] = value
    return pred, ref


def test_label_boxes_equal_find_objects():
    rng = np.random.default_rng(1)
    for index in range(100):
        shape = tuple(rng.integers(1, 10, rng.integers(2, 4)))
        labels = ((rng.random(shape) < 0.1) * rng.integers(0, 6, shape)).astype(rng.choice([np.uint8, np.int32]))
        if index % 2:
            labels = np.asfortranarray(labels)
        expected = {value: box for value, box in enumerate(ndimage.find_objects(labels), 1) if box is not None}
        assert label_boxes(labels) == expected


def test_scores_equal_single_class_metrics_and_oracle():
    pred, ref = _label_maps()
    spacing = (0.8, 0.9, 2.5)
    classes = {"liver": 1, "spleen": 2, "corner": 3}
    scores = evaluate_case(pred, ref, spacing, classes, tolerance_mm=1.0)
    assert [s.class_name for s in scores] == list(classes)
    for score, value in zip(scores, classes.values()):
        p, r = pred == value, ref == value
        assert score.dsc == dice(p, r)
        assert score.nsd == pytest.approx(surface_dice(p, r, spacing, 1.0), abs=1e-12)
        oracle = surface_distance.compute_surface_dice_at_tolerance(
            surface_distance.compute_surface_distances(r, p, spacing), 1.0
        )
        assert score.nsd == pytest.approx(oracle, abs=1e-9)
        assert (score.ref_voxels, score.pred_voxels) == (r.sum(), p.sum())
        assert not score.ref_empty and not score.pred_empty


def test_memory_order_does_not_change_scores():
    pred, ref = _label_maps(seed=4)
    classes = {"a": 1, "b": 2, "c": 3}
    c_order = evaluate_case(pred, ref, (0.7, 0.8, 3.0), classes)
    fortran = evaluate_case(np.asfortranarray(pred), np.asfortranarray(ref), (0.7, 0.8, 3.0), classes)
    strided = evaluate_case(pred[::-1][::-1], ref.transpose(2, 1, 0).transpose(2, 1, 0), (0.7, 0.8, 3.0), classes)
    assert c_order == fortran == strided


def test_per_class_masks_give_the_same_scores_as_a_label_map():
    pred, ref = _label_maps(seed=2)
    classes = {"a": 1, "b": 2, "c": 3}
    from_maps = evaluate_case(pred, ref, (1.0, 1.0, 3.0), classes)
    masks = {name: pred == value for name, value in classes.items()}
    from_masks = evaluate_case(masks, ref, (1.0, 1.0, 3.0), classes)
    assert from_maps == from_masks


def test_union_class_and_empty_policies():
    pred, ref = _label_maps(seed=3)
    pred[pred == 2] = 0  # model missed class 2
    classes = {"a": 1, "b": 2, "c": 3, "a_or_c": (1, 3), "absent": 7}
    scores = {s.class_name: s for s in evaluate_case(pred, ref, (1.0, 1.0, 1.0), classes)}
    union_ref, union_pred = np.isin(ref, (1, 3)), np.isin(pred, (1, 3))
    assert scores["a_or_c"].dsc == dice(union_pred, union_ref)
    assert scores["b"].dsc == 0.0 and scores["b"].nsd == 0.0 and scores["b"].pred_empty
    assert scores["absent"].dsc == 1.0 and scores["absent"].nsd == 1.0
    assert scores["absent"].ref_empty and scores["absent"].pred_empty
    nan_scores = {s.class_name: s for s in evaluate_case(pred, ref, (1.0, 1.0, 1.0), classes, empty_policy="nan")}
    assert np.isnan(nan_scores["absent"].dsc) and np.isnan(nan_scores["absent"].nsd)
    assert nan_scores["b"].dsc == 0.0


def test_unclaimed_labels_are_named_and_not_scored():
    pred, ref = _label_maps()
    pred_index, ref_index = SegmentationIndex(pred), SegmentationIndex(ref)
    assert pred_index.unclaimed_labels({"a": 1, "b": 2}) == [3]
    assert pred_index.unclaimed_labels({"a": 1, "bc": [2, 3]}) == []
    subset = evaluate_case(pred_index, ref_index, (1.0, 1.0, 1.0), {"a": 1, "b": 2})
    full = evaluate_case(pred, ref, (1.0, 1.0, 1.0), {"a": 1, "b": 2, "c": 3})
    assert subset == full[:2]


def test_bad_inputs_raise():
    pred, ref = _label_maps()
    with pytest.raises(ValueError, match="shapes differ"):
        evaluate_case(pred[:-1], ref, (1.0, 1.0, 1.0), {"a": 1, "b": 2, "c": 3})
    with pytest.raises(ValueError, match="integer dtype"):
        evaluate_case(pred.astype(np.float32), ref, (1.0, 1.0, 1.0), {"a": 1, "b": 2, "c": 3})
    with pytest.raises(ValueError, match="positive label"):
        evaluate_case(pred, ref, (1.0, 1.0, 1.0), {"background": 0, "a": 1, "b": 2, "c": 3})
    with pytest.raises(ValueError, match="no mask for class"):
        evaluate_case({"a": pred == 1}, ref, (1.0, 1.0, 1.0), {"a": 1, "b": 2, "c": 3})


@pytest.mark.parametrize("shape", [(6,), (3, 4, 5, 2)])
def test_only_2d_and_3d_inputs_are_scored(shape):
    """A 1-D map used to score 1.0 when all-zero and a 4-D one raised OverflowError deep inside the surfels;
    both are refused up front with the argument named, as `surface_dice` does."""
    label_map = np.zeros(shape, np.uint8)
    label_map.flat[0] = 1
    spacing = (1.0,) * len(shape)
    with pytest.raises(ValueError, match=r"pred must be 2D or 3D, got shape"):
        evaluate_case(label_map, label_map.copy(), spacing, {"a": 1})
    with pytest.raises(ValueError, match=r"ref mask 'a' must be 2D or 3D, got shape"):
        evaluate_case(np.zeros((4, 4), np.uint8), {"a": np.zeros(shape, bool)}, (1.0, 1.0), {"a": 1})
    with pytest.raises(ValueError, match=r"pred must be 2D or 3D"):
        evaluate_case(np.zeros(shape, np.uint8), np.zeros(shape, np.uint8), spacing, {"a": 1})
