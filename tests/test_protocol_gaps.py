"""Gaps a mutation review found: each case below fails under the mutation named in its docstring."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from protocols.metrics import surface_dice
from protocols.surfaces import _MAX_SHIFTS
from protocols.prompts_clicks import first_click, next_click
from protocols.surfels import offsets_within

RNG = np.random.default_rng


def test_exact_edt_path_counts_a_surface_exactly_at_the_tolerance():
    """Two slabs exactly `tol` apart score NSD 1.0 on the exact distance-transform path (`<=` -> `<` fails)."""
    spacing, tolerance = (0.5, 1.0, 1.0), 5.0
    assert len(offsets_within(spacing, tolerance)) > _MAX_SHIFTS  # this tolerance takes the EDT path
    pred = np.zeros((60, 12, 12), bool)
    ref = np.zeros_like(pred)
    pred[10:30, 2:10, 2:10] = True
    ref[20:40, 2:10, 2:10] = True  # every face of the slab moved by 10 voxels x 0.5 mm = exactly 5 mm
    assert surface_dice(pred, ref, spacing, tolerance) == 1.0
    assert surface_dice(pred, ref, spacing, tolerance - 1e-6) < 1.0
    from surface_distance import compute_surface_dice_at_tolerance, compute_surface_distances

    oracle = compute_surface_dice_at_tolerance(compute_surface_distances(ref, pred, spacing), tolerance)
    assert oracle == 1.0


@pytest.mark.parametrize("side", ["fn", "fp"])
def test_fn_fp_coin_with_errors_on_one_side_only_never_clicks_the_empty_side(side):
    """Only one error type: every draw lands on it, whatever the coin says (mutation: always use the coin)."""
    ref = np.zeros((16, 16), bool)
    ref[2:10, 2:10] = True
    pred = ref.copy()
    if side == "fn":
        pred[2:5, 2:10] = False  # only missed voxels
    else:
        pred[12:15, 12:15] = True  # only extra voxels
    error = (ref & ~pred) if side == "fn" else (pred & ~ref)
    clicks = [next_click("fn_fp_coin", pred, ref, (1.0, 1.0), RNG(seed)) for seed in range(100)]
    assert all(c.positive == (side == "fn") and error[c.point] for c in clicks)
    assert len({c.point for c in clicks}) > 5  # still uniform over the error


def test_two_peak_plateau_clicks_a_peak_not_the_gap_between():
    """Two equal cubes joined by a thin bar: the distance maxima are two separate peaks whose mean lies on the
    bar; the centre click must be one of the peaks (mutation: click the rounded mean position)."""
    ref = np.zeros((31, 11, 11), bool)
    ref[1:10, 1:10, 1:10] = True
    ref[21:30, 1:10, 1:10] = True
    ref[10:21, 5, 5] = True  # a one-voxel bar makes it one component
    distance = distance_transform_edt(np.pad(ref, 1))[1:-1, 1:-1, 1:-1]
    click = first_click("center", ref, (1.0, 1.0, 1.0), RNG(0))
    assert distance[click.point] == distance.max() and click.point in {(5, 5, 5), (25, 5, 5)}
    assert click == first_click("center", ref, (1.0, 1.0, 1.0), RNG(1))  # deterministic
