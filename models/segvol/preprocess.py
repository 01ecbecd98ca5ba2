"""SegVol's preprocessing (data_process/demo_data_process.py) as pure functions, and its exact inverse.

Native array (X, Y, Z) in file voxel order -> foreground normalisation -> axis swap to (Z, Y, X) = (D, H, W) ->
min-max to [0, 1] -> symmetric zero pad to at least 32 x 256 x 256 -> crop to the bounding box of voxels > 0
(the zoom-in grid) -> nearest-exact resize to 32 x 256 x 256 (the zoom-out grid). No reorientation and no
resampling: SegVol works in raw voxel order (its Orientationd sees no affine and does nothing). Masks on the
zoom-in grid go back to the native grid exactly (`to_native`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

ROI = (32, 256, 256)


def foreground_normalise(image: np.ndarray) -> np.ndarray:
    """Clip to the 0.05-99.95 percentiles of the voxels above the mean, then standardise with their mean and std."""
    flat = image.ravel()
    foreground = flat[flat > np.mean(flat)]
    upper, lower = np.percentile(foreground, 99.95), np.percentile(foreground, 0.05)
    mean, std = np.mean(foreground), np.std(foreground)
    return (np.clip(image, lower, upper) - mean) / max(std, 1e-8)


def min_max(image: np.ndarray) -> np.ndarray:
    shifted = image - image.min()
    return shifted / np.clip(shifted.max(), 1e-8, None)


def symmetric_pad_widths(shape: tuple[int, ...], size: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """MONAI SpatialPad (symmetric): pad each axis shorter than `size` by half before, the rest after."""
    return tuple(((max(s - n, 0)) // 2, max(s - n, 0) - max(s - n, 0) // 2) for n, s in zip(shape, size))


def foreground_crop(image: np.ndarray) -> tuple[slice, ...]:
    """MONAI CropForeground (margin 0): the bounding box of voxels > 0."""
    spans = []
    for axis in range(image.ndim):
        hits = np.flatnonzero((image > 0).any(axis=tuple(a for a in range(image.ndim) if a != axis)))
        if not hits.size:
            raise ValueError("the image is constant: SegVol's foreground crop finds nothing")
        spans.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(spans)


def resize_nearest_exact(volume: np.ndarray, size: tuple[int, ...] = ROI) -> np.ndarray:
    """MONAI Resize(mode='nearest-exact'): torch's nearest-exact interpolation, float32 out."""
    tensor = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=size, mode="nearest-exact")[0, 0].numpy()


def zoom_out_sources(length: int, size: int) -> np.ndarray:
    """The zoom-in index that each of `size` zoom-out indices samples on an axis of `length` (torch's nearest-exact,
    computed by resizing the index ramp itself, so rounding is torch's)."""
    ramp = np.arange(length, dtype=np.float32).reshape(length, 1, 1)
    return resize_nearest_exact(ramp, (size, 1, 1))[:, 0, 0].astype(np.int64)


@dataclass(frozen=True)
class Geometry:
    """Where the zoom-in grid lies in the native grid: native shape, pad widths and crop on the (D, H, W) grid."""

    native_shape: tuple[int, ...]
    pad: tuple[tuple[int, int], ...]
    crop: tuple[slice, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the zoom-in grid."""
        return tuple(s.stop - s.start for s in self.crop)


@dataclass(frozen=True, eq=False)
class Preprocessed:
    """The zoom-in image (D, H, W), its 32 x 256 x 256 zoom-out copy and the geometry to invert."""

    image: np.ndarray
    zoom_out: np.ndarray
    geometry: Geometry


def to_segvol_grid(volume: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Any native-grid array (e.g. a label) on the zoom-in grid: axis swap, the same pad (zeros) and crop."""
    swapped = np.swapaxes(volume, -1, -3)
    return np.pad(swapped, geometry.pad)[geometry.crop]


def preprocess(image: np.ndarray) -> Preprocessed:
    """SegVol's chain on a native 3-D image (float32 as MONAI's LoadImage gives it)."""
    if image.ndim != 3:
        raise ValueError(f"SegVol takes 3-D images, got shape {image.shape}")
    normalised = min_max(np.swapaxes(foreground_normalise(np.asarray(image, dtype=np.float32)), -1, -3))
    pad = symmetric_pad_widths(normalised.shape, ROI)
    padded = np.pad(normalised, pad)
    crop = foreground_crop(padded)
    cropped = np.ascontiguousarray(padded[crop])
    return Preprocessed(cropped, resize_nearest_exact(cropped), Geometry(tuple(image.shape), pad, crop))


def label_zoom_out(label: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A native-grid binary label on the zoom-out grid (bool), as SegVol resizes its labels to draw prompts."""
    return resize_nearest_exact(to_segvol_grid(label, geometry)) > 0


def to_native(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A zoom-in-grid mask back on the native grid: paste into the padded grid, drop the padding, swap axes."""
    padded_shape = tuple(n + a + b for n, (a, b) in zip(geometry.native_shape[::-1], geometry.pad))
    padded = np.zeros(padded_shape, dtype=mask.dtype)
    padded[geometry.crop] = mask
    unpadded = padded[tuple(slice(a, n - b) for n, (a, b) in zip(padded_shape, geometry.pad))]
    return np.ascontiguousarray(np.swapaxes(unpadded, -1, -3))


def native_to_zoom_out(index: tuple[int, int, int], geometry: Geometry) -> tuple[int, int, int]:
    """The zoom-out voxel whose cell holds the centre of native voxel `index` (x, y, z): how a prompt given on the
    native grid (stored prompt JSON) reaches SegVol's (D, H, W) zoom-out grid."""
    d, h, w = index[::-1]
    out = []
    for i, (before, _), crop, size in zip((d, h, w), geometry.pad, geometry.crop, ROI):
        n = crop.stop - crop.start
        j = int(np.floor((i + before - crop.start + 0.5) * size / n))
        out.append(min(max(j, 0), size - 1))
    return tuple(out)
