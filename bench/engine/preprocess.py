"""SAT-DS preprocessing through MONAI's own transforms, and its exact inverse for predictions.

Forward (SAT-DS's loaders, `loader.py`): `Orientation` to the dataset's axes (RAS for most datasets; ASR, IPL, LPS
or none for a few, recorded in the catalog), `Spacing` to 1 x 1 x 3 mm (image bilinear, masks nearest), a crop to
the bounding box of the voxels where the resampled image is positive (`CropForeground`'s default), then SAT-DS's
intensity normalisation: CT clipped to [-500, 1000], MRI and PET to their 0.5 and 99.5 percentiles, then z-scored.
The grid size is MONAI's (`round((n - 1) * s / t) + 1` voxels per axis), and every mask voxel is the native voxel
MONAI's nearest resampling picks: the sampled native index of each SAT index is asked of MONAI once per axis
(`Spacing` on a 1-D index ramp) and recorded, so masks are resampled by indexing, exactly and fast.

Inverse (missing from SAT, whose outputs carry an identity affine): a mask predicted in SAT space is uncropped,
each native voxel takes the SAT voxel whose centre is nearest (and, where MONAI sampled that native voxel, a SAT
voxel that sampled it), and the axes are reoriented back, so every model is scored against the untouched native
reference. Everything both directions need is recorded once in a `SatTransform` (JSON-serialisable). On an axis SAT
samples more finely than the scan (5 mm slices -> 3 mm), native -> SAT -> native is exact; on an axis SAT samples
more coarsely (0.78 mm in-plane -> 1 mm), SAT -> native -> SAT is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from bench.data.catalog.orientation import AXIS_LABELS, NO_REORIENTATION, SAT_ORIENTATION, orientation_code
from protocols.terms import modality_prefix
from bench.data.io import InputError, Volume
from protocols.boxes import bounding_box

TARGET_SPACING = (1.0, 1.0, 3.0)
CT_WINDOW = (-500.0, 1000.0)
PERCENTILES = (0.5, 99.5)


def _reorientation(native_affine: np.ndarray, orientation: str) -> np.ndarray:
    """nibabel orientation transform from the native axes to SAT's (identity for `none`)."""
    if orientation == NO_REORIENTATION:
        return np.array([[axis, 1] for axis in range(3)], float)
    return ornt_transform(io_orientation(native_affine), axcodes2ornt(orientation, AXIS_LABELS))


def _inverse_ornt(ornt: np.ndarray) -> np.ndarray:
    """The orientation transform that undoes `ornt` (apply_orientation(apply_orientation(a, o), inverse) == a)."""
    inverse = np.empty_like(ornt)
    for axis, (target, flip) in enumerate(ornt):
        inverse[int(target)] = (axis, flip)
    return inverse


@dataclass(frozen=True)
class SatTransform:
    """Native grid -> SAT grid: reorientation, resampling and crop, with everything needed to go back.

    `ras_*` describe the reoriented grid (RAS unless `orientation` says otherwise); `samples[a][j]` is the index
    on that grid that MONAI's nearest resampling takes for SAT index j along axis a (before the crop).
    """

    native_shape: tuple[int, int, int]
    native_affine: np.ndarray
    ras_shape: tuple[int, int, int]
    ras_spacing: tuple[float, float, float]
    resampled_shape: tuple[int, int, int]
    crop: tuple[tuple[int, int], ...]
    target_spacing: tuple[float, float, float] = TARGET_SPACING
    orientation: str = SAT_ORIENTATION
    samples: tuple[tuple[int, ...], ...] = ()

    @property
    def to_ras(self) -> np.ndarray:
        """Orientation transform native axes -> SAT's axes."""
        return _reorientation(self.native_affine, self.orientation)

    @property
    def ras_affine(self) -> np.ndarray:
        return self.native_affine @ inv_ornt_aff(self.to_ras, self.native_shape)

    @property
    def scale(self) -> np.ndarray:
        """Reoriented voxels per SAT voxel along each axis (SAT index j sits at reoriented index j * scale)."""
        return np.asarray(self.target_spacing) / np.asarray(self.ras_spacing)

    @property
    def sat_shape(self) -> tuple[int, ...]:
        return tuple(stop - start for start, stop in self.crop)

    @property
    def sat_affine(self) -> np.ndarray:
        """Voxel-to-world affine of the cropped SAT-space arrays, so they can be written with real geometry."""
        shift = np.eye(4)
        shift[:3, :3] = np.diag(self.scale)
        shift[:3, 3] = [start * s for (start, _), s in zip(self.crop, self.scale)]
        return self.ras_affine @ shift

    def to_json(self) -> dict:
        return {"native_shape": list(self.native_shape), "native_affine": self.native_affine.tolist(),
                "ras_shape": list(self.ras_shape), "ras_spacing": list(self.ras_spacing),
                "resampled_shape": list(self.resampled_shape), "crop": [list(c) for c in self.crop],
                "target_spacing": list(self.target_spacing), "orientation": self.orientation,
                "samples": [list(s) for s in self.samples]}

    @classmethod
    def from_json(cls, data: dict) -> SatTransform:
        return cls(tuple(data["native_shape"]), np.asarray(data["native_affine"], float), tuple(data["ras_shape"]),
                   tuple(data["ras_spacing"]), tuple(data["resampled_shape"]), tuple(tuple(c) for c in data["crop"]),
                   tuple(data["target_spacing"]), data["orientation"], tuple(tuple(s) for s in data["samples"]))


