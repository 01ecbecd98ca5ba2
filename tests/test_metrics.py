"""DSC and NSD against hand-derived values, DeepMind's own golden cases, and the surface-distance package."""

import math

import numpy as np
import pytest
import surface_distance
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from surface_distance import lookup_tables

from protocols.metrics import dice, surface_dice
from protocols.surfels import offsets_within, surfel_area_table


def oracle_nsd(pred, ref, spacing, tolerance):
    distances = surface_distance.compute_surface_distances(ref, pred, spacing)
    return surface_distance.compute_surface_dice_at_tolerance(distances, tolerance)


# --- golden values from DeepMind's surface_distance_test.py -------------------------------------------------

def test_two_voxels_2mm_apart_3d():
    ref, pred = np.zeros((128, 128, 128), bool), np.zeros((128, 128, 128), bool)
    ref[50, 60, 70] = pred[50, 60, 72] = True
    assert surface_dice(pred, ref, (3, 2, 1), 1.0) == pytest.approx(0.5, abs=1e-12)
    assert dice(pred, ref) == 0.0


def test_slabs_shifted_by_one_voxel_touching_the_border():
    ref, pred = np.zeros((100, 100, 100), bool), np.zeros((100, 100, 100), bool)
    ref[0:50] = True
    pred[0:51] = True
    assert round(surface_dice(pred, ref, (2, 1, 1), 1.0), 3) == 0.836
    assert round(dice(pred, ref), 3) == 0.990
    assert dice(pred, ref) == pytest.approx(2 * 50 / 101)


def test_two_pixels_2mm_apart_2d():
    ref, pred = np.zeros((128, 128), bool), np.zeros((128, 128), bool)
    ref[50, 70] = pred[50, 72] = True
    assert surface_dice(pred, ref, (2, 1), 1.0) == pytest.approx(0.5, abs=1e-12)


def test_two_squares_shifted_by_one_pixel_hand_derived():
    ref = np.zeros((6, 6), bool)
    ref[1:3, 1:3] = True
    pred = np.zeros((6, 6), bool)
    pred[1:4, 1:3] = True
    vertical, horizontal = 2.0, 1.0
    diag = 0.5 * math.sqrt(vertical**2 + horizontal**2)
    ref_total = 4 * diag + 2 * horizontal + 2 * vertical
    pred_total = 4 * diag + 2 * horizontal + 4 * vertical
    # Every reference surfel is within 1 mm of the prediction (one at exactly 1 mm: inclusive); the three
    # prediction surfels of its lower edge (diag, horizontal, diag) are 2 mm away.
    expected = (ref_total + pred_total - (2 * diag + horizontal)) / (ref_total + pred_total)
    assert surface_dice(pred, ref, (vertical, horizontal), 1.0) == pytest.approx(expected, abs=1e-12)
    # Just below 1 mm, the reference surfel at exactly 1 mm no longer counts.
    below = (ref_total - horizontal + pred_total - (2 * diag + horizontal)) / (ref_total + pred_total)
    assert surface_dice(pred, ref, (vertical, horizontal), 0.999) == pytest.approx(below, abs=1e-12)


def test_identical_masks_score_one():
    ref = np.zeros((20, 20, 10), bool)
    ref[5:15, 4:9, 2:7] = True
    assert dice(ref, ref) == 1.0
    assert surface_dice(ref, ref, (0.7, 0.7, 3.0), 0.0) == 1.0


# --- empty masks: the explicit policy -----------------------------------------------------------------------

def test_empty_policies():
    empty, full = np.zeros((8, 8, 8), bool), np.zeros((8, 8, 8), bool)
    full[2:5, 2:5, 2:5] = True
    spacing = (1.0, 1.0, 1.0)
    assert dice(empty, empty) == 1.0 and surface_dice(empty, empty, spacing) == 1.0
    assert math.isnan(dice(empty, empty, "nan")) and math.isnan(surface_dice(empty, empty, spacing, 1.0, "nan"))
    for policy in ("sat", "nan"):
        assert dice(full, empty, policy) == 0.0 and dice(empty, full, policy) == 0.0
        assert surface_dice(full, empty, spacing, 1.0, policy) == 0.0
        assert surface_dice(empty, full, spacing, 1.0, policy) == 0.0
    with pytest.raises(ValueError, match="empty_policy"):
        dice(full, full, "zero")


