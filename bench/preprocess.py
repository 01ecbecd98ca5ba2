"""SAT-DS preprocessing and its exact inverse for predictions.

Forward (SAT's loaders): reorient to RAS, resample to 1 x 1 x 3 mm (image linear, masks nearest), crop to the
region where the image is positive (MONAI's CropForeground default, as SAT uses it), then normalise intensities:
CT clipped to [-500, 1000], MRI and PET to their 0.5 and 99.5 percentiles, then z-scored.

Inverse (missing from SAT, whose outputs carry an identity affine): a mask predicted in SAT space is uncropped,
resampled nearest to the RAS grid and reoriented back, so every model is scored against the untouched native
reference. The geometry of both directions is recorded once in a `SatTransform` (JSON-serialisable), so it is
applied and undone without recomputation. Upsampled axes round-trip exactly; on an axis SAT samples more coarsely
than the scan (e.g. 0.78 mm in-plane -> 1 mm), native -> SAT -> native cannot be exact, but SAT -> native -> SAT is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform
from scipy.ndimage import affine_transform

from bench.catalog.terms import modality_prefix
from bench.io import InputError, Volume

TARGET_SPACING = (1.0, 1.0, 3.0)
CT_WINDOW = (-500.0, 1000.0)
PERCENTILES = (0.5, 99.5)
_RAS = axcodes2ornt("RAS")


@dataclass(frozen=True)
class SatTransform:
    """Native grid -> SAT grid: reorientation, resampling and crop, with everything needed to go back."""

    native_shape: tuple[int, int, int]
    native_affine: np.ndarray
    ras_shape: tuple[int, int, int]
    ras_spacing: tuple[float, float, float]
    resampled_shape: tuple[int, int, int]
    crop: tuple[tuple[int, int], ...]
    target_spacing: tuple[float, float, float] = TARGET_SPACING

    @property
    def to_ras(self) -> np.ndarray:
        return ornt_transform(io_orientation(self.native_affine), _RAS)

    @property
    def scale(self) -> np.ndarray:
        """RAS voxels per SAT voxel along each axis (SAT index j sits at RAS index j * scale)."""
        return np.asarray(self.target_spacing) / np.asarray(self.ras_spacing)

    @property
    def sat_shape(self) -> tuple[int, ...]:
        return tuple(stop - start for start, stop in self.crop)

    @property
    def sat_affine(self) -> np.ndarray:
        """Voxel-to-world affine of the cropped SAT-space arrays, so they can be written with real geometry."""
        ras_affine = self.native_affine @ inv_ornt_aff(self.to_ras, self.native_shape)
        shift = np.eye(4)
        shift[:3, :3] = np.diag(self.scale)
        shift[:3, 3] = [start * s for (start, _), s in zip(self.crop, self.scale)]
        return ras_affine @ shift

    def to_json(self) -> dict:
        return {"native_shape": list(self.native_shape), "native_affine": self.native_affine.tolist(),
                "ras_shape": list(self.ras_shape), "ras_spacing": list(self.ras_spacing),
                "resampled_shape": list(self.resampled_shape), "crop": [list(c) for c in self.crop],
                "target_spacing": list(self.target_spacing)}

    @classmethod
    def from_json(cls, data: dict) -> SatTransform:
        return cls(tuple(data["native_shape"]), np.asarray(data["native_affine"], float), tuple(data["ras_shape"]),
                   tuple(data["ras_spacing"]), tuple(data["resampled_shape"]), tuple(tuple(c) for c in data["crop"]),
                   tuple(data["target_spacing"]))


def plan_transform(affine: np.ndarray, shape: tuple[int, ...], target_spacing=TARGET_SPACING) -> SatTransform:
    """The reorientation and resampling of a native grid, with no crop yet (the whole resampled grid)."""
    if len(shape) != 3:
        raise InputError(f"SAT preprocessing needs a 3D volume, got shape {tuple(shape)}")
    affine = np.asarray(affine, float)
    ornt = ornt_transform(io_orientation(affine), _RAS)
    ras_shape = tuple(int(n) for n in np.asarray(shape)[ornt[:, 0].astype(int).argsort()])
    ras_affine = affine @ inv_ornt_aff(ornt, shape)
    ras_spacing = tuple(float(s) for s in np.linalg.norm(ras_affine[:3, :3], axis=0))
    resampled = tuple(max(1, int(round(n * s / t))) for n, s, t in zip(ras_shape, ras_spacing, target_spacing))
    return SatTransform(tuple(int(n) for n in shape), affine, ras_shape, ras_spacing, resampled,
                        tuple((0, n) for n in resampled), tuple(float(t) for t in target_spacing))


def _check_grid(transform: SatTransform, array: np.ndarray) -> None:
    if tuple(array.shape) != transform.native_shape:
        raise InputError(f"array of shape {array.shape} is not on the transform's native grid "
                         f"{transform.native_shape}")


def _resample(transform: SatTransform, array: np.ndarray, order: int) -> np.ndarray:
    """Native array -> RAS orientation -> SAT spacing (whole grid, no crop)."""
    _check_grid(transform, array)
    ras = apply_orientation(np.asarray(array), transform.to_ras)
    dtype = np.float32 if order else ras.dtype
    return affine_transform(ras.astype(dtype, copy=False), transform.scale, output_shape=transform.resampled_shape,
                            order=order, mode="nearest")


def to_sat(transform: SatTransform, array: np.ndarray, order: int = 0) -> np.ndarray:
    """Apply a recorded transform to an array on the native grid: order 1 for images, 0 (nearest) for masks."""
    crop = tuple(slice(start, stop) for start, stop in transform.crop)
    return _resample(transform, array, order)[crop]


def from_sat(transform: SatTransform, mask: np.ndarray) -> np.ndarray:
    """A mask or label map in SAT space back on the native grid: uncrop (background), nearest, reorient."""
    if tuple(mask.shape) != transform.sat_shape:
        raise InputError(f"mask of shape {mask.shape} is not in this transform's SAT space {transform.sat_shape}")
    full = np.zeros(transform.resampled_shape, mask.dtype)
    full[tuple(slice(start, stop) for start, stop in transform.crop)] = mask
    ras = affine_transform(full, 1.0 / transform.scale, output_shape=transform.ras_shape, order=0, mode="nearest")
    back = ornt_transform(_RAS, io_orientation(transform.native_affine))
    return np.ascontiguousarray(apply_orientation(ras, back))


def foreground_crop(array: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Bounding box (start, stop per axis) of the positive voxels; the whole array when none is positive."""
    hits = [np.flatnonzero(np.any(array > 0, axis=tuple(a for a in range(array.ndim) if a != axis)))
            for axis in range(array.ndim)]
    if any(hit.size == 0 for hit in hits):
        return tuple((0, n) for n in array.shape)
    return tuple((int(hit[0]), int(hit[-1]) + 1) for hit in hits)


