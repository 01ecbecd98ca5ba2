"""Working spaces: the crop space against SAM-Med3D's official TorchIO chain, and round trips to the native grid."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.io import Volume
from bench.engine.spaces import crop_space, native_space, resample, satds_space
from protocols.protocol import Space


@pytest.mark.parametrize("seed", range(4))
def test_crop_space_is_the_official_torchio_chain(seed):
    """The crop space is SAM-Med3D's `data_preprocess` (utils/infer_utils.py:246-272) up to its ZNormalization,
    written out here with TorchIO: Resample (image linear in its dtype, labels nearest), ToCanonical,
    CropOrPad(mask_name='label'); every other class, overlapping or not, through the same window. Labels near
    the centre or an edge (padding), even and odd boxes, RAS or LAS scans, int16 or float images."""
    tio = pytest.importorskip("torchio")
    import torch

    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(20, 40, 3))
    masks = {}
    for name in ("organ", "other"):
        mask = np.zeros(shape, bool)
        lo = [int(rng.integers(0, n - 3)) for n in shape]
        hi = [int(rng.integers(a + 1, min(a + 12, n) + 1)) for a, n in zip(lo, shape)]
        mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
        masks[name] = mask
    masks["both"] = masks["organ"] | masks["other"]  # overlapping classes (a region and its parts)
    affine = np.diag([3.0 * (-1) ** seed, 2.0, 2.5, 1.0])  # LAS for odd seeds: ToCanonical flips it
    affine[:3, 3] = rng.normal(size=3) * 20
    image = (rng.normal(size=shape) * 100 + 50).astype(np.int16 if seed < 2 else np.float32)
    space = Space("crop", (1.5, 1.5, 1.5), (32, 32, 32))
    crop = crop_space(resample(Volume(image, (3.0, 2.0, 2.5), affine), "CT", masks, space), "organ", space)

    def label(mask):
        return tio.LabelMap(tensor=torch.as_tensor(mask[None].astype(np.uint8)), affine=affine)

    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.as_tensor(image[None]), affine=affine),
                          label=label(masks["organ"]), other=label(masks["other"]), both=label(masks["both"]))
    subject = tio.ToCanonical()(tio.Resample(target=(1.5, 1.5, 1.5))(subject))
    official = tio.CropOrPad(mask_name="label", target_shape=(32, 32, 32))(subject)
    assert crop.image.array.dtype == np.float32 and crop.image.spacing == (1.5, 1.5, 1.5)
    np.testing.assert_array_equal(crop.image.array, official.image.data[0].numpy())
    np.testing.assert_allclose(crop.image.affine, official.image.affine, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(crop.masks["organ"], official.label.data[0].numpy() > 0)
    for name in ("other", "both"):
        np.testing.assert_array_equal(crop.masks[name], official[name].data[0].numpy() > 0)


def test_crop_space_of_an_oblique_scan_is_taken_by_sam_med3d_as_it_is():
    """TorchIO keeps an oblique scan's direction through Resample and ToCanonical: the crop's axes are not the
    world's, and SAM-Med3D must still recognise it as a crop on its grid (not crop it again around a click)."""
    pytest.importorskip("torchio")
    from models.sam_med3d.preprocess import as_crop, on_model_grid

    angle = np.deg2rad(10.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([3.0, 3.0, 3.0])
    labels = np.zeros((50, 50, 20), bool)
    labels[20:30, 15:35, 5:15] = True
    volume = Volume(np.where(labels, 100, -50).astype(np.int16), (3.0, 3.0, 3.0), affine)
    space = Space("crop", (1.5, 1.5, 1.5), (128, 128, 128))
    crop = crop_space(resample(volume, "CT", {"organ": labels}, space), "organ", space)
    assert not np.allclose(crop.image.affine[:3, :3], np.diag([1.5] * 3))
    assert on_model_grid(crop.image.shape, crop.image.affine)
    assert as_crop(crop.image.array, crop.image.affine).image.shape == (1, 1, 128, 128, 128)
    np.testing.assert_array_equal(crop.to_native(crop.masks["organ"]), labels)  # 3 mm -> 1.5 mm in its own axes


def test_spaces_map_a_mask_back_onto_the_native_grid():
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    labels = np.zeros((40, 40, 20), np.uint8)
    labels[10:30, 12:28, 5:15] = 1
    volume = Volume(100.0 + 50.0 * labels.astype(np.float32), (1.5, 1.5, 3.0), affine)
    masks = {"organ": labels.astype(bool)}
    for space in (native_space(volume, "CT", masks), satds_space(volume, "CT", masks)):
        assert np.array_equal(space.to_native(space.masks["organ"]), masks["organ"])
    crop = crop_space(resample(volume, "CT", masks, Space("crop", (1.5, 1.5, 1.5), (32, 32, 32))), "organ",
                      Space("crop", (1.5, 1.5, 1.5), (32, 32, 32)))
    assert crop.image.shape == (32, 32, 32) and crop.image.spacing == (1.5, 1.5, 1.5)
    assert np.array_equal(crop.to_native(crop.masks["organ"]), masks["organ"])  # 3 mm -> 1.5 mm is exact