def _monai_grid(ras_affine: np.ndarray, ras_shape: tuple[int, ...], target_spacing) -> tuple[tuple[int, ...], ...]:
    """Per axis, the reoriented index MONAI's `Spacing` (nearest, its defaults as SAT-DS uses them) samples for
    each output index: the output size comes from a lazy `Spacing` of the whole grid (no voxel touched), the
    indices from `Spacing` of a 1-D index ramp along each axis. MONAI's sampling is separable (its voxel-to-voxel
    matrix is diagonal), so this is exact, except on an oblique scan at a sample exactly half-way between two
    voxels, where MONAI's float32 grid noise may pick either neighbour from one row to the next."""
    import torch  # MONAI and torch load when a scan is first preprocessed, not when the engine is imported
    from monai.data import MetaTensor
    from monai.transforms import Spacing

    spacing = Spacing(pixdim=target_spacing, mode="nearest")
    affine = torch.as_tensor(ras_affine, dtype=torch.float64)
    whole = MetaTensor(torch.zeros(1).expand(1, *ras_shape), affine=affine)
    out_shape = tuple(int(n) for n in spacing(whole, lazy=True).peek_pending_shape())
    samples = []
    for axis, n in enumerate(ras_shape):
        thin = [1, 1, 1]
        thin[axis] = n
        ramp = MetaTensor(torch.arange(n, dtype=torch.float32).reshape(1, *thin), affine=affine)
        size = [1, 1, 1]
        size[axis] = out_shape[axis]
        picked = spacing(ramp, output_spatial_shape=size).numpy().ravel()
        samples.append(tuple(int(i) for i in np.rint(picked)))
    return tuple(samples)


def plan_transform(affine: np.ndarray, shape: tuple[int, ...], target_spacing=TARGET_SPACING,
                   orientation: str | None = SAT_ORIENTATION) -> SatTransform:
    """The reorientation and resampling of a native grid, with no crop yet (the whole resampled grid)."""
    if len(shape) != 3:
        raise InputError(f"SAT preprocessing needs a 3D volume, got shape {tuple(shape)}")
    affine = np.asarray(affine, float)
    try:
        orientation = orientation_code(orientation)
    except ValueError as error:
        raise InputError(str(error)) from error
    ornt = _reorientation(affine, orientation)
    ras_shape = tuple(int(n) for n in np.asarray(shape)[ornt[:, 0].astype(int).argsort()])
    ras_affine = affine @ inv_ornt_aff(ornt, shape)
    ras_spacing = tuple(float(s) for s in np.linalg.norm(ras_affine[:3, :3], axis=0))
    samples = _monai_grid(ras_affine, ras_shape, target_spacing)
    resampled = tuple(len(s) for s in samples)
    return SatTransform(tuple(int(n) for n in shape), affine, ras_shape, ras_spacing, resampled,
                        tuple((0, n) for n in resampled), tuple(float(t) for t in target_spacing), orientation,
                        samples)


def _check_grid(transform: SatTransform, array: np.ndarray) -> None:
    if tuple(array.shape) != transform.native_shape:
        raise InputError(f"array of shape {array.shape} is not on the transform's native grid "
                         f"{transform.native_shape}")