def normalise(image: np.ndarray, modality: str) -> np.ndarray:
    """SAT's intensity normalisation: CT window [-500, 1000], MRI/PET 0.5-99.5 percentiles; then z-score."""
    image = np.asarray(image, np.float32)
    low, high = CT_WINDOW if modality_prefix(modality) == "ct" else np.percentile(image, PERCENTILES)
    clipped = np.clip(image, low, high)
    std = clipped.std()
    return (clipped - clipped.mean()) / (std if std > 0 else 1.0)


@dataclass(frozen=True)
class SatCase:
    """A scan in SAT space: normalised image, the masks on the same grid, and the transform that made them."""

    image: np.ndarray
    masks: dict[str, np.ndarray]
    transform: SatTransform


def preprocess(image: Volume, modality: str, masks: dict[str, np.ndarray] | None = None) -> SatCase:
    """SAT-DS preprocessing of one scan and any masks or label maps on its grid (nearest resampling)."""
    transform = plan_transform(image.affine, image.array.shape)
    resampled = _resample(transform, image.array, order=1)
    transform = replace(transform, crop=foreground_crop(resampled))
    crop = tuple(slice(start, stop) for start, stop in transform.crop)
    sat_masks = {name: to_sat(transform, mask) for name, mask in (masks or {}).items()}
    return SatCase(normalise(resampled[crop], modality), sat_masks, transform)
