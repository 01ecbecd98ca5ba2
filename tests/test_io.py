"""Reading volumes in every supported format into one convention, and the errors bad files give."""

import gzip

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from bench.data.io import InputError, check_same_geometry, read_binary_mask, read_label_map, read_volume, write_volume


def _affine(spacing=(0.8, 0.9, 2.5), origin=(-10.0, 20.0, 5.0)):
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return affine


def test_nifti_round_trip_keeps_geometry(tmp_path):
    labels = np.random.default_rng(0).integers(0, 4, (6, 5, 4)).astype(np.uint8)
    path = write_volume(tmp_path / "case.nii.gz", labels, _affine())
    volume = read_label_map(path)
    np.testing.assert_array_equal(volume.array, labels)
    assert volume.spacing == pytest.approx((0.8, 0.9, 2.5))
    np.testing.assert_allclose(volume.affine, _affine())


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_itk_formats_match_nifti_convention(tmp_path, suffix):
    labels = np.random.default_rng(1).integers(0, 3, (6, 5, 4)).astype(np.uint8)
    nifti = read_label_map(write_volume(tmp_path / "case.nii.gz", labels, _affine()))
    image = sitk.ReadImage(str(tmp_path / "case.nii.gz"))  # ITK's own NIfTI reader: LPS geometry
    sitk.WriteImage(image, str(tmp_path / f"case{suffix}"))
    other = read_label_map(tmp_path / f"case{suffix}")
    np.testing.assert_array_equal(other.array, nifti.array)
    assert other.spacing == pytest.approx(nifti.spacing)
    np.testing.assert_allclose(other.affine, nifti.affine, atol=1e-5)
    check_same_geometry(nifti, other)


def test_geometry_mismatch_names_both_files(tmp_path):
    labels = np.zeros((6, 5, 4), np.uint8)
    first = read_label_map(write_volume(tmp_path / "pred.nii.gz", labels, _affine()))
    second = read_label_map(write_volume(tmp_path / "ref.nii.gz", labels, _affine(spacing=(0.8, 0.9, 3.0))))
    with pytest.raises(InputError) as error:
        check_same_geometry(first, second)
    message = str(error.value)
    assert "pred.nii.gz" in message and "ref.nii.gz" in message and "\n" not in message
    assert "voxel size 0.8 x 0.9 x 2.5 mm vs 0.8 x 0.9 x 3 mm" in message
    shifted = read_label_map(write_volume(tmp_path / "moved.nii.gz", labels, _affine(origin=(-10.0, 20.0, 6.0))))
    with pytest.raises(InputError, match="geometry mismatch"):
        check_same_geometry(first, shifted)
    within = read_label_map(write_volume(tmp_path / "near.nii.gz", labels, _affine(origin=(-10.0, 20.0, 5.00005))))
    check_same_geometry(first, within)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    path = write_volume(tmp_path / "case.nii.gz", np.ones((20, 20, 20), np.uint8), _affine())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"case\.nii\.gz: cannot read volume"):
        read_label_map(path).array.sum()
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"not a nifti header"))
    with pytest.raises(InputError, match="junk.nii.gz"):
        read_volume(tmp_path / "junk.nii.gz")


@pytest.mark.parametrize(
    "values, message",
    [
        (np.array([0.0, 1.5]), "non-integer values"),
        (np.array([0.0, np.nan]), "NaN"),
        (np.array([0, -2], np.int16), "negative values"),
    ],
)
def test_bad_label_values(tmp_path, values, message):
    array = np.zeros((4, 4, 4), values.dtype)
    array.flat[: len(values)] = values
    nib.save(nib.Nifti1Image(array, _affine()), str(tmp_path / "bad.nii.gz"))
    with pytest.raises(InputError, match=f"bad.nii.gz: .*{message}"):
        read_label_map(tmp_path / "bad.nii.gz")


def test_whole_number_floats_are_labels_and_masks_must_be_binary(tmp_path):
    array = np.zeros((4, 4, 4), np.float32)
    array[1, 1, 1] = 2.0
    nib.save(nib.Nifti1Image(array, _affine()), str(tmp_path / "float.nii.gz"))
    volume = read_label_map(tmp_path / "float.nii.gz")
    assert volume.array.dtype == np.uint8 and volume.array.max() == 2
    with pytest.raises(InputError, match="only 0 and 1"):
        read_binary_mask(tmp_path / "float.nii.gz")


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_volume(tmp_path / "absent.nii.gz")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not a supported volume"):
        read_volume(tmp_path / "notes.txt")


@pytest.mark.parametrize("dtype, slope, inter", [(np.uint8, None, None), (np.int16, 2.0, 1.0), (np.float32, None, None),
                                                 (np.uint16, 1.0, 0.0)])
def test_fast_gzip_reader_equals_nibabel(tmp_path, dtype, slope, inter):
    import nibabel as nib

    rng = np.random.default_rng(0)
    image = nib.Nifti1Image(rng.integers(0, 9, (7, 6, 5)).astype(dtype), _affine())
    if slope is not None:
        image.header.set_slope_inter(slope, inter)
    path = tmp_path / "v.nii.gz"
    nib.save(image, str(path))
    expected = nib.load(str(path))
    volume = read_volume(path)
    np.testing.assert_array_equal(volume.array, np.asanyarray(expected.dataobj))
    assert volume.array.dtype == np.asanyarray(expected.dataobj).dtype
    np.testing.assert_array_equal(volume.affine, expected.affine)