def resample_image(transform: SatTransform, image: np.ndarray) -> np.ndarray:
    """Native image -> SAT axes -> 1 x 1 x 3 mm, bilinear, through MONAI's transforms (whole grid, no crop).
    The image is float32 first, as MONAI's `LoadImage` hands it to SAT-DS."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Orientation, Spacing

    _check_grid(transform, image)
    data = MetaTensor(torch.from_numpy(np.asarray(image, np.float32).copy())[None],
                      affine=torch.as_tensor(transform.native_affine, dtype=torch.float64))
    if transform.orientation != NO_REORIENTATION:
        data = Orientation(axcodes=transform.orientation, labels=AXIS_LABELS)(data)
    resampled = Spacing(pixdim=transform.target_spacing, mode="bilinear")(data)[0].numpy()
    if resampled.shape != transform.resampled_shape:  # the plan and MONAI must agree on the grid
        raise AssertionError(f"MONAI resampled to {resampled.shape}, planned {transform.resampled_shape}")
    return resampled


def _resample_mask(transform: SatTransform, array: np.ndarray) -> np.ndarray:
    """Native mask or label map -> SAT axes -> 1 x 1 x 3 mm, nearest (whole grid, no crop), by indexing."""
    _check_grid(transform, array)
    oriented = apply_orientation(np.asarray(array), transform.to_ras)
    for axis, picked in enumerate(transform.samples):
        oriented = np.take(oriented, picked, axis=axis)
    return np.ascontiguousarray(oriented)


def to_sat(transform: SatTransform, array: np.ndarray, order: int = 0) -> np.ndarray:
    """Apply a recorded transform to an array on the native grid: order 1 for images, 0 (nearest) for masks."""
    crop = tuple(slice(start, stop) for start, stop in transform.crop)
    resampled = resample_image(transform, array) if order else _resample_mask(transform, array)
    return resampled[crop]


def _native_picks(picked: tuple[int, ...], n: int, scale: float) -> np.ndarray:
    """For each of n reoriented indices, the SAT index to read back: one that sampled it if any (the one whose
    centre is nearest), else the SAT voxel whose centre is nearest."""
    picked = np.asarray(picked)
    centre = np.arange(n) / scale
    back = np.clip(np.floor(centre + 0.5), 0, len(picked) - 1).astype(int)
    for index in np.unique(picked):
        if picked[back[index]] != index:
            sources = np.flatnonzero(picked == index)
            back[index] = sources[np.argmin(np.abs(sources - centre[index]))]
    return back


def from_sat(transform: SatTransform, mask: np.ndarray) -> np.ndarray:
    """A mask or label map in SAT space back on the native grid: uncrop (background), nearest, reorient."""
    if tuple(mask.shape) != transform.sat_shape:
        raise InputError(f"mask of shape {mask.shape} is not in this transform's SAT space {transform.sat_shape}")
    full = np.zeros(transform.resampled_shape, mask.dtype)
    full[tuple(slice(start, stop) for start, stop in transform.crop)] = mask
    for axis, (picked, n, scale) in enumerate(zip(transform.samples, transform.ras_shape, transform.scale)):
        full = np.take(full, _native_picks(picked, n, float(scale)), axis=axis)
    return np.ascontiguousarray(apply_orientation(full, _inverse_ornt(transform.to_ras)))


def foreground_crop(array: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Bounding box (start, stop per axis) of the positive voxels, as MONAI's `CropForeground` finds it; the whole
    array when none is positive (where MONAI would crop to nothing)."""
    box = bounding_box(np.asarray(array) > 0)
    if box is None:
        return tuple((0, n) for n in array.shape)
    return tuple((crop.start, crop.stop) for crop in box)


def normalise(image: np.ndarray, modality: str) -> np.ndarray:
    """SAT's intensity normalisation: CT window [-500, 1000], MRI/PET 0.5-99.5 percentiles; then z-score."""
    image = np.asarray(image, np.float32)
    # one percentile per call, as SAT-DS: np.percentile(image, (0.5, 99.5)) computes in float64 and differs
    low, high = CT_WINDOW if modality_prefix(modality) == "ct" else (np.percentile(image, q) for q in PERCENTILES)
    clipped = np.clip(image, low, high)
    std = clipped.std()
    return (clipped - clipped.mean()) / (std if std > 0 else 1.0)


@dataclass(frozen=True)
class SatCase:
    """A scan in SAT space: normalised image, the masks on the same grid, and the transform that made them."""

    image: np.ndarray
    masks: dict[str, np.ndarray]
    transform: SatTransform


def preprocess(image: Volume, modality: str, masks: dict[str, np.ndarray] | None = None,
               orientation: str | None = SAT_ORIENTATION) -> SatCase:
    """SAT-DS preprocessing of one scan and any masks or label maps on its grid (nearest resampling);
    `orientation` is the dataset's (`DatasetInfo.orientation`)."""
    transform = plan_transform(image.affine, image.array.shape, orientation=orientation)
    resampled = resample_image(transform, image.array)
    transform = replace(transform, crop=foreground_crop(resampled))
    crop = tuple(slice(start, stop) for start, stop in transform.crop)
    sat_masks = {name: to_sat(transform, mask) for name, mask in (masks or {}).items()}
    return SatCase(normalise(resampled[crop], modality), sat_masks, transform)
