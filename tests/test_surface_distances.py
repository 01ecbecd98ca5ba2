"""HD95 and ASSD against the surface-distance package (DeepMind's definitions) on random shapes, anisotropic
spacings, 2D and 3D, objects touching the border, and the empty-mask conventions."""

from __future__ import annotations

import numpy as np
import pytest
import surface_distance
from scipy import ndimage

from protocols.surface_distances import (EMPTY_DISTANCE_POLICY, average_symmetric_surface_distance, distance_metrics,
                                         hausdorff)


def blob(shape, rng, iterations=2):
    noise = ndimage.gaussian_filter(rng.random(shape), 2.0)
    return ndimage.binary_opening(noise > np.percentile(noise, 70), iterations=iterations)


def oracle(pred, ref, spacing):
    distances = surface_distance.compute_surface_distances(ref, pred, spacing)
    hd95 = surface_distance.compute_robust_hausdorff(distances, 95)
    hd100 = surface_distance.compute_robust_hausdorff(distances, 100)
    areas_ref, areas_pred = distances["surfel_areas_gt"], distances["surfel_areas_pred"]
    total = np.sum(distances["distances_gt_to_pred"] * areas_ref) + np.sum(distances["distances_pred_to_gt"] * areas_pred)
    return hd95, hd100, total / (np.sum(areas_ref) + np.sum(areas_pred))


@pytest.mark.parametrize("seed", range(6))
def test_random_3d_shapes_match_surface_distance(seed):
    rng = np.random.default_rng(seed)
    shape = (30, 26, 18)
    ref, pred = blob(shape, rng), blob(shape, rng)
    spacing = tuple(rng.uniform(0.5, 3.0, 3))
    hd95, hd100, assd = oracle(pred, ref, spacing)
    assert hausdorff(pred, ref, spacing) == pytest.approx(hd95, rel=1e-12)
    assert hausdorff(pred, ref, spacing, percent=100) == pytest.approx(hd100, rel=1e-12)
    assert average_symmetric_surface_distance(pred, ref, spacing) == pytest.approx(assd, rel=1e-12)
    assert distance_metrics(pred, ref, spacing) == pytest.approx((hd95, assd), rel=1e-12)


def test_2d_shapes_and_border_objects_match_surface_distance():
    rng = np.random.default_rng(9)
    ref, pred = blob((40, 33), rng, 1), blob((40, 33), rng, 1)
    ref[0, :] = pred[:, -1] = True
    hd95, _, assd = oracle(pred, ref, (0.7, 1.3))
    assert hausdorff(pred, ref, (0.7, 1.3)) == pytest.approx(hd95, rel=1e-12)
    assert average_symmetric_surface_distance(pred, ref, (0.7, 1.3)) == pytest.approx(assd, rel=1e-12)


def test_far_surfaces_match_surface_distance():
    """Surfaces farther apart than the offsets the gathers try (a few mm): those vertices are placed by the k-d
    tree, with the same distances as surface-distance's distance transform, near and far vertices mixed."""
    rng = np.random.default_rng(4)
    ref, pred = blob((40, 36, 24), rng), np.zeros((40, 36, 24), bool)
    pred[4:34, 3:30, 2:20] = ref[:30, :27, 4:22]  # a shifted copy: distances from 0 to about 15 mm
    pred[36:39, 32:35, 20:23] = True  # a far island
    for spacing in ((1.0, 1.0, 1.0), (0.7, 0.9, 2.5)):
        hd95, hd100, assd = oracle(pred, ref, spacing)
        assert hd100 > 10
        assert distance_metrics(pred, ref, spacing) == pytest.approx((hd95, assd), rel=1e-12)
        assert hausdorff(pred, ref, spacing, percent=100) == pytest.approx(hd100, rel=1e-12)


def test_hand_computed_and_empty_cases():
    """Two single voxels 2 mm apart along an axis of 1 mm spacing: every surfel is 2 mm from the other surface
    after pairing the cubes' faces, as in DeepMind's golden test (hausdorff 2 at 100%)."""
    ref, pred = np.zeros((10, 10, 10), bool), np.zeros((10, 10, 10), bool)
    ref[5, 5, 3] = pred[5, 5, 5] = True
    assert hausdorff(pred, ref, (1, 1, 1), percent=100) == pytest.approx(oracle(pred, ref, (1, 1, 1))[1])
    assert hausdorff(pred, pred, (1, 1, 1)) == 0.0 and average_symmetric_surface_distance(pred, pred, (1, 1, 1)) == 0.0
    empty = np.zeros_like(ref)
    assert np.isnan(hausdorff(empty, empty, (1, 1, 1)))
    assert hausdorff(empty, ref, (1, 1, 1)) == np.inf == average_symmetric_surface_distance(ref, empty, (1, 1, 1))
    with pytest.raises(ValueError, match="boolean"):
        hausdorff(ref.astype(np.uint8), ref, (1, 1, 1))


