"""SAM-Med3D's official preprocessing with TorchIO, and the way back to the native grid.

Official (uni-medical/SAM-Med3D@f3de1fa utils/infer_utils.py:201-272, 275-353): Resample to 1.5 mm
(image linear, label nearest) -> ToCanonical (RAS) -> CropOrPad to 128^3 centred on the target's bounding box
(TorchIO's own centring and rounding) -> ZNormalization with mean/std over voxels > 0. The 128^3 prediction goes
back with a nearest-neighbour TorchIO Resample onto the native image grid.

The chain's steps (`models.crop_chain`: `resample_canonical`, `crop_or_pad`, `onto_grid`) are shared with
`bench.engine.spaces`, which builds the crop space of the SAM-Med3D presets from the same three. Two crop centres:
`crop_around_label` is the official one (the crop knows where the target is: oracle localisation);
`crop_around_point` centres the same TorchIO crop on a click instead (the `harness` preset, where a model sees
nothing but the clicks). An image that already is such a crop (a protocol's crop space made it, `on_model_grid`) is
taken as it is (`as_crop`), z-normalised. Arrays are in native voxel order with a RAS voxel-to-world affine, as
`bench.data.io` reads them and as TorchIO holds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
import torch
import torchio as tio

from models.crop_chain import crop_or_pad, onto_grid, resample_canonical

TARGET_SPACING = (1.5, 1.5, 1.5)
CROP_SIZE = 128


@dataclass(frozen=True, eq=False)
class Crop:
    """The model's 128^3 view of a case and what it takes to map a prediction back.

    image: (1, 1, 128, 128, 128) float32, z-normalised, canonical (RAS) voxel order.
    label: the target cropped the same way (bool 128^3), when the crop was made from a label, else None.
    affine: voxel-to-world (RAS) of the crop; native_shape/native_affine: the native image grid.
    """

    image: torch.Tensor
    label: np.ndarray | None
    affine: np.ndarray
    native_shape: tuple[int, ...]
    native_affine: np.ndarray


def _normalise(data: torch.Tensor) -> torch.Tensor:
    """The official ZNormalization (mean and std over voxels > 0, applied to all), as a (1, 1, ...) float32."""
    return tio.ZNormalization(masking_method=lambda x: x > 0)(data).float()[None]


def _crop(cropped: tio.Subject, native_shape, native_affine, label: np.ndarray | None) -> Crop:
    return Crop(image=_normalise(cropped.image.data), label=label, affine=cropped.image.affine.copy(),
                native_shape=tuple(native_shape), native_affine=np.asarray(native_affine, float))


def on_model_grid(shape: tuple[int, ...], affine: np.ndarray, *,
                  spacing: tuple[float, float, float] = TARGET_SPACING, size: int = CROP_SIZE) -> bool:
    """Whether an image already is a crop on the model's grid: size^3 voxels of `spacing` in canonical (RAS)
    axes, as a protocol's crop space (`bench.engine.spaces.crop_space`) hands it over (an oblique scan keeps its
    direction through Resample and ToCanonical, so the axes need not be the world's). Resample and ToCanonical
    would leave it as it is; cropping it again around a click would only shift it and pad it with zeros."""
    linear = np.asarray(affine, float)[:3, :3]
    return (tuple(shape) == (size,) * 3
            and bool(np.allclose(np.linalg.norm(linear, axis=0), spacing, rtol=0, atol=1e-6))
            and nib.aff2axcodes(affine) == ("R", "A", "S"))


def as_crop(image: np.ndarray, affine: np.ndarray) -> Crop:
    """An image already on the model's grid (`on_model_grid`) as the model's view: of the official chain only
    the ZNormalization is left to do; the crop's grid is the image's, so `to_native` is the identity."""
    if not on_model_grid(image.shape, affine):
        voxel = np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0).round(4)
        raise ValueError(f"image of shape {image.shape} with voxel size {tuple(voxel.tolist())} and axes "
                         f"{''.join(nib.aff2axcodes(affine))} is not a {CROP_SIZE}^3 crop of {TARGET_SPACING[0]} mm "
                         f"voxels in RAS axes")
    data = torch.as_tensor(np.ascontiguousarray(image, dtype=np.float32))[None]
    return Crop(image=_normalise(data), label=None, affine=np.asarray(affine, float).copy(),
                native_shape=tuple(image.shape), native_affine=np.asarray(affine, float).copy())


def crop_around_label(image: np.ndarray, affine: np.ndarray, label: np.ndarray, *,
                      spacing: tuple[float, float, float] = TARGET_SPACING, size: int = CROP_SIZE) -> Crop:
    """The official crop: centred by TorchIO on the bounding box of `label` (a binary target on the image grid)."""
    if label.shape != image.shape:
        raise ValueError(f"label of shape {label.shape} does not match the image's {image.shape}")
    if not np.any(label):
        raise ValueError("the target is empty: the official crop is centred on it")
    canonical = resample_canonical(image, affine, (np.asarray(label) > 0)[None], spacing=spacing)
    cropped = crop_or_pad(canonical, canonical["masks"].data, size)
    return _crop(cropped, image.shape, affine, cropped["masks"].data[0].numpy() > 0)


def crop_around_point(image: np.ndarray, affine: np.ndarray, point: tuple[float, float, float], *,
                      spacing: tuple[float, float, float] = TARGET_SPACING, size: int = CROP_SIZE) -> Crop:
    """The same TorchIO crop centred on one native voxel (the first click), for models that see no label.

    The point goes to world coordinates, then to the nearest voxel of the resampled canonical grid, where a
    one-voxel mask tells CropOrPad where to centre (its rounding rules, as for a label)."""
    canonical = resample_canonical(image, affine, spacing=spacing)
    world = np.asarray(affine, float) @ np.append(np.asarray(point, float), 1.0)
    voxel = np.rint((np.linalg.inv(canonical.image.affine) @ world)[:3]).astype(int)
    grid = canonical.image.spatial_shape
    if np.any(voxel < 0) or np.any(voxel >= grid):
        raise ValueError(f"point {tuple(point)} lies outside the image")
    marker = np.zeros(grid, np.uint8)
    marker[tuple(voxel)] = 1
    return _crop(crop_or_pad(canonical, marker, size), image.shape, affine, None)


def native_to_crop(points: np.ndarray, crop: Crop) -> np.ndarray:
    """Native voxel indices (N, 3) -> crop voxel coordinates (N, 3), float (a point may fall outside the crop)."""
    points = np.asarray(points, float).reshape(-1, 3)
    world = np.c_[points, np.ones(len(points))] @ np.asarray(crop.native_affine, float).T
    return (world @ np.linalg.inv(crop.affine).T)[:, :3]


def to_native(mask: np.ndarray, crop: Crop) -> np.ndarray:
    """A 128^3 crop mask back on the native grid (bool), as the official `data_postprocess` (`onto_grid`);
    voxels outside the crop are background."""
    if mask.shape != crop.image.shape[2:]:
        raise ValueError(f"mask of shape {mask.shape} is not the crop's {tuple(crop.image.shape[2:])}")
    if crop.native_shape == tuple(mask.shape) and np.array_equal(crop.native_affine, crop.affine):
        return np.asarray(mask, bool)  # the crop is the native grid (`as_crop`)
    return onto_grid(mask, crop.affine, crop.native_shape, crop.native_affine)
