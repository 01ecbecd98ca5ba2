"""Working spaces: the crop window against TorchIO's CropOrPad(mask_name=...), and round trips to the native grid."""

from __future__ import annotations

import numpy as np
import pytest

from bench.io import Volume
from bench.spaces import _crop_window, _put, _take, crop_space, native_space, resample, satds_space
from protocols.protocol import Space


@pytest.mark.parametrize("seed", range(6))
def test_crop_window_is_torchio_crop_or_pad_around_the_label(seed):
    """SAM-Med3D crops with `tio.CropOrPad(mask_name='label', target_shape=...)`: the same voxels, padding included,
    for labels near the centre or an edge, with even and odd bounding boxes (models_spec.md line 427)."""
    tio = pytest.importorskip("torchio")
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(20, 60, 3))
    mask = np.zeros(shape, bool)
    lo = [int(rng.integers(0, n - 3)) for n in shape]
    hi = [int(rng.integers(a + 1, min(a + 25, n) + 1)) for a, n in zip(lo, shape)]
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    image = rng.normal(size=shape).astype(np.float32) + 5.0
    size = (32, 32, 32)
    subject = tio.Subject(image=tio.ScalarImage(tensor=image[None]),
                          label=tio.LabelMap(tensor=mask[None].astype(np.uint8)))
    cropped = tio.CropOrPad(size, mask_name="label")(subject)
    start = _crop_window(mask, size)
    assert np.array_equal(cropped["image"].data[0].numpy(), _take(image, start, size))
    assert np.array_equal(cropped["label"].data[0].numpy().astype(bool), _take(mask, start, size))


def test_take_and_put_invert_each_other_inside_the_scan():
    array = np.arange(10 * 8 * 6).reshape(10, 8, 6)
    window = _take(array, (-3, 2, 4), (8, 8, 8))
    back = _put(window, (-3, 2, 4), array.shape)
    inside = (slice(0, 5), slice(2, 8), slice(4, 6))
    assert np.array_equal(back[inside], array[inside]) and back.sum() == array[inside].sum()


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