def test_case_distances_match_surface_distance_and_record_the_empty_rule():
    """evaluate_case's HD95/ASSD equal compute_robust_hausdorff / compute_average_surface_distance; an empty side
    scores the image diagonal, both empty 0 (sat) or NaN (nan), each row naming its rule."""
    from protocols.case import evaluate_case

    rng = np.random.default_rng(3)
    shape, spacing = (30, 26, 18), (0.8, 1.2, 2.5)
    ref = blob(shape, rng).astype(np.uint8) + 2 * (blob(shape, rng) & ~blob(shape, rng)).astype(np.uint8)
    ref[ref == 3] = 2
    pred = np.zeros_like(ref)
    pred[blob(shape, rng)] = 1
    pred[ref == 2] = 3  # class "b" missed, class "c" predicted where the reference has none
    classes = {"a": 1, "b": 2, "c": 3, "d": 4}
    scores = {s.class_name: s.extra for s in evaluate_case(pred, ref, spacing, classes, metrics=("hd95", "assd"))}
    distances = surface_distance.compute_surface_distances(ref == 1, pred == 1, spacing)
    assert scores["a"]["hd95_mm"] == pytest.approx(surface_distance.compute_robust_hausdorff(distances, 95), rel=1e-12)
    mean_ref_to_pred, mean_pred_to_ref = surface_distance.compute_average_surface_distance(distances)
    areas_ref, areas_pred = distances["surfel_areas_gt"].sum(), distances["surfel_areas_pred"].sum()
    assd = (mean_ref_to_pred * areas_ref + mean_pred_to_ref * areas_pred) / (areas_ref + areas_pred)
    assert scores["a"]["assd_mm"] == pytest.approx(assd, rel=1e-12)
    assert scores["a"]["distance_rule"] == "measured"
    diagonal = np.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing)))
    for name in ("b", "c"):
        assert scores[name]["hd95_mm"] == scores[name]["assd_mm"] == pytest.approx(diagonal)
        assert scores[name]["distance_rule"] == "one empty -> image diagonal"
    assert scores["d"]["hd95_mm"] == 0.0 and scores["d"]["distance_rule"] == "both empty -> 0"
    nan = evaluate_case(pred, ref, spacing, {"d": 4}, empty_policy="nan", metrics=("hd95",))[0].extra
    assert np.isnan(nan["hd95_mm"]) and nan["distance_rule"] == "both empty -> NaN"


def test_case_builds_each_class_surfaces_once(monkeypatch):
    """NSD, HD95 and ASSD of a class are read from one SurfacePair (one border extraction, one EDT per side)."""
    import protocols.case
    from protocols.surfaces import SurfacePair

    built = []

    class Counting(SurfacePair):
        def __init__(self, *args, **kwargs):
            built.append(args[0].shape)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(protocols.case, "SurfacePair", Counting)
    rng = np.random.default_rng(5)
    ref, pred = blob((20, 20, 10), rng).astype(np.uint8), blob((20, 20, 10), rng).astype(np.uint8)
    protocols.case.evaluate_case(pred, ref, (1, 1, 2), {"a": 1}, metrics=("nsd", "hd95", "assd"))
    assert len(built) == 1

def test_empty_masks_against_surface_distance(monkeypatch):
    """surface_distance gives inf for HD of two empty masks as for one empty mask; our stated policy
    (`EMPTY_DISTANCE_POLICY`) keeps inf for one empty mask and gives NaN for two, like its ASSD terms (0/0)."""
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)  # the package still spells numpy 1's alias
    empty, voxel = np.zeros((6, 6, 6), bool), np.zeros((6, 6, 6), bool)
    voxel[2, 3, 3] = True
    for pred, ref in ((empty, empty), (empty, voxel), (voxel, empty)):
        distances = surface_distance.compute_surface_distances(ref, pred, (1.0, 1.0, 1.0))
        theirs_hd = surface_distance.compute_robust_hausdorff(distances, 95)
        with np.errstate(invalid="ignore", divide="ignore"):
            theirs_asd = surface_distance.compute_average_surface_distance(distances)
        ours_hd, ours_assd = distance_metrics(pred, ref, (1.0, 1.0, 1.0))
        assert theirs_hd == np.inf
        if pred.any() or ref.any():
            assert ours_hd == theirs_hd == ours_assd == np.nanmax(theirs_asd)
        else:
            assert np.isnan(ours_hd) and np.isnan(ours_assd) and np.isnan(theirs_asd).all()
    assert "NaN" in EMPTY_DISTANCE_POLICY and "inf" in EMPTY_DISTANCE_POLICY