def test_bad_inputs_are_named():
    mask = np.zeros((4, 4, 4), bool)
    with pytest.raises(ValueError, match="pred must be a boolean"):
        dice(mask.astype(np.uint8), mask)
    with pytest.raises(ValueError, match="shapes differ"):
        dice(mask, mask[:3])
    with pytest.raises(ValueError, match="spacing must be 3"):
        surface_dice(mask, mask, (1.0, 1.0))


# --- the geometry tables against the package's own ----------------------------------------------------------

@pytest.mark.parametrize("spacing", [(1, 1, 1), (3, 2, 1), (0.78125, 0.78125, 5.0), (0.37, 4.9, 2.2)])
def test_surfel_areas_equal_deepmind_table(spacing):
    expected = lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
    np.testing.assert_allclose(surfel_area_table(tuple(map(float, spacing))), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("spacing", [(1, 1), (2, 1), (0.6, 3.1)])
def test_contour_lengths_equal_deepmind_table(spacing):
    expected = lookup_tables.create_table_neighbour_code_to_contour_length(spacing)
    np.testing.assert_allclose(surfel_area_table(tuple(map(float, spacing))), expected, rtol=0, atol=1e-12)


def test_tolerance_ball_offsets_hand_counted():
    assert len(offsets_within((1.0, 1.0, 1.0), 1.0)) == 7  # centre and six face neighbours
    assert len(offsets_within((0.78125, 0.78125, 5.0), 1.0)) == 5  # in-plane cross only
    assert len(offsets_within((1.0, 1.0), 1.5)) == 9  # 3x3 square: diagonal 1.414 <= 1.5


# --- property-based comparison with surface-distance ------------------------------------------------------

@st.composite
def mask_pairs(draw):
    ndim = draw(st.sampled_from([2, 3]))
    shape = tuple(draw(st.lists(st.integers(2, 14), min_size=ndim, max_size=ndim)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    ref = rng.random(shape) < draw(st.floats(0.05, 0.9))
    pred = ndimage.binary_dilation(ref) if rng.random() < 0.3 else rng.random(shape) < draw(st.floats(0.05, 0.9))
    spacing = tuple(draw(st.lists(st.floats(0.2, 5.0), min_size=ndim, max_size=ndim)))
    tolerance = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 2.5, 7.0]))
    return pred, ref, spacing, tolerance


@settings(max_examples=300, deadline=None)
@given(mask_pairs())
def test_nsd_equals_surface_distance(case):
    pred, ref, spacing, tolerance = case
    if not pred.any() or not ref.any():  # the PyPI oracle raises on empty masks under NumPy 2 (np.Inf)
        return
    assert surface_dice(pred, ref, spacing, tolerance) == pytest.approx(
        oracle_nsd(pred, ref, spacing, tolerance), abs=1e-9
    )


def test_large_tolerance_uses_exact_distance_transform():
    rng = np.random.default_rng(3)
    ref = ndimage.binary_opening(rng.random((30, 30, 12)) < 0.6)
    pred = ndimage.binary_opening(rng.random((30, 30, 12)) < 0.6)
    spacing = (0.5, 0.5, 1.0)
    assert len(offsets_within(spacing, 3.0)) > 64
    assert surface_dice(pred, ref, spacing, 3.0) == pytest.approx(oracle_nsd(pred, ref, spacing, 3.0), abs=1e-9)


def test_nsd_exactly_at_the_tolerance_counts_on_the_distance_transform_path():
    """Two 1 mm slabs 3 mm apart: every border vertex lies within 3 mm (inclusive) of the other surface; the
    tolerance ball (123 offsets) takes the exact distance-transform path."""
    pred, ref = np.zeros((12, 6, 6), bool), np.zeros((12, 6, 6), bool)
    pred[3, 1:5, 1:5] = True
    ref[6, 1:5, 1:5] = True
    assert len(offsets_within((1.0, 1.0, 1.0), 3.0)) > 64
    assert surface_dice(pred, ref, (1.0, 1.0, 1.0), 3.0) == 1.0 == oracle_nsd(pred, ref, (1.0, 1.0, 1.0), 3.0)
    assert surface_dice(pred, ref, (1.0, 1.0, 1.0), 2.999) == pytest.approx(0.5)
