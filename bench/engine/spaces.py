"""Working spaces of a protocol: where a model runs and clicks are made, and the way back to the native grid.

- `native`: the scan as stored.
- `satds`: SAT-DS preprocessing (`bench.engine.preprocess`: RAS, 1 x 1 x 3 mm, foreground crop, normalised image).
- `crop`: SAM-Med3D's official TorchIO chain (`models.crop_chain`, which the SAM-Med3D model crops with too): the scan
  resampled once to the protocol's spacing (`Resample`: image linear in its own dtype, masks nearest) and put in
  canonical (RAS) axes (`ToCanonical`), then per target a box of the protocol's size centred by TorchIO on that
  target's mask (`CropOrPad(mask_name=...)`, zero-padded where it leaves the scan), every class's mask cropped
  by the same box. The image stays un-normalised (the model z-normalises it, as the official script does after
  the crop). Two paper-era options of the space (`Space.canonical`, `Space.clamp`): without `ToCanonical` the
  crop keeps the scan's stored voxel order, and the model gets it with the paper-era loader's affine, an
  identity of the crop's spacing (its own grid, so the model takes it as it is); the way back uses the true
  affine. CT intensities may be clipped after resampling (`tio.Clamp`; CT only, as the loader did for `ct_*`).
`to_native` maps a mask made in the space back onto the native grid (nearest; for `crop` TorchIO's Resample onto
the whole native grid, as the official `data_postprocess`), so any space can be scored against the untouched
reference.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bench.data.io import InputError, Volume
from bench.engine.preprocess import SAT_ORIENTATION, from_sat, preprocess
from models.base import Image
from protocols.protocol import Space

if TYPE_CHECKING:
    import torch
    import torchio


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


@dataclass(frozen=True, eq=False)
class Resampled:
    """A scan resampled once to a crop space's spacing in canonical axes, shared by the crops of all its targets:
    a TorchIO subject with "image" and "masks", the i-th of `names` as value i + 1 of channel `layers[i]` (masks
    that do not overlap share a channel: one label map for a usual label file)."""

    canonical: torchio.Subject
    names: tuple[str, ...]
    layers: tuple[int, ...]
    native_shape: tuple[int, ...]
    native_affine: np.ndarray
    modality: str

    def mask(self, masks: torch.Tensor, index: int) -> np.ndarray:
        """The `index`-th mask of "masks" data (the canonical grid's or a crop's), bool."""
        return (masks[self.layers[index]] == index + 1).numpy()


def _layered(masks: list[np.ndarray]) -> tuple[np.ndarray, tuple[int, ...]]:
    """The masks as label maps (L, ...): mask i is value i + 1 of the first map it does not overlap."""
    dtype = np.uint8 if len(masks) < 256 else np.int32
    maps: list[np.ndarray] = []
    layers = []
    for index, mask in enumerate(masks):
        layer = next((j for j, labels in enumerate(maps) if not labels[mask].any()), len(maps))
        if layer == len(maps):
            maps.append(np.zeros(mask.shape, dtype))
        maps[layer][mask] = index + 1
        layers.append(layer)
    return np.stack(maps), tuple(layers)


def resample(volume: Volume, modality: str, masks: Mapping[str, np.ndarray], space: Space) -> Resampled:
    names = tuple(masks)
    labels, layers = _layered([np.asarray(masks[name], bool) for name in names]) if names else (None, ())
    from models.crop_chain import resample_canonical  # torch and TorchIO: imported when a crop space is used

    ct = model_modality(modality) == "CT"
    canonical = resample_canonical(np.asarray(volume.array), volume.affine, labels, spacing=tuple(space.spacing),
                                   canonical=space.canonical, clamp=space.clamp if ct else None)
    return Resampled(canonical, names, layers, tuple(volume.array.shape), np.asarray(volume.affine, float),
                     model_modality(modality))


def crop_space(resampled: Resampled, target: str, space: Space) -> SpaceCase:
    """The crop of one target: a `space.size` box centred by TorchIO on that target's resampled mask."""
    from models.crop_chain import crop_or_pad, onto_grid

    index = resampled.names.index(target)
    with warnings.catch_warnings():  # a target that resampling empties: TorchIO warns and centres; runs skip it
        warnings.filterwarnings("ignore", message="All values found in the mask", category=RuntimeWarning)
        cropped = crop_or_pad(resampled.canonical, resampled.mask(resampled.canonical["masks"].data, index),
                              tuple(space.size))
    affine = np.asarray(cropped.image.affine, float).copy()
    given = affine if space.canonical else np.diag([*space.spacing, 1.0])  # the paper-era identity affine
    image = Image(array=cropped.image.data[0].numpy().astype(np.float32), spacing=tuple(space.spacing),
                  affine=given, modality=resampled.modality)
    masks = {name: resampled.mask(cropped["masks"].data, i) for i, name in enumerate(resampled.names)}

    def to_native(mask: np.ndarray) -> np.ndarray:
        return onto_grid(mask, affine, resampled.native_shape, resampled.native_affine)

    return SpaceCase(image, masks, to_native)
