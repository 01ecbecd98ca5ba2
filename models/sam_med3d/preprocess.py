"""SAM-Med3D's official preprocessing with TorchIO, and the way back to the native grid.

Official (uni-medical/SAM-Med3D@f3de1fa utils/infer_utils.py:201-272, 275-353): Resample to 1.5 mm
(image linear, label nearest) -> ToCanonical (RAS) -> CropOrPad to 128^3 centred on the target's bounding box
(TorchIO's own centring and rounding) -> ZNormalization with mean/std over voxels > 0. The 128^3 prediction goes
back with a nearest-neighbour TorchIO Resample onto the native image grid.

The chain's steps are `resample_canonical` (Resample + ToCanonical, the image with any number of masks),
`crop_or_pad` (CropOrPad centred on a mask) and `onto_grid` (the way back); `bench.engine.spaces` builds the crop space
of the SAM-Med3D presets from the same three. Two crop centres: `crop_around_label` is the official one (the
crop knows where the target is: oracle localisation); `crop_around_point` centres the same TorchIO crop on a
click instead (the `harness` preset, where a model sees nothing but the clicks). An image that already is such
a crop (a protocol's crop space made it, `on_model_grid`) is taken as it is (`as_crop`), z-normalised. Arrays
are in native voxel order with a RAS voxel-to-world affine, as `bench.data.io` reads them and as TorchIO holds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
import torch
import torchio as tio

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


def _tensor(data: np.ndarray, dtype=None) -> torch.Tensor:
    """(C, X, Y, Z) data in Fortran order, as TorchIO's reader holds a NIfTI: SimpleITK then takes the (Z, Y, X, C)
    buffer it wants without a strided gather (10x faster on a 512 x 512 x 82 scan; the values are the same)."""
    return torch.as_tensor(np.array(data, dtype=dtype, order="F"))  # a copy: the caller's array may be read-only


def _scalar(array: np.ndarray, affine: np.ndarray) -> tio.ScalarImage:
    """A TorchIO image keeping the array's dtype (an int16 CT is resampled as int16, as when TorchIO reads it)."""
    data = np.asarray(array)
    if data.ndim != 3:
        raise ValueError(f"SAM-Med3D takes 3D images, got an array of shape {data.shape}")
    if data.dtype == np.uint16 or data.dtype == np.uint32:  # torch lacks them; TorchIO's reader widens the same way
        data = data.astype(np.int32 if data.dtype == np.uint16 else np.int64)
    return tio.ScalarImage(tensor=_tensor(data[None]), affine=np.asarray(affine, float))


def _labels(labels: np.ndarray, affine: np.ndarray) -> tio.LabelMap:
    """Integer or binary labels (C, ...) as a C-channel TorchIO label map (binary as uint8)."""
    labels = np.asarray(labels)
    return tio.LabelMap(tensor=_tensor(labels, np.uint8 if labels.dtype == bool else None),
                        affine=np.asarray(affine, float))


def resample_canonical(image: np.ndarray, affine: np.ndarray, labels: np.ndarray | None = None, *,
                       spacing: tuple[float, float, float] = TARGET_SPACING, canonical: bool = True,
                       clamp: tuple[float, float] | None = None) -> tio.Subject:
    """Official steps 1-2: TorchIO `Resample(spacing)` (the image linear in its own dtype, the labels nearest),
    then `ToCanonical`. `labels` (C, *image.shape), binary or integer, become the C-channel label map "masks":
    nearest resampling copies a source voxel's value, the same voxel for every channel and every value, so a
    binary mask read back from any channel or value is what resampling that mask alone gives (as the official
    script, which binarises the label before resampling).

    The paper-era loader (SAM-Med3D@b5927c7 utils/data_loader.py:56-62) differs in two ways, both options here:
    it built its TorchIO images without an affine (identity), so its `ToCanonical` changed nothing and the
    stored voxel order stayed (`canonical=False`), and it clipped CT to [-1000, 1000] (`clamp`), after the
    offline resampling to 1.5 mm (utils/prepare_data_from_nnUNet.py:32)."""
    subject = tio.Subject(image=_scalar(image, affine))
    if labels is not None:
        if labels.shape[1:] != image.shape:
            raise ValueError(f"labels of shape {labels.shape[1:]} do not match the image's {image.shape}")
        subject.add_image(_labels(labels, affine), "masks")
    resampled = tio.Resample(target=spacing)(subject)
    if clamp is not None:
        resampled = tio.Clamp(*clamp, include=["image"])(resampled)
    return tio.ToCanonical()(resampled) if canonical else resampled


def crop_or_pad(canonical: tio.Subject, centre: torch.Tensor | np.ndarray,
                size: int | tuple[int, ...]) -> tio.Subject:
    """Official step 3: `CropOrPad(size, mask_name=...)`, centred by TorchIO on the bounding box of `centre`
    (one binary mask on the canonical grid, (1, ...) or spatial); every image of `canonical` is cropped by the
    same window and zero-padded where it leaves the scan. `canonical` is left as it is."""
    marker = torch.as_tensor(np.asarray(centre, np.uint8)).reshape(1, *canonical.spatial_shape)
    subject = tio.Subject({**canonical, "centre": tio.LabelMap(tensor=marker, affine=canonical.image.affine)})
    shape = (size,) * 3 if isinstance(size, int) else tuple(size)
    return tio.CropOrPad(target_shape=shape, mask_name="centre")(subject)


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


def onto_grid(mask: np.ndarray, affine: np.ndarray, shape: tuple[int, ...], grid_affine: np.ndarray) -> np.ndarray:
    """A mask (voxel-to-world `affine`) on the grid (`shape`, `grid_affine`), bool, by TorchIO's nearest-neighbour
    Resample onto the whole grid, as the official `data_postprocess`; voxels outside the mask's box are background.

    The whole grid, not just the part the mask covers: native voxel centres often fall exactly halfway between
    crop voxels (3 mm onto 1.5 mm), and a sub-grid's origin, rounded differently in the last bits, breaks those
    ties differently (about 200 of 100,000 voxels on the real CT)."""
    reference = tio.ScalarImage(tensor=torch.zeros((1, *shape)), affine=np.asarray(grid_affine, float))
    return tio.Resample(target=reference)(_labels(np.asarray(mask)[None], affine)).data[0].numpy() > 0
