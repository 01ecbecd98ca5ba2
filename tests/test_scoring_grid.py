"""SAT's scoring grid on the real AMOS label (LAS, 0.78 x 0.78 x 5 mm) and the TotalSegmentator CT.

Oracles: MONAI's `Orientation` + `Spacing(pixdim=(1, 1, 3), mode="nearest")` applied to both sides independently
(how SAT-DS's loader makes the reference SAT scores against), then the same `evaluate_case` with spacing (1, 1, 3);
and `bench.engine.preprocess.preprocess` (itself checked against MONAI's pipeline) for the image's foreground crop.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, Spacing
from scipy.ndimage import grey_dilation

from bench.data.io import InputError, read_label_map, read_volume
from bench.engine.preprocess import from_sat, plan_transform, preprocess, to_sat
from bench.engine.scoring_grid import to_scoring_grid
from protocols.case import evaluate_case

AMOS_CLASSES = {name: value for value, name in enumerate(
    ["spleen", "right kidney", "left kidney", "gallbladder", "esophagus", "liver", "stomach", "aorta",
     "inferior vena cava", "pancreas", "right adrenal gland", "left adrenal gland", "duodenum", "urinary bladder",
     "prostate or uterus"], start=1)}


@pytest.fixture(scope="module")
def amos(shared_dir):
    return read_label_map(shared_dir / "data" / "amos" / "amos_0013_label.nii.gz")


@pytest.fixture(scope="module")
def dilated(amos):
    """Every organ grown by one voxel in-plane into the background (3 x 3 x 1 neighbourhood)."""
    grown = grey_dilation(amos.array, footprint=np.ones((3, 3, 1), bool))
    return np.where(amos.array > 0, amos.array, grown)


def _monai_1x1x3(label_map: np.ndarray, affine: np.ndarray) -> np.ndarray:
    data = MetaTensor(torch.from_numpy(label_map.astype(np.float32))[None], affine=torch.as_tensor(affine))
    data = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(data)
    return Spacing(pixdim=(1, 1, 3), mode="nearest")(data)[0].numpy().astype(label_map.dtype)


def _table(scores) -> np.ndarray:
    return np.array([[s.dsc, s.nsd] for s in scores])


def test_dilated_prediction_scores_differently_and_satds_is_monai(amos, dilated):
    native_pred, native_ref, spacing = to_scoring_grid(dilated, amos.array, amos.affine, amos.array.shape, "native")
    assert native_pred is dilated and native_ref is amos.array
    assert np.allclose(spacing, (0.781, 0.781, 5.0))
    native = _table(evaluate_case(native_pred, native_ref, spacing, AMOS_CLASSES))

    pred, ref, spacing = to_scoring_grid(dilated, amos.array, amos.affine, amos.array.shape, "satds")
    assert spacing == (1.0, 1.0, 3.0) and pred.shape == ref.shape == (400, 400, 136)
    satds = _table(evaluate_case(pred, ref, spacing, AMOS_CLASSES))

    independent = evaluate_case(_monai_1x1x3(dilated, amos.affine), _monai_1x1x3(amos.array, amos.affine),
                                (1, 1, 3), AMOS_CLASSES)
    assert np.array_equal(satds, _table(independent))
    difference = np.abs(satds - native)  # measured: mean 0.30 (DSC) and 0.67 (NSD) points, max 1.1 and 4.0
    assert difference.mean(axis=0).min() > 0.002  # the grids disagree on average, in DSC and in NSD
    assert difference.max() > 0.02


def test_prediction_made_on_sat_grid_is_perfect_only_there(amos):
    """A SAT-grid prediction equal to SAT-DS's reference, mapped back to the scan: 100 on satds, below on native
    (1 mm in-plane cannot draw a 0.78 mm reference)."""
    transform = plan_transform(amos.affine, amos.array.shape)
    on_native = from_sat(transform, to_sat(transform, amos.array))
    pred, ref, spacing = to_scoring_grid(on_native, amos.array, amos.affine, amos.array.shape, "satds")
    assert (_table(evaluate_case(pred, ref, spacing, AMOS_CLASSES)) == 1.0).all()
    native = _table(evaluate_case(*to_scoring_grid(on_native, amos.array, amos.affine, amos.array.shape),
                                  AMOS_CLASSES))
    assert (native < 1.0).all()


def test_masks_and_label_maps_agree(amos, dilated):
    masks = {name: dilated == value for name, value in AMOS_CLASSES.items() if name in ("liver", "pancreas")}
    ref = {name: amos.array == value for name, value in AMOS_CLASSES.items() if name in masks}
    pred_masks, ref_masks, _ = to_scoring_grid(masks, ref, amos.affine, amos.array.shape, "satds")
    pred_map, ref_map, _ = to_scoring_grid(dilated, amos.array, amos.affine, amos.array.shape, "satds")
    for name in masks:
        assert pred_masks[name].dtype == bool
        assert np.array_equal(pred_masks[name], pred_map == AMOS_CLASSES[name])
        assert np.array_equal(ref_masks[name], ref_map == AMOS_CLASSES[name])


def test_orientation_and_image_crop_are_satds_preprocessing(shared_dir):
    folder = shared_dir / "data" / "totalsegmentator_example"
    ct, ref, pred = (read_volume(folder / name) for name in ("ct.nii.gz", "seg_total.nii.gz",
                                                                 "seg_total_fast.nii.gz"))
    for orientation in ("RAS", "ASR"):
        case = preprocess(ct, "CT", {"pred": pred.array, "ref": ref.array}, orientation=orientation)
        on_grid = to_scoring_grid(pred.array, ref.array, ct.affine, ct.array.shape, "satds", orientation,
                                  image=ct.array)
        assert np.array_equal(on_grid[0], case.masks["pred"]) and np.array_equal(on_grid[1], case.masks["ref"])
        uncropped = to_scoring_grid(pred.array, ref.array, ct.affine, ct.array.shape, "satds", orientation)
        assert uncropped[0].shape == case.transform.resampled_shape


def test_bad_inputs_are_named(amos):
    with pytest.raises(InputError, match="unknown scoring grid 'sat'"):
        to_scoring_grid(amos.array, amos.array, amos.affine, amos.array.shape, "sat")
    with pytest.raises(InputError, match="prediction mask 'liver' has shape"):
        to_scoring_grid({"liver": amos.array[1:]}, amos.array, amos.affine, amos.array.shape, "satds")
    with pytest.raises(InputError, match="not an axis code"):
        to_scoring_grid(amos.array, amos.array, amos.affine, amos.array.shape, "satds", "XYZ")
