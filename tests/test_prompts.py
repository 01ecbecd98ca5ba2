"""Click policies on hand-made masks with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from protocols.prompts_clicks import FIRST_CLICKS, NEXT_CLICKS, first_click, next_click


def _padded_edt(mask: np.ndarray, spacing) -> np.ndarray:
    inner = tuple(slice(1, -1) for _ in mask.shape)
    return distance_transform_edt(np.pad(mask, 1), sampling=spacing)[inner]


def _two_components() -> np.ndarray:
    """A: 11x11x3 voxels (363, flat), B: 7x7x7 voxels (343, deeper in voxels)."""
    ref = np.zeros((30, 20, 12), bool)
    ref[2:13, 2:13, 4:7] = True  # A, centre (7, 7, 5)
    ref[18:25, 5:12, 2:9] = True  # B
    return ref


def _l_shape() -> np.ndarray:
    mask = np.zeros((20, 20), bool)
    mask[2:18, 2:7] = True  # vertical arm, 5 wide
    mask[13:18, 2:18] = True  # horizontal arm, 5 wide
    return mask


RNG = np.random.default_rng


def test_center_of_largest_error_component_respects_anisotropic_spacing():
    ref = _two_components()
    pred = np.zeros_like(ref)
    click = next_click("center_largest_error", pred, ref, (1.0, 1.0, 3.0), RNG(0))
    assert click.point == (7, 7, 5) and click.positive


def test_center_picks_largest_component_not_the_deepest_point():
    ref = _two_components()
    pred = np.zeros_like(ref)
    click = next_click("center_largest_error", pred, ref, (1.0, 1.0, 1.0), RNG(0))
    assert 2 <= click.point[0] < 13  # in A although B's centre is deeper in isotropic voxels
    assert _padded_edt(ref, (1, 1, 1))[click.point] == 2.0


def test_first_center_click_is_the_interior_maximum_of_the_largest_component():
    ref = _two_components()
    assert first_click("center", ref, (1.0, 1.0, 3.0), RNG(5)).point == (7, 7, 5)


def test_center_click_of_l_shape_is_inside_at_the_distance_maximum():
    ref = _l_shape()
    centroid = tuple(int(round(c)) for c in np.argwhere(ref).mean(axis=0))
    assert not ref[centroid]  # the centroid of an L is outside it: a centroid rule would be wrong
    distance = _padded_edt(ref, (1.0, 1.0))
    for name in ("center", ):
        click = first_click(name, ref, (1.0, 1.0), RNG(0))
        assert ref[click.point] and distance[click.point] == distance.max()
    click = next_click("center_largest_error", np.zeros_like(ref), ref, (1.0, 1.0), RNG(0))
    assert ref[click.point] and distance[click.point] == distance.max() and click.positive


def test_false_positive_component_gives_a_negative_centre_click():
    ref = np.zeros((12, 12, 12), bool)
    ref[1:4, 1:4, 1:4] = True
    pred = ref.copy()
    pred[5:12, 5:12, 5:12] = True  # a large FP block touching the image border
    click = next_click("center_largest_error", pred, ref, (1.0, 1.0, 1.0), RNG(0))
    assert not click.positive and click.point == (8, 8, 8)


@pytest.mark.parametrize("policy", sorted(NEXT_CLICKS))
def test_next_click_labels_and_bounds(policy):
    ref = np.zeros((16, 14, 6), bool)
    ref[0:9, 0:9, 0:6] = True  # touches three image borders
    pred = np.zeros_like(ref)
    pred[4:16, 3:14, 0:6] = True
    fn, fp = ref & ~pred, pred & ~ref
    for seed in range(40):
        click = next_click(policy, pred, ref, (0.8, 0.8, 2.5), RNG(seed))
        assert all(0 <= c < n for c, n in zip(click.point, ref.shape))
        assert (fn if click.positive else fp)[click.point]


@pytest.mark.parametrize("policy", sorted(NEXT_CLICKS))
def test_perfect_prediction_gives_no_click(policy):
    ref = _two_components()
    assert next_click(policy, ref.copy(), ref, (1.0, 1.0, 1.0), RNG(0)) is None


def test_random_error_is_uniform_over_fn_and_fp():
    ref = np.zeros((10, 10), bool)
    ref[:, :5] = True
    pred = np.zeros_like(ref)
    pred[:, 5:] = True  # 50 FN voxels, 50 FP voxels
    positives = [next_click("random_error", pred, ref, (1, 1), RNG(s)).positive for s in range(400)]
    assert 150 < sum(positives) < 250


def test_fn_fp_coin_is_fair_even_when_sizes_differ():
    ref = np.zeros((20, 20), bool)
    ref[0, 0] = True  # 1 FN voxel
    pred = np.zeros_like(ref)
    pred[10:, 10:] = True  # 100 FP voxels
    clicks = [next_click("fn_fp_coin", pred, ref, (1, 1), RNG(s)) for s in range(400)]
    positives = [c for c in clicks if c.positive]
    assert 150 < len(positives) < 250 and all(c.point == (0, 0) for c in positives)


def test_ritm_samples_only_the_top_half_of_distances_of_the_deeper_error():
    ref = np.zeros((30, 30, 10), bool)
    ref[2:22, 2:22, 1:9] = True  # deep FN block
    pred = np.zeros_like(ref)
    pred[25:28, 25:28, 4:6] = True  # shallow FP
    spacing = (1.0, 1.0, 2.0)
    distance = _padded_edt(ref & ~pred, spacing)
    clicks = [next_click("ritm", pred, ref, spacing, RNG(s)) for s in range(200)]
    assert all(c.positive for c in clicks)
    assert all(distance[c.point] > distance.max() / 2 for c in clicks)
    assert len({c.point for c in clicks}) > 50  # uniform over a region, not a single point


def test_ritm_goes_negative_when_the_false_positive_is_deeper():
    ref = np.zeros((30, 30), bool)
    ref[0:2, 0:2] = True
    pred = np.zeros_like(ref)
    pred[10:25, 10:25] = True
    click = next_click("ritm", pred, ref, (1.0, 1.0), RNG(3))
    assert not click.positive and pred[click.point]


def test_ritm_tie_of_equal_depth_goes_negative():
    """FN and FP blocks of the same size: equal distance maxima, and `is_positive = fn_max_dist > fp_max_dist` is
    false, so the official rule clicks the false positive (SamsungLabs/ritm_interactive_segmentation@b9b4460:
    isegm/inference/clicker.py:50; SAM-Med3D@b5927c7:utils/click_method.py follows it). Mutation `>=` fails."""
    ref = np.zeros((30, 30, 12), bool)
    ref[2:9, 2:9, 2:9] = True
    pred = np.zeros_like(ref)
    pred[18:25, 18:25, 2:9] = True
    for seed in range(10):
        click = next_click("ritm", pred, ref, (1.0, 1.0, 1.0), RNG(seed))
        assert not click.positive and pred[click.point]


@pytest.mark.parametrize("name", sorted(FIRST_CLICKS))
def test_first_click_is_on_the_target(name):
    ref = _two_components()
    for seed in range(20):
        click = first_click(name, ref, (1.0, 1.0, 3.0), RNG(seed))
        assert click.positive and ref[click.point]


def test_random_first_click_covers_the_target_uniformly():
    ref = np.zeros((4, 4), bool)
    ref[1:3, 1:3] = True
    points = [first_click("random", ref, (1, 1), RNG(s)).point for s in range(200)]
    counts = {p: points.count(p) for p in set(points)}
    assert set(counts) == {(1, 1), (1, 2), (2, 1), (2, 2)} and min(counts.values()) > 25


def test_clear_errors():
    ref = np.zeros((5, 5), bool)
    with pytest.raises(ValueError, match="empty"):
        first_click("random", ref, (1, 1), RNG(0))
    with pytest.raises(ValueError, match="unknown click policy"):
        next_click("nearest", ref, ref, (1, 1), RNG(0))
    with pytest.raises(ValueError, match="unknown first-click"):
        first_click("middle", ref, (1, 1), RNG(0))
    with pytest.raises(ValueError, match="boolean"):
        next_click("ritm", ref.astype(int), ref, (1, 1), RNG(0))
    with pytest.raises(ValueError, match="spacing"):
        next_click("ritm", ref, ref, (1, 1, 1), RNG(0))


def test_centre_of_a_plateau_is_its_middle():
    tube = np.zeros((21, 9, 9), bool)
    tube[:, 3:6, 3:6] = True  # every cross-section has the same depth: the maxima form a line along axis 0
    click = first_click("center", tube, (1.0, 1.0, 1.0), np.random.default_rng(0))
    assert click.point == (10, 4, 4)


def test_error_components_are_fully_connected():
    ref = np.zeros((30, 30), bool)
    pred = np.zeros((30, 30), bool)
    for i in range(20):  # a missed thin diagonal vessel: 20 voxels, touching only at corners
        ref[5 + i, 5 + i] = True
    pred[1:4, 25:28] = True  # a 9-voxel false positive blob
    click = next_click("center_largest_error", pred, ref, (1.0, 1.0), np.random.default_rng(0))
    assert click.positive and ref[click.point]
