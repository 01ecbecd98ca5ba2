"""Reading and writing medical volumes, with the checks a benchmark needs before it scores anything.

NIfTI (.nii, .nii.gz) is read with nibabel; NRRD and MetaImage (.nrrd, .nhdr, .mha, .mhd) with SimpleITK.
Every volume comes back in the same convention whatever its format: array axes in voxel-index order (i, j, k),
spacing in that axis order, and a 4x4 voxel-to-world affine in RAS+ millimetres (SimpleITK's LPS is converted).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from isal import isal_zlib
from nibabel.volumeutils import apply_read_scaling

from bench.data.errors import InputError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
VOLUME_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
GEOMETRY_TOLERANCE = 1e-4
# Voxel sizes outside this range (mm) are header errors, not scans: a pixdim of 0 or 1e-3 must not be scored.
SPACING_RANGE = (0.01, 100.0)
_MAX_LABEL = 2**31 - 1
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Volume:
    """A voxel array with its geometry: spacing per array axis (mm) and voxel-to-world affine (RAS+, mm)."""

    array: np.ndarray
    spacing: tuple[float, ...]
    affine: np.ndarray
    path: Path | None = None


def volume_suffix(path: Path) -> str | None:
    """The volume file suffix of `path` (".nii.gz", ".mha", ...), or None if it is not a volume file."""
    name = path.name.lower()
    return next((suffix for suffix in VOLUME_SUFFIXES if name.endswith(suffix)), None)


def _spacing_of(affine: np.ndarray, ndim: int) -> tuple[float, ...]:
    """Voxel size per array axis, from the voxel-to-world affine (the geometry that the checks compare)."""
    return tuple(float(v) for v in np.linalg.norm(affine[:3, :ndim], axis=0))


# Deflate inflates at most 1032:1 (RFC 1951's longest match per 258 bytes of output); a header announcing more
# than that from its compressed size is refused before any byte is inflated.
_MAX_DEFLATE_RATIO = 1032
_NIFTI_HEADER_BYTES = 540  # a NIfTI-2 header (a NIfTI-1 header is 348)
SUPPORTED_SHAPES = "2-D, 3-D, or 4-D with one channel"


def _size(count: int) -> str:
    """A byte count as people write it: 20 GiB, 3.5 MiB, 120 bytes."""
    for unit, power in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 2**power:
            return f"{count / 2**power:.3g} {unit}"
    return f"{count} bytes"


def _check_compressed_size(path: Path, announced: int, compressed: int) -> None:
    if announced > _MAX_DEFLATE_RATIO * compressed + 2**16:
        raise InputError(f"{path}: the header announces {_size(announced)}, more than a {_size(compressed)} "
                         f"compressed file can hold; the header is wrong or the file is truncated")


def _check_shape(path: Path, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The array shape to read: 2-D and 3-D as they are, a 4-D file with one channel as 3-D; InputError for a volume
    with no voxels or more channels or dimensions than a label map or single-channel image has."""
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) not in (2, 3):
        raise InputError(f"{path}: a {len(shape)}-D volume of {dims(shape)} voxels; supported: {SUPPORTED_SHAPES}")
    if 0 in shape:
        raise InputError(f"{path}: the header describes a volume with no voxels ({dims(shape)})")
    return shape


