"""SAT-DS preprocessing and its inverse, on the real TotalSegmentator CT and the AMOS label map (LAS, 5 mm)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from nibabel.orientations import aff2axcodes, apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from bench.io import InputError, Volume, read_label_map, read_volume
from bench.preprocess import (SatTransform, foreground_crop, from_sat, normalise, plan_transform, preprocess,
                              to_sat)


def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(affine[:3, :3], axis=0)


@pytest.fixture(scope="module")
def totalseg(shared_dir):
    folder = shared_dir / "data" / "totalsegmentator_example"
    return read_volume(folder / "ct.nii.gz"), read_label_map(folder / "seg_total.nii.gz")


@pytest.fixture(scope="module")
def amos(shared_dir):
    label = read_label_map(shared_dir / "data" / "amos" / "amos_0013_label.nii.gz")
    transform = plan_transform(label.affine, label.array.shape)
    transform = replace(transform, crop=foreground_crop(to_sat(transform, label.array)))
    return label, transform, to_sat(transform, label.array)


def test_forward_output_is_ras_at_1x1x3(totalseg, amos):
    ct, seg = totalseg
    case = preprocess(ct, "CT", {"seg": seg.array})
    for transform in (case.transform, amos[1]):
        assert aff2axcodes(transform.sat_affine) == ("R", "A", "S")
        assert np.allclose(_spacing(transform.sat_affine), (1.0, 1.0, 3.0))
    assert case.image.shape == case.masks["seg"].shape == case.transform.sat_shape
    assert aff2axcodes(amos[0].affine) == ("L", "A", "S")
    assert amos[2].shape == amos[1].sat_shape


def test_totalsegmentator_round_trip_is_exact(totalseg):
    ct, seg = totalseg
    case = preprocess(ct, "CT", {"seg": seg.array})
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
    """Native indices (as an open mesh) whose round trip through SAT's grid lands on themselves, inside the crop."""
    axes = []
    for n, scale, (start, stop) in zip(transform.ras_shape, transform.scale, transform.crop):
        ras = np.arange(n)
        sat = np.round(ras / scale)
        keep = (np.round(sat * scale) == ras) & (sat >= start) & (sat < stop)
        axes.append(ras[keep])
    ras_mask = np.zeros(transform.ras_shape, bool)
    ras_mask[np.ix_(*axes)] = True
    back = ornt_transform(axcodes2ornt("RAS"), io_orientation(transform.native_affine))
    return np.nonzero(apply_orientation(ras_mask, back))


def test_transform_is_recorded_and_reapplied(totalseg, tmp_path):
    ct, seg = totalseg
    case = preprocess(ct, "CT", {"seg": seg.array})
    saved = tmp_path / "transform.json"
    saved.write_text(json.dumps(case.transform.to_json()))
    restored = SatTransform.from_json(json.loads(saved.read_text()))
    assert np.array_equal(to_sat(restored, seg.array), case.masks["seg"])
    assert np.array_equal(from_sat(restored, case.masks["seg"]), seg.array)
    with pytest.raises(InputError, match="not in this transform's SAT space"):
        from_sat(restored, case.masks["seg"][1:])


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
