"""Reading and writing medical volumes, with the checks a benchmark needs before it scores anything.

NIfTI (.nii, .nii.gz) is read with nibabel; NRRD and MetaImage (.nrrd, .nhdr, .mha, .mhd) with SimpleITK.
Every volume comes back in the same convention whatever its format: array axes in voxel-index order (i, j, k),
spacing in that axis order, and a 4x4 voxel-to-world affine in RAS+ millimetres (SimpleITK's LPS is converted).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
VOLUME_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
GEOMETRY_TOLERANCE = 1e-4
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class InputError(ValueError):
    """A file that cannot be scored as given; the message names the file and the problem."""


@dataclass(frozen=True)
class Volume:
    """A voxel array with its geometry: spacing per array axis (mm) and voxel-to-world affine (RAS+, mm)."""

    array: np.ndarray
    spacing: tuple[float, ...]
    affine: np.ndarray
    path: Path | None = None

    def geometry(self) -> str:
        rows = "; ".join(" ".join(f"{v:.4f}" for v in row) for row in self.affine[:3])
        spacing = ", ".join(f"{s:.4f}" for s in self.spacing)
        return f"shape {self.array.shape}, spacing ({spacing}), affine [{rows}]"


def volume_suffix(path: Path) -> str | None:
    """The volume file suffix of `path` (".nii.gz", ".mha", ...), or None if it is not a volume file."""
    name = path.name.lower()
    return next((suffix for suffix in VOLUME_SUFFIXES if name.endswith(suffix)), None)


def _read_nifti(path: Path) -> Volume:
    image = nib.load(str(path))
    array = np.asanyarray(image.dataobj)
    ndim = array.ndim
    spacing = tuple(float(z) for z in image.header.get_zooms()[:ndim])
    return Volume(array, spacing, np.asarray(image.affine, np.float64), path)


def _read_itk(path: Path) -> Volume:
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    array = np.ascontiguousarray(array.transpose(tuple(reversed(range(array.ndim)))))
    ndim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), np.float64).reshape(ndim, ndim)
    affine = np.eye(4)
    affine[:ndim, :ndim] = direction * np.asarray(image.GetSpacing())
    affine[:ndim, 3] = image.GetOrigin()
    return Volume(array, tuple(float(s) for s in image.GetSpacing()), _LPS_TO_RAS @ affine, path)


def read_volume(path: str | Path) -> Volume:
    """Read a volume; unreadable, truncated or unsupported files raise InputError naming the file."""
    path = Path(path)
    suffix = volume_suffix(path)
    if suffix is None:
        raise InputError(f"{path}: not a supported volume file (expected one of {', '.join(VOLUME_SUFFIXES)})")
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        volume = _read_nifti(path) if suffix in NIFTI_SUFFIXES else _read_itk(path)
    except (OSError, EOFError, zlib.error, RuntimeError, ValueError, nib.filebasedimages.ImageFileError) as error:
        raise InputError(f"{path}: cannot read volume ({type(error).__name__}: {error})") from error
    if volume.array.ndim not in (2, 3):
        raise InputError(f"{path}: expected a 2D or 3D volume, got shape {volume.array.shape}")
    return volume


def _as_labels(array: np.ndarray, path: Path | None) -> np.ndarray:
    """Integer labels from an integer array, or from a float array whose values are all whole numbers."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if np.isnan(array).any():
            raise InputError(f"{path}: label volume contains NaN values")
        fractional = array[array != np.round(array)]
        if fractional.size:
            raise InputError(f"{path}: label volume has non-integer values, e.g. {fractional.flat[0]!r}")
        array = array.astype(np.int64)
    elif not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{path}: label volume has unsupported dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise InputError(f"{path}: label volume has negative values (min {array.min()})")
    return array.astype(np.min_scalar_type(array.max() if array.size else 0), copy=False)


def read_label_map(path: str | Path) -> Volume:
    """A volume of non-negative integer labels (0 = background)."""
    volume = read_volume(path)
    return Volume(_as_labels(volume.array, volume.path), volume.spacing, volume.affine, volume.path)


def read_binary_mask(path: str | Path) -> Volume:
    """A volume holding only 0 and 1, returned as a boolean array."""
    volume = read_label_map(path)
    if volume.array.size and volume.array.max() > 1:
        raise InputError(f"{path}: a binary mask must hold only 0 and 1, found {int(volume.array.max())}")
    return Volume(volume.array.astype(bool), volume.spacing, volume.affine, volume.path)


def check_same_geometry(first: Volume, second: Volume, tolerance: float = GEOMETRY_TOLERANCE) -> None:
    """Raise InputError naming both files and geometries unless shape, spacing and affine agree."""
    same = (
        first.array.shape == second.array.shape
        and np.allclose(first.spacing, second.spacing, rtol=0, atol=tolerance)
        and np.allclose(first.affine, second.affine, rtol=0, atol=tolerance)
    )
    if not same:
        raise InputError(
            "geometry mismatch:\n"
            f"  {first.path}: {first.geometry()}\n"
            f"  {second.path}: {second.geometry()}"
        )


def write_volume(path: str | Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write a NIfTI volume (labels as integers, images as float32) with the given RAS+ affine."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    elif array.dtype.itemsize == 8:  # NIfTI readers expect at most 32-bit integers
        array = array.astype(np.int32)
    image = nib.Nifti1Image(array, np.asarray(affine, np.float64))
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, str(path))
    return path