def _inflate(path: Path, compressed: bytes, size: int) -> bytes:
    """The first `size` bytes a gzip stream (one or more members) inflates to, inflating no more than size + 1 bytes
    (ISA-L); InputError if the stream is longer or shorter than `size`."""
    pieces, have, rest = [], 0, compressed
    while rest and have <= size:
        inflater = isal_zlib.decompressobj(wbits=31)
        piece = inflater.decompress(rest, size + 1 - have)
        pieces.append(piece)
        have += len(piece)
        if not inflater.eof:
            if have <= size:
                raise InputError(f"{path}: the compressed stream is truncated ({have} of the {size} bytes its header "
                                 "announces)")
            break
        rest = inflater.unused_data
    if have > size:
        raise InputError(f"{path}: the compressed data is longer than its header announces ({_size(size)}); the "
                         "header or the file is wrong")
    if have < size:
        raise InputError(f"{path}: the compressed data ({_size(have)}) is shorter than the {_size(size)} its header "
                         "announces; the file is truncated or the header is wrong")
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _nifti_gz(path: Path) -> tuple[np.ndarray, nib.Nifti1Header]:
    """A .nii.gz inflated with ISA-L (about twice as fast as nibabel's gzip stream) up to the bytes its header
    announces and no further (a small file cannot inflate into gigabytes), its voxels a view of the inflated bytes;
    the header goes through nibabel's own checks and fixes."""
    compressed = path.read_bytes()
    prefix = isal_zlib.decompressobj(wbits=31).decompress(compressed, _NIFTI_HEADER_BYTES)
    header_class = nib.Nifti2Header if int.from_bytes(prefix[:4], "little") == 540 else nib.Nifti1Header
    header = header_class(prefix[: header_class.template_dtype.itemsize], check=True)
    dtype, offset = header.get_data_dtype(), int(header.get_data_offset())
    shape = _check_shape(path, header.get_data_shape())
    size = max(offset, header_class.template_dtype.itemsize) + math.prod(shape) * dtype.itemsize
    _check_compressed_size(path, size, len(compressed))
    data = _inflate(path, compressed, size)
    header = header_class.from_fileobj(io.BytesIO(data))
    array = np.frombuffer(data, dtype, count=math.prod(shape), offset=offset)
    array = apply_read_scaling(array.reshape(shape, order="F"), *header.get_slope_inter())
    return array, header


def _read_nifti(path: Path) -> Volume:
    if path.name.lower().endswith(".gz"):
        array, header = _nifti_gz(path)
        affine = np.asarray(header.get_best_affine(), np.float64)
    else:
        image = nib.load(str(path))
        header = image.header
        shape = _check_shape(path, header.get_data_shape())
        array = np.asanyarray(image.dataobj).reshape(shape)
        affine = np.asarray(image.affine, np.float64)
    if not np.all(np.isfinite(affine)):
        raise InputError(f"{path}: the header's affine has non-finite values")
    spacing = _spacing_of(affine, array.ndim)
    pixdim = [float(z) for z in header.get_zooms()[: array.ndim]]
    if not np.allclose(pixdim, spacing, rtol=1e-3, atol=1e-4):
        raise InputError(f"{path}: the header is inconsistent: pixdim gives voxel size "
                         f"{_mm(pixdim)} but the affine (sform/qform) gives {_mm(spacing)}; fix the header")
    return Volume(array, spacing, affine, path)


def _mm(values) -> str:
    return " x ".join(f"{float(v):g}" for v in values) + " mm"


def dims(shape) -> str:
    """A shape as people write it: 512 x 512 x 82."""
    return " x ".join(str(int(n)) for n in shape)


def _check_spacing(volume: Volume) -> None:
    low, high = SPACING_RANGE
    if not all(np.isfinite(s) and low <= s <= high for s in volume.spacing):
        raise InputError(f"{volume.path}: voxel size {_mm(volume.spacing)} is not plausible (each axis must be "
                         f"between {low:g} and {high:g} mm); check the header")


def _header_fields(path: Path) -> tuple[dict[str, str], int]:
    """The `key = value` (MetaImage) or `key: value` (NRRD) fields of a text header, keys lower-case without spaces,
    and the byte offset where the header ends (the data of an attached .mha / .nrrd begins there)."""
    fields, offset = {}, 0
    with open(path, "rb") as handle:
        for raw in iter(lambda: handle.readline(4096), b""):
            offset += len(raw)
            line = raw.decode("latin-1").strip()
            if not line and path.suffix.lower() in (".nrrd", ".nhdr"):
                break  # NRRD: a blank line ends the header
            key, sep, value = line.partition("=" if path.suffix.lower() in (".mha", ".mhd") else ":")
            if sep and not line.startswith("#"):
                fields[key.strip().lower().replace(" ", "")] = value.strip()
            if key.strip().lower() == "elementdatafile":
                break  # MetaImage: the data file is the header's last field
    return fields, offset


