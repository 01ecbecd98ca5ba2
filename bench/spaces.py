"""Working spaces of a protocol: where a model runs and clicks are made, and the way back to the native grid.

- `native`: the scan as stored.
- `satds`: SAT-DS preprocessing (`bench.preprocess`: RAS, 1 x 1 x 3 mm, foreground crop, normalised image).
- `crop`: resampled to the protocol's spacing in RAS orientation (image linear, masks nearest), then a box of
  the protocol's size centred on one target's bounding box, zero-padded where it leaves the scan (SAM-Med3D's
  `Resample` + `ToCanonical` + `CropOrPad(mask_name=label)`; the window starts at floor of the mean of the
  box's first and one-past-last voxel minus half the size: TorchIO's rule for even sizes, checked voxel for voxel
  in the tests; the resampling itself is SAT-DS's, not TorchIO's SimpleITK one).
`to_native` maps a mask made in the space back onto the native grid (nearest), so any space can be scored
against the untouched reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from bench.io import InputError, Volume
from bench.preprocess import SAT_ORIENTATION, SatTransform, from_sat, plan_transform, preprocess, to_sat
from models.base import Image
from protocols.boxes import bounding_box
from protocols.protocol import Space


@dataclass(frozen=True, eq=False)
class SpaceCase:
    """An image and its masks in a working space, with the way back to the native grid."""

    image: Image
    masks: dict[str, np.ndarray]
    to_native: Callable[[np.ndarray], np.ndarray]


def model_modality(modality: str) -> str:
    """A catalog or dataset.json modality ("CT", "MR", "mri_t2", "PET") as an `Image` modality."""
    upper = str(modality).upper()
    if upper.startswith("MR"):
        return "MRI"
    if upper not in ("CT", "PET", "US"):
        raise InputError(f"modality {modality!r} is none of CT, MRI, PET, US")
    return upper


def native_space(volume: Volume, modality: str, masks: Mapping[str, np.ndarray]) -> SpaceCase:
    """The scan as stored, as float32; a 2D 8-bit slice (an SA-Med2D PNG) stays uint8, so a 2D model reads its
    grey values as its own scripts read the PNG (not min-max stretched)."""
    planar = volume.array.ndim == 2 and volume.array.dtype == np.uint8
    image = Image(array=volume.array if planar else np.asarray(volume.array, np.float32),
                  spacing=tuple(volume.spacing), affine=volume.affine, modality=model_modality(modality))
    return SpaceCase(image, dict(masks), lambda mask: mask)


def satds_space(volume: Volume, modality: str, masks: Mapping[str, np.ndarray],
                orientation: str = SAT_ORIENTATION) -> SpaceCase:
    """SAT-DS preprocessing (the dataset's `orientation`, RAS unless the catalog says otherwise)."""
    sat = preprocess(volume, modality, {name: mask.astype(np.uint8) for name, mask in masks.items()},
                     orientation=orientation)
    transform = sat.transform
    image = Image(array=sat.image, spacing=transform.target_spacing, affine=transform.sat_affine,
                  modality=model_modality(modality))
    return SpaceCase(image, {name: mask.astype(bool) for name, mask in sat.masks.items()},
                     lambda mask: from_sat(transform, mask.astype(np.uint8)).astype(bool))


def _crop_window(mask: np.ndarray, size: tuple[int, ...]) -> tuple[int, ...]:
    """Start index per axis of a `size` box centred on the mask's bounding box (may be negative or overhang)."""
    box = bounding_box(mask)
    if box is None:
        return tuple((n - s) // 2 for n, s in zip(mask.shape, size))
    return tuple(int(np.floor((b.start + b.stop) / 2.0 - s / 2.0)) for b, s in zip(box, size))


def _take(array: np.ndarray, start: tuple[int, ...], size: tuple[int, ...]) -> np.ndarray:
    """The `size` box at `start` of `array`, zero where it leaves the array."""
    out = np.zeros(size, array.dtype)
    source = tuple(slice(max(a, 0), min(a + s, n)) for a, s, n in zip(start, size, array.shape))
    target = tuple(slice(src.start - a, src.stop - a) for src, a in zip(source, start))
    out[target] = array[source]
    return out


def _put(window: np.ndarray, start: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of `_take`: a `shape` array, zero outside the window."""
    out = np.zeros(shape, window.dtype)
    target = tuple(slice(max(a, 0), min(a + s, n)) for a, s, n in zip(start, window.shape, shape))
    source = tuple(slice(t.start - a, t.stop - a) for t, a in zip(target, start))
    out[target] = window[source]
    return out


@dataclass(frozen=True, eq=False)
class Resampled:
    """A scan resampled once to a crop space's spacing (RAS), shared by the crops of all its targets."""

    transform: SatTransform
    image: np.ndarray
    masks: dict[str, np.ndarray]
    modality: str


def resample(volume: Volume, modality: str, masks: Mapping[str, np.ndarray], space: Space) -> Resampled:
    transform = plan_transform(volume.affine, volume.array.shape, space.spacing)
    image = to_sat(transform, np.asarray(volume.array, np.float32), order=1)
    resampled = {name: to_sat(transform, mask.astype(np.uint8)).astype(bool) for name, mask in masks.items()}
    return Resampled(transform, image, resampled, model_modality(modality))


def crop_space(resampled: Resampled, target: str, space: Space) -> SpaceCase:
    """The crop of one target: a `space.size` box centred on that target's resampled mask."""
    size = tuple(space.size)
    start = _crop_window(resampled.masks[target], size)
    transform = resampled.transform
    shift = np.eye(4)
    shift[:3, 3] = start
    affine = transform.sat_affine @ shift
    image = Image(array=_take(resampled.image, start, size), spacing=tuple(space.spacing), affine=affine,
                  modality=resampled.modality)
    masks = {name: _take(mask, start, size) for name, mask in resampled.masks.items()}

    def to_native(mask: np.ndarray) -> np.ndarray:
        full = _put(mask.astype(np.uint8), start, transform.resampled_shape)
        return from_sat(transform, full).astype(bool)

    return SpaceCase(image, masks, to_native)
