"""One combined label map, later classes overwriting earlier ones (SAM-Med3D's current script), by hand."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.label_maps import overwrite_in_order


def official_rule(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """uni-medical/SAM-Med3D@f3de1fa: utils/infer_utils.py:389 (a zero map), :393 and :409 (each category in
    turn, `final_pred[cls_pred == 1] = category_index`), then utils/metric_utils.py:98-99 (`pred == i`)."""
    final = np.zeros(next(iter(masks.values())).shape, np.uint8)
    for index, name in enumerate(masks, 1):
        final[masks[name].astype(np.uint8) == 1] = index
    return {name: final == index for index, name in enumerate(masks, 1)}


def test_a_later_class_takes_the_voxels_both_claim():
    liver, kidney, spleen = (np.zeros((4, 5), bool) for _ in range(3))
    liver[0:3, 0:3] = True  # 9 voxels
    kidney[2:4, 2:5] = True  # 6 voxels, one shared with the liver at (2, 2)
    spleen[0, 4] = True
    out = overwrite_in_order({"liver": liver, "kidney": kidney, "spleen": spleen})
    assert out["liver"].sum() == 8 and not out["liver"][2, 2]
    np.testing.assert_array_equal(out["kidney"], kidney)
    np.testing.assert_array_equal(out["spleen"], spleen)
    reverse = overwrite_in_order({"kidney": kidney, "liver": liver})
    assert reverse["kidney"].sum() == 5 and reverse["liver"].sum() == 9


def test_equals_the_official_rule_on_random_overlaps():
    rng = np.random.default_rng(0)
    masks = {f"c{i}": rng.random((6, 7, 5)) < 0.4 for i in range(4)}
    ours, theirs = overwrite_in_order(masks), official_rule(masks)
    for name in masks:
        np.testing.assert_array_equal(ours[name], theirs[name])
    assert sum(m.sum() for m in ours.values()) < sum(m.sum() for m in masks.values())  # overlaps were lost


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="share a shape"):
        overwrite_in_order({"a": np.zeros((2, 2), bool), "b": np.zeros((3, 2), bool)})
