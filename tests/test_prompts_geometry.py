"""Distance transform, boxes, per-slice prompts, SegVol points, seeding and the JSON record of prompts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.ndimage import distance_transform_edt, find_objects

from protocols.prompts import Box, Click, Prompt, clicks_from_json, clicks_to_json, prompt_rng
from protocols.prompts_boxes import box_from_mask, segvol_points
from protocols.prompts_clicks import next_click
from protocols.boxes import bounding_box
from protocols.prompts_distance import distance_transform
from protocols.prompts_slices import slice_boxes, slice_points, target_slices

masks = st.integers(2, 3).flatmap(
    lambda ndim: arrays(bool, st.tuples(*[st.integers(1, 9)] * ndim))
)


@settings(max_examples=150, deadline=None)
@given(mask=masks, data=st.data())
def test_distance_transform_matches_padded_scipy_edt(mask, data):
    spacing = tuple(data.draw(st.floats(0.3, 5.0)) for _ in range(mask.ndim))
    inner = tuple(slice(1, -1) for _ in mask.shape)
    expected = distance_transform_edt(np.pad(mask, 1), sampling=spacing)[inner]
    np.testing.assert_allclose(distance_transform(mask, spacing), expected, atol=1e-4)
    found = find_objects(mask.astype(np.uint8))
    assert bounding_box(mask) == (found[0] if found else None)


def test_bounding_box_of_fortran_ordered_mask():
    mask = np.zeros((6, 7, 8), bool, order="F")
    mask[1:3, 2:6, 7] = True
    assert bounding_box(mask) == (slice(1, 3), slice(2, 6), slice(7, 8))


def test_tight_box_is_inclusive_and_jitter_stays_in_the_image():
    mask = np.zeros((10, 12, 8), bool)
    mask[2:5, 0:12, 3] = True
    assert box_from_mask(mask) == Box((2, 0, 3), (4, 11, 3))
    for seed in range(50):
        box = box_from_mask(mask, jitter=3, rng=np.random.default_rng(seed))
        assert all(0 <= lo <= hi < n for lo, hi, n in zip(box.lo, box.hi, mask.shape))
        assert all(abs(a - b) <= 3 for a, b in zip(box.lo + box.hi, (2, 0, 3, 4, 11, 3)))
    with pytest.raises(ValueError, match="Generator"):
        box_from_mask(mask, jitter=2)
    with pytest.raises(ValueError, match="empty"):
        box_from_mask(np.zeros((3, 3), bool))


def _slab() -> np.ndarray:
    ref = np.zeros((24, 24, 6), bool)
    ref[8:16, 8:16, 1:5] = True
    ref[8:12, 8:12, 4] = False
    return ref


@pytest.mark.parametrize("k", [1, 3, 5])
def test_slice_points_alternate_positive_inside_and_negative_on_the_ring(k):
    ref = _slab()
    clicks = slice_points(ref, 2, k, np.random.default_rng(0), ring_width=3)
    assert target_slices(ref, 2) == [1, 2, 3, 4] and len(clicks) == 4 * k
    for n, click in enumerate(clicks):
        assert click.positive == (n % k % 2 == 0)
        if click.positive:
            assert ref[click.point]
        else:
            i, j, z = click.point
            assert not ref[click.point] and ref[max(i - 3, 0):i + 4, max(j - 3, 0):j + 4, z].any()


def test_slice_boxes_from_slice_or_volume():
    ref = _slab()
    per_slice = slice_boxes(ref, 2)
    assert per_slice[3] == Box((8, 8, 4), (15, 15, 4))  # the notch does not change the slice's box
    ref[8:16, 8:12, 4] = False
    assert slice_boxes(ref, 2)[3] == Box((8, 12, 4), (15, 15, 4))
    assert slice_boxes(ref, 2, source="volume")[3] == Box((8, 8, 4), (15, 15, 4))
    jittered = slice_boxes(ref, 2, jitter=2, rng=np.random.default_rng(1))
    assert all(box.lo[2] == box.hi[2] for box in jittered)


def test_segvol_points_layout():
    ref = np.zeros((8, 8, 8), bool)
    ref[2:5, 2:5, 2:5] = True
    points, labels = segvol_points(ref, np.random.default_rng(0), n_positive_extra=2, n_negative_extra=1,
                                   fixed_extra=5)
    assert points.shape == (6, 3) and list(labels) == [1, 1, 1, 0, -1, -1]
    assert all(ref[tuple(p)] for p in points[:3]) and not ref[tuple(points[3])]
    assert (points[4:] == -1).all()
    # SegVol's select_points on an empty target: the ignore point first, no positive extras, then negatives.
    empty_points, empty_labels = segvol_points(np.zeros_like(ref), np.random.default_rng(0))
    assert list(empty_labels) == [-1] and (empty_points == -1).all()
    empty_points, empty_labels = segvol_points(np.zeros_like(ref), np.random.default_rng(0), n_negative_extra=2)
    assert list(empty_labels) == [-1, 0, 0] and (empty_points[0] == -1).all() and (empty_points[1:] >= 0).all()


def test_prompt_rng_is_a_pure_function_of_its_key():
    a = prompt_rng(0, "case1", "liver", "ritm", 2).integers(1 << 30, size=4)
    b = prompt_rng(0, "case1", "liver", "ritm", 2).integers(1 << 30, size=4)
    assert (a == b).all()
    for other in [(1, "case1", "liver", "ritm", 2), (0, "case2", "liver", "ritm", 2),
                  (0, "case1", "spleen", "ritm", 2), (0, "case1", "liver", "ritm", 3)]:
        assert not (prompt_rng(*other).integers(1 << 30, size=4) == a).all()


def test_same_seed_same_clicks_different_case_different_clicks():
    ref = np.zeros((20, 20, 20), bool)
    ref[3:15, 3:15, 3:15] = True
    pred = np.zeros_like(ref)

    def click(case):
        return next_click("random_error", pred, ref, (1, 1, 1), prompt_rng(7, case, "liver", "random_error", 1))

    assert click("a") == click("a")
    assert len({click(f"case{n}").point for n in range(5)}) > 1


def test_clicks_json_round_trip():
    clicks = [Click((1, 2, 3), True), Click((4, 5, 6), False)]
    record = clicks_to_json(case_id="c", class_name="liver", policy="ritm", first_click="center", seed=3,
                            clicks=clicks)
    assert record["clicks"][1] == {"point": [4, 5, 6], "positive": False, "click": 2}
    assert clicks_from_json(record) == clicks


def test_prompt_kinds_and_box_validation():
    assert Prompt().kinds() == frozenset()
    prompt = Prompt(points=(Click((0, 0), True),), text="liver", mask=np.zeros((2, 2), bool))
    assert prompt.kinds() == {"points", "text", "mask"}
    with pytest.raises(ValueError, match="invalid box"):
        Box((3, 0), (2, 5))
