"""SAM-Med3D's official TorchIO crop chain, shared by the SAM-Med3D model (`models.sam_med3d.preprocess`) and the
protocols' crop space (`bench.engine.spaces.crop_space`), so both crop a scan by the very same steps.

Official (uni-medical/SAM-Med3D utils/infer_utils.py:201-272, 275-353): `resample_canonical` (TorchIO `Resample`,
image linear in its own dtype and masks nearest, then `ToCanonical`), `crop_or_pad` (`CropOrPad` centred by
TorchIO on a mask) and `onto_grid` (the nearest-neighbour `Resample` back onto the native grid, as the official
`data_postprocess`). Arrays are in native voxel order with a RAS voxel-to-world affine, as `bench.data.io` reads
them and as TorchIO holds them. It is not a model: it imports torch and TorchIO, so callers import it when they
crop, not at start-up.
"""

from __future__ import annotations

import numpy as np
import torch
import torchio as tio

from protocols.errors import BenchError


def _tensor(data: np.ndarray, dtype=None) -> torch.Tensor:
    """(C, X, Y, Z) data in Fortran order, as TorchIO's reader holds a NIfTI: SimpleITK then takes the (Z, Y, X, C)
    buffer it wants without a strided gather (10x faster on a 512 x 512 x 82 scan; the values are the same)."""
    return torch.as_tensor(np.array(data, dtype=dtype, order="F"))  # a copy: the caller's array may be read-only


def _scalar(array: np.ndarray, affine: np.ndarray) -> tio.ScalarImage:
    """A TorchIO image keeping the array's dtype (an int16 CT is resampled as int16, as when TorchIO reads it)."""
    data = np.asarray(array)
    if data.ndim != 3:
        raise BenchError(f"SAM-Med3D's crop chain takes 3D images, got an array of shape {data.shape}")
    if data.dtype == np.uint16 or data.dtype == np.uint32:  # torch lacks them; TorchIO's reader widens the same way
        data = data.astype(np.int32 if data.dtype == np.uint16 else np.int64)
    return tio.ScalarImage(tensor=_tensor(data[None]), affine=np.asarray(affine, float))


def _labels(labels: np.ndarray, affine: np.ndarray) -> tio.LabelMap:
    """Integer or binary labels (C, ...) as a C-channel TorchIO label map (binary as uint8)."""
    labels = np.asarray(labels)
    return tio.LabelMap(tensor=_tensor(labels, np.uint8 if labels.dtype == bool else None),
                        affine=np.asarray(affine, float))


def resample_canonical(image: np.ndarray, affine: np.ndarray, labels: np.ndarray | None = None, *,
                       spacing: tuple[float, float, float], canonical: bool = True,
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
            raise BenchError(f"labels of shape {labels.shape[1:]} do not match the image's {image.shape}")
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


def onto_grid(mask: np.ndarray, affine: np.ndarray, shape: tuple[int, ...], grid_affine: np.ndarray) -> np.ndarray:
    """A mask (voxel-to-world `affine`) on the grid (`shape`, `grid_affine`), bool, by TorchIO's nearest-neighbour
    Resample onto the whole grid, as the official `data_postprocess`; voxels outside the mask's box are background.

    The whole grid, not just the part the mask covers: native voxel centres often fall exactly halfway between
    crop voxels (3 mm onto 1.5 mm), and a sub-grid's origin, rounded differently in the last bits, breaks those
    ties differently (about 200 of 100,000 voxels on the real CT)."""
    reference = tio.ScalarImage(tensor=torch.zeros((1, *shape)), affine=np.asarray(grid_affine, float))
    return tio.Resample(target=reference)(_labels(np.asarray(mask)[None], affine)).data[0].numpy() > 0