def _check_itk_data(path: Path, shape: tuple[int, ...], announced: int) -> None:
    """The data an ITK header points to must be a regular file holding the bytes it announces (raw), or able to hold
    them (compressed): a header pointing at /dev/zero, or at a file of another size, is refused before it is read."""
    fields, header_end = _header_fields(path)
    metaimage = path.suffix.lower() in (".mha", ".mhd")
    name = fields.get("elementdatafile" if metaimage else "datafile", "LOCAL")
    if name.upper().startswith("LIST") or "%" in name:
        raise InputError(f"{path}: data split over several files ({name}) is not supported; write one data file")
    if name.upper() in ("LOCAL", ""):
        data, skip = path, header_end
    else:
        data = Path(name) if Path(name).is_absolute() else path.parent / name
        skip = int(fields.get("headersize" if metaimage else "byteskip", "0") or 0)
    if not data.exists():
        raise InputError(f"{path}: its data file {data} is not found")
    if not data.is_file():
        raise InputError(f"{path}: its data file {data} is not a regular file")
    available = data.stat().st_size - max(skip, 0)
    encoding = ("gzip" if fields.get("compresseddata", "false").lower() == "true" else "raw") if metaimage \
        else fields.get("encoding", "raw").lower()
    if encoding in ("txt", "text", "ascii"):
        return
    if encoding != "raw":
        _check_compressed_size(path, announced, available)
    elif available < announced or (available > announced and skip >= 0):  # skip -1: the data are the file's tail
        raise InputError(f"{path}: its data file {data.name} holds {available} bytes, the header announces "
                         f"{announced} ({dims(shape)} voxels)")


def _read_itk(path: Path) -> Volume:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    components = reader.GetNumberOfComponents()
    shape = _check_shape(path, tuple(reader.GetSize()) + ((components,) if components > 1 else ()))
    itemsize = sitk.GetArrayViewFromImage(sitk.Image([1] * reader.GetDimension(), reader.GetPixelID())).itemsize
    _check_itk_data(path, shape, math.prod(shape) * itemsize)
    image = reader.Execute()
    if image.GetDimension() == 4:  # one channel (checked above): its 3-D volume
        image = image[:, :, :, 0]
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
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"{path}: not enough memory to read it") from None
    except Exception as error:  # the parsing boundary: whatever a stranger's file makes a reader raise
        reason = " ".join(str(error).replace(str(path), "the file").split())
        raise InputError(f"{path}: cannot read volume ({type(error).__name__}: {reason})") from error
    _check_spacing(volume)
    return volume


def _as_labels(array: np.ndarray, path: Path | None) -> np.ndarray:
    """Integer labels from an integer array, or from a float array whose values are all whole numbers."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InputError(f"{path}: label volume contains non-finite values (NaN or infinity)")
        fractional = array[array != np.round(array)]
        if fractional.size:
            raise InputError(f"{path}: label volume has non-integer values, e.g. {float(fractional.flat[0]):g}")
        if array.size and array.max() > _MAX_LABEL:
            raise InputError(f"{path}: label value {float(array.max()):g} is too large for a label")
        array = array.astype(np.int64)
    elif not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{path}: label volume has unsupported dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise InputError(f"{path}: label volume has negative values (min {int(array.min())})")
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
    """Raise a one-line InputError naming both files and what differs unless shape, spacing and affine agree."""
    if first.array.shape != second.array.shape:
        difference = f"shape {dims(first.array.shape)} vs {dims(second.array.shape)}"
    elif not np.allclose(first.spacing, second.spacing, rtol=0, atol=tolerance):
        difference = f"voxel size {_mm(first.spacing)} vs {_mm(second.spacing)}"
    elif not np.allclose(first.affine, second.affine, rtol=0, atol=tolerance):
        gap = float(np.abs(first.affine - second.affine).max())
        difference = (f"affines differ by up to {gap:.4g} (origin {_mm(first.affine[:3, 3])} vs "
                      f"{_mm(second.affine[:3, 3])})")
    else:
        return
    raise InputError(f"geometry mismatch between {first.path} and {second.path}: {difference}")


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
