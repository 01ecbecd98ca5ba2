"""The grid a case is scored on: the scan's own (`native`) or SAT-DS's preprocessed grid (`satds`).

SAT's published numbers are scored on SAT-DS's grid, not the scan's (SAT @5676be5a): the reference comes from
SAT-DS's loader, which reorients (`Orientationd`, the dataset's axes), resamples nearest to 1 x 1 x 3 mm
(`Spacingd`) and crops to the image's positive bounding box (`CropForegroundd(source_key="image")`), and the
prediction is made on that same grid (evaluate/evaluator.py:171-174, data/nii_evaluate_dataset.py:166); the
surface distances use spacing [1, 1, 3] (evaluate/metric.py:30), which is that grid's true spacing in every
orientation (`pixdim` applies to array axes after reorientation). `satds` maps a native prediction and reference
there with `bench.engine.preprocess` (the same MONAI grid, nearest picks recorded per axis) and scores with (1, 1, 3).

The crop needs the image. It changes a score only where a mask reaches outside the bounding box of the voxels
where the resampled image is positive (DSC loses those voxels, NSD sees a cut surface); pass `image` to apply it
as SAT-DS does, otherwise the whole resampled grid is scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from bench.data.catalog.orientation import SAT_ORIENTATION
from bench.data.io import InputError
from bench.engine.preprocess import foreground_crop, plan_transform, resample_image, to_sat
from protocols.metrics import EVALUATION_GRIDS as GRIDS

Segmentation = np.ndarray | Mapping[str, np.ndarray]


def _check_shape(name: str, segmentation: Segmentation, shape: tuple[int, ...]) -> None:
    arrays = segmentation.items() if isinstance(segmentation, Mapping) else [("", segmentation)]
    for key, array in arrays:
        if tuple(np.shape(array)) != shape:
            where = f" mask {key!r}" if key else ""
            raise InputError(f"{name}{where} has shape {tuple(np.shape(array))}, not the volume's {shape}")


def to_scoring_grid(pred: Segmentation, ref: Segmentation, volume_affine: np.ndarray, shape, grid: str = "native",
                    orientation: str | None = SAT_ORIENTATION, image: np.ndarray | None = None,
                    ) -> tuple[Segmentation, Segmentation, tuple[float, ...]]:
    """Prediction and reference (label maps or class -> mask mappings on the native grid) on the scoring grid,
    with that grid's spacing. `native` returns them unchanged with the affine's voxel spacing; `satds` resamples
    both as SAT-DS preprocessing does (the dataset's `orientation`, 1 x 1 x 3 mm nearest, the foreground crop of
    `image` when given) and returns spacing (1, 1, 3)."""
    if grid not in GRIDS:
        raise InputError(f"unknown scoring grid {grid!r}; choose one of {', '.join(GRIDS)}")
    shape = tuple(int(n) for n in shape)
    _check_shape("prediction", pred, shape)
    _check_shape("reference", ref, shape)
    if grid == "native":
        return pred, ref, tuple(float(s) for s in np.linalg.norm(np.asarray(volume_affine)[:3, :3], axis=0))
    transform = plan_transform(volume_affine, shape, orientation=orientation)
    if image is not None:
        _check_shape("image", image, shape)
        transform = replace(transform, crop=foreground_crop(resample_image(transform, image)))

    def resample(segmentation: Segmentation) -> Segmentation:
        if isinstance(segmentation, Mapping):
            return {name: to_sat(transform, np.asarray(mask)) for name, mask in segmentation.items()}
        return to_sat(transform, np.asarray(segmentation))

    return resample(pred), resample(ref), transform.target_spacing
