"""Real scans from ../shared/data: every class of two real predictions, and a clinical label map, against
DeepMind's surface-distance."""

import json

import numpy as np
import pytest
import surface_distance
from scipy import ndimage

from bench.data.io import check_same_geometry, read_label_map
from protocols.case import evaluate_case


def _oracle(pred, ref, spacing, tolerance=1.0):
    distances = surface_distance.compute_surface_distances(ref, pred, spacing)
    return (
        surface_distance.compute_dice_coefficient(ref, pred),
        surface_distance.compute_surface_dice_at_tolerance(distances, tolerance),
    )


def test_totalsegmentator_fast_vs_full_every_class(shared_dir):
    folder = shared_dir / "data" / "totalsegmentator_example"
    ref = read_label_map(folder / "seg_total.nii.gz")
    pred = read_label_map(folder / "seg_total_fast.nii.gz")
    check_same_geometry(pred, ref)
    classes = {name: int(value) for value, name in json.loads((folder / "classes.json").read_text()).items()}
    scores = evaluate_case(pred.array, ref.array, ref.spacing, classes)
    compared = 0
    for score in scores:
        value = classes[score.class_name]
        p, r = pred.array == value, ref.array == value
        assert (score.ref_voxels, score.pred_voxels) == (r.sum(), p.sum())
        if score.ref_empty and score.pred_empty:
            assert score.dsc == score.nsd == 1.0
        elif score.ref_empty or score.pred_empty:
            assert score.dsc == score.nsd == 0.0
        else:
            dsc, nsd = _oracle(p, r, ref.spacing)
            assert score.dsc == pytest.approx(dsc, abs=1e-12)
            assert score.nsd == pytest.approx(nsd, abs=1e-9)
            compared += 1
    assert compared >= 40  # TotalSegmentator finds 40+ structures on this scan


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])
def test_amos_label_against_perturbed_copies(shared_dir, seed):
    ref = read_label_map(shared_dir / "data" / "amos" / "amos_0013_label.nii.gz")
    assert ref.array.shape == (512, 512, 82)
    rng = np.random.default_rng(seed)
    pred = np.zeros_like(ref.array)
    for value in range(1, 16):
        organ = ndimage.shift(ref.array == value, (*rng.integers(-3, 4, 2), rng.integers(-1, 2)), order=0)
        if rng.random() < 0.5:
            organ = ndimage.binary_dilation(organ, iterations=int(rng.integers(1, 3)))
        pred[organ] = value
    classes = {f"organ_{value}": value for value in range(1, 16)}
    for score, value in zip(evaluate_case(pred, ref.array, ref.spacing, classes), range(1, 16)):
        dsc, nsd = _oracle(pred == value, ref.array == value, ref.spacing)
        assert score.dsc == pytest.approx(dsc, abs=1e-12)
        assert score.nsd == pytest.approx(nsd, abs=1e-9)
