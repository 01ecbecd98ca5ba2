"""SAT-DS preprocessing and its inverse, on the real TotalSegmentator CT and MR and the AMOS label map (LAS, 5 mm).

Oracle for the forward path: MONAI's own pipeline composed as SAT-DS's loaders compose it (`LoadImaged`,
`EnsureChannelFirstd`, `Orientationd`, `Spacingd(pixdim=(1, 1, 3), mode=("bilinear", "nearest"))`,
`CropForegroundd(source_key="image")`) followed by SAT-DS's `Normalization` (numpy clip + z-score).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import (Compose, CropForegroundd, EnsureChannelFirstd, LoadImaged, Orientation, Orientationd,
                              Spacing, Spacingd)
from nibabel.orientations import aff2axcodes

from bench.data.io import InputError, Volume, read_label_map, read_volume
from bench.engine.preprocess import (SatTransform, foreground_crop, from_sat, normalise, plan_transform, preprocess,
                              to_sat)

ORIENTATIONS = ["RAS", "ASR", "IPL", "LPS", "none"]  # every code SAT-DS's loaders use


def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(affine[:3, :3], axis=0)


def _satds_pipeline(image: str, label: str, orientation: str) -> dict:
    """SAT-DS's loader transforms, as its loader.py composes them (no Orientationd for `none`, as MyoPS2020)."""
    keys = ["image", "label"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MONAI's notes on changed defaults SAT-DS relies on
        steps = [LoadImaged(keys=keys), EnsureChannelFirstd(keys=keys)]
        if orientation != "none":
            steps.append(Orientationd(axcodes=orientation, keys=keys))
        steps += [Spacingd(keys=keys, pixdim=(1, 1, 3), mode=("bilinear", "nearest")),
                  CropForegroundd(keys=keys, source_key="image")]
        return Compose(steps)({"image": image, "label": label})


def _satds_normalization(image: np.ndarray, modality: str) -> np.ndarray:
    """SAT-DS loader.py `Normalization`, restated."""
    low, high = (-500, 1000) if modality.lower() == "ct" else (np.percentile(image, 0.5), np.percentile(image, 99.5))
    image = np.clip(image, low, high)
    return (image - np.mean(image)) / np.std(image)


@pytest.fixture(scope="module")
def totalseg(shared_dir):
    folder = shared_dir / "data" / "totalsegmentator_example"
    return read_volume(folder / "ct.nii.gz"), read_label_map(folder / "seg_total.nii.gz")


@pytest.fixture(scope="module")
def mr_with_label(shared_dir, tmp_path_factory):
    """The real MR (LPS) and a label map on its grid: intensity bands, so labels reach the scan's borders."""
    path = shared_dir / "data" / "totalsegmentator_example" / "mr.nii.gz"
    mr = read_volume(path)
    label = np.digitize(mr.array, np.percentile(mr.array, [40, 70, 90])).astype(np.uint8)
    label_path = tmp_path_factory.mktemp("mr") / "mr_label.nii.gz"
    nib.save(nib.Nifti1Image(label, mr.affine), str(label_path))
    return path, mr, label_path, label


@pytest.fixture(scope="module")
def amos(shared_dir):
    label = read_label_map(shared_dir / "data" / "amos" / "amos_0013_label.nii.gz")
    transform = plan_transform(label.affine, label.array.shape)
    transform = replace(transform, crop=foreground_crop(to_sat(transform, label.array)))
    return label, transform, to_sat(transform, label.array)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_ct_forward_is_satds_monai_pipeline(totalseg, shared_dir, orientation):
    folder = shared_dir / "data" / "totalsegmentator_example"
    ct, seg = totalseg
    case = preprocess(ct, "CT", {"seg": seg.array}, orientation=orientation)
    expected = _satds_pipeline(str(folder / "ct.nii.gz"), str(folder / "seg_total.nii.gz"), orientation)
    image = expected["image"][0].numpy()
    assert case.image.shape == image.shape == case.transform.sat_shape
    assert np.array_equal(case.image, _satds_normalization(image, "CT"))
    assert np.array_equal(case.masks["seg"], expected["label"][0].numpy())
    assert np.allclose(case.transform.sat_affine, expected["image"].affine.numpy(), atol=1e-6)
    if orientation != "none":
        assert "".join(aff2axcodes(case.transform.sat_affine)) == orientation


@pytest.mark.parametrize("orientation", ["RAS", "ASR", "none"])
def test_mr_forward_is_satds_monai_pipeline(mr_with_label, orientation):
    path, mr, label_path, label = mr_with_label
    assert aff2axcodes(mr.affine) == ("L", "P", "S")
    case = preprocess(mr, "MRI T2", {"label": label}, orientation=orientation)
    expected = _satds_pipeline(str(path), str(label_path), orientation)
    image = expected["image"][0].numpy()
    assert np.array_equal(case.image, _satds_normalization(image, "MRI"))
    assert np.array_equal(case.masks["label"], expected["label"][0].numpy())
    assert np.array_equal(from_sat(case.transform, case.masks["label"]), label)  # 3 mm -> 1 mm: exact back


def test_amos_grid_follows_monai(amos, shared_dir):
    """82 slices at 5 mm: MONAI's `round((n - 1) * s / t) + 1` gives 136 slices (`round(n * s / t)` gave 137),
    and nearest resampling by recorded indices equals MONAI's `Spacingd` voxel for voxel."""
    label, transform, _ = amos
    assert transform.resampled_shape == (400, 400, 136)
    keys = ["label"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        expected = Compose([LoadImaged(keys=keys), EnsureChannelFirstd(keys=keys),
                            Orientationd(axcodes="RAS", keys=keys),
                            Spacingd(keys=keys, pixdim=(1, 1, 3), mode="nearest")])(
            {"label": str(shared_dir / "data" / "amos" / "amos_0013_label.nii.gz")})["label"]
    whole = replace(transform, crop=tuple((0, n) for n in transform.resampled_shape))
    assert np.array_equal(to_sat(whole, label.array), expected[0].numpy())


@pytest.mark.parametrize(("affine", "shape"), [
    (np.diag([2.0, 0.5, 1.5, 1.0]), (40, 36, 20)),  # ties: 2 mm -> 1 mm puts every other sample half-way
    (np.diag([-0.6640625, 0.9, 6.0, 1.0]), (37, 29, 9)),
    (np.array([[0.0, 0.0, -2.5, 30.0], [0.8, 0.0, 0.0, -4.0], [0.0, -1.2, 0.0, 7.5], [0, 0, 0, 1]]), (31, 23, 11)),
    (np.array([[0.686, -0.258, 0.0, -10.3], [0.139, 1.274, 0.0, 22.1], [0.0, 0.0, 2.2, 5.5], [0, 0, 0, 1]]),
     (41, 37, 13)),  # oblique (0.2 rad about S)
])
def test_nearest_resampling_equals_monai_spacing(affine, shape):
    labels = np.random.default_rng(0).integers(0, 5, shape).astype(np.uint8)
    transform = plan_transform(affine, shape)
    oriented = MetaTensor(torch.from_numpy(labels.astype(np.float32))[None], affine=torch.as_tensor(affine))
    oriented = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(oriented)
    expected = Spacing(pixdim=(1, 1, 3), mode="nearest")(oriented)[0].numpy()
    assert np.array_equal(to_sat(transform, labels), expected)


def test_forward_output_is_ras_at_1x1x3(totalseg, amos):
    ct, seg = totalseg
    case = preprocess(ct, "CT", {"seg": seg.array})
    for transform in (case.transform, amos[1]):
        assert aff2axcodes(transform.sat_affine) == ("R", "A", "S")
        assert np.allclose(_spacing(transform.sat_affine), (1.0, 1.0, 3.0))
    assert case.image.shape == case.masks["seg"].shape == case.transform.sat_shape
    assert aff2axcodes(amos[0].affine) == ("L", "A", "S")
    assert amos[2].shape == amos[1].sat_shape


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_totalsegmentator_round_trip_is_exact(totalseg, orientation):
    ct, seg = totalseg
    case = preprocess(ct, "CT", {"seg": seg.array}, orientation=orientation)
    back = from_sat(case.transform, case.masks["seg"])
    assert back.shape == seg.array.shape
    assert np.array_equal(back, seg.array)  # 3 mm -> 1 x 1 x 3 mm only upsamples, so nothing is lost


def test_amos_round_trip(amos):
    """LAS, 0.78 x 0.78 x 5 mm: exact on every native voxel SAT's grid samples, and SAT -> native -> SAT exact."""
    label, transform, sat = amos
    back = from_sat(transform, sat)
    assert back.shape == label.array.shape
    assert np.array_equal(to_sat(transform, back), sat)
    sampled = _sampled_voxels(transform)
    assert np.array_equal(back[sampled], label.array[sampled])
    foreground = label.array > 0
    assert (back[foreground] == label.array[foreground]).mean() > 0.98  # 1 mm in-plane is coarser than 0.78 mm
    assert set(np.unique(back)) == set(np.unique(label.array))


def _sampled_voxels(transform: SatTransform) -> tuple[np.ndarray, ...]:
    """Native indices (as an open mesh) that MONAI's resampling picked for a SAT voxel inside the crop."""
    axes = [np.unique(picked[start:stop]) for picked, (start, stop) in zip(transform.samples, transform.crop)]
    ras_mask = np.zeros(transform.ras_shape, bool)
    ras_mask[np.ix_(*axes)] = True
    back = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"),
                                           nib.orientations.io_orientation(transform.native_affine))
    return np.nonzero(nib.orientations.apply_orientation(ras_mask, back))


def test_transform_is_recorded_and_reapplied(totalseg, tmp_path):
    ct, seg = totalseg
    case = preprocess(ct, "CT", {"seg": seg.array}, orientation="ASR")
    saved = tmp_path / "transform.json"
    saved.write_text(json.dumps(case.transform.to_json()))
    restored = SatTransform.from_json(json.loads(saved.read_text()))
    assert restored.orientation == "ASR" and restored.samples == case.transform.samples
    assert np.array_equal(to_sat(restored, seg.array), case.masks["seg"])
    assert np.array_equal(from_sat(restored, case.masks["seg"]), seg.array)
    with pytest.raises(InputError, match="not in this transform's SAT space"):
        from_sat(restored, case.masks["seg"][1:])


@pytest.mark.parametrize("orientation", ["RLS", "XYZ", "RA", "rasx"])
def test_bad_orientation_is_refused(orientation):
    with pytest.raises(InputError, match="not an axis code"):
        plan_transform(np.eye(4), (4, 4, 4), orientation=orientation)


def test_crop_keeps_the_positive_region():
    assert foreground_crop(np.zeros((3, 4))) == ((0, 3), (0, 4))
    image = np.full((5, 6, 7), -1000.0)
    image[1:3, 2:5, 3] = 40
    assert foreground_crop(image) == ((1, 3), (2, 5), (3, 4))
    volume = Volume(image, (3.0, 3.0, 3.0), np.diag([3.0, 3.0, 3.0, 1.0]))
    case = preprocess(volume, "CT")
    assert case.transform.sat_shape == (4, 7, 1)  # linear interpolation: positive only near the 40s


def test_normalisation():
    rng = np.random.default_rng(0)
    ct = normalise(np.array([-2000.0, -500.0, 1000.0, 3000.0]), "CT")
    assert np.allclose(ct, [-1, -1, 1, 1])  # clipped to [-500, 1000], then z-scored
    mri = rng.normal(100, 10, 10_000)
    mri[:5] = 1e6
    out = normalise(mri, "MRI T2")
    assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-3 and out.max() < 4
    assert np.isclose(normalise(mri, "PET").max(), out.max())
    assert np.allclose(normalise(np.full(4, 7.0), "MRI"), 0)
    with pytest.raises(ValueError, match="unknown modality"):
        normalise(mri, "US")
