"""A SAT-DS dataset as an nnU-Net raw dataset, the way SAT-DS trained its 72 specialists.

- Folder and id are SAT-DS's (`Dataset003_AMOS22CT`), labels are the dataset's original nnU-Net labels (the
  catalog's `nnunet_labels`), one channel named so that nnU-Net picks the right normalisation ("CT" ->
  CTNormalization; "MR", "PET" -> z-score), read with `NibabelIOWithReorient` as SAT-DS's plans expect.
- SAT's split is respected: test patients go to `imagesTs`/`labelsTs` only, never to `imagesTr`.
- Geometry is kept exactly: NIfTI (.nii.gz) images are copied byte for byte, label maps are copied or, where the
  mask values differ from the nnU-Net values (ACDC, LUNA16, MM-WHS) or hold values SAT-DS does not use, rewritten
  with the original header. Other formats (.mhd, .nrrd) are written as NIfTI with the same RAS affine.
- Cases are listed with the catalog's loaders (`bench.data.catalog.cases.dataset_sources`, SAT-DS records, MSD or nnU-Net
  folders); each source's label values come with it, so any of these layouts converts correctly.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from bench.data.catalog import DatasetInfo, modality_prefix
from bench.data.catalog.cases import CaseSource, in_split
from bench.data.io import (
    GEOMETRY_TOLERANCE,
    InputError,
    check_same_geometry,
    read_label_map,
    read_volume,
    volume_suffix,
    write_volume,
)
from protocols.errors import BenchError

FILE_ENDING = ".nii.gz"
READER = "NibabelIOWithReorient"
CHANNEL_NAMES = {"ct": "CT", "mri": "MR", "pet": "PET"}
CASES_FILE = "bench_cases.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class ConversionReport:
    """What `convert_dataset` wrote: case ids per split, and label values it set to background (value -> voxels)."""

    folder: Path
    train: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    dropped_values: Counter = field(default_factory=Counter)
    reused: int = 0


def dataset_json(info: DatasetInfo, num_training: int) -> dict:
    """nnU-Net's dataset.json of a SAT-DS specialist: original labels, one named channel, SAT-DS's reader."""
    labels = {"background": 0}
    for name, entry in sorted(info.nnunet_labels.items(), key=lambda item: item[1]["value"]):
        labels[name] = int(entry["value"])
    short = info.nnunet_name.split("_", 1)[1]
    return {
        "channel_names": {"0": CHANNEL_NAMES[modality_prefix(info.modality)]},
        "labels": labels,
        "numTraining": int(num_training),
        "file_ending": FILE_ENDING,
        "name": short,
        "reference": "none",
        "description": short,
        "overwrite_image_reader_writer": READER,
    }


def channel_values(info: DatasetInfo, classes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Each nnU-Net channel's own label values in a source whose classes (derived ones included) have the values
    `classes` (SAT-DS masks: the catalog's `mask_values`): a class widened by its own rule (KiTS23's kidney =
    kidney + tumour + cyst) keeps only the values none of its other sources has."""
    sources_of = dict(info.rules)
    own = {}
    for entry in info.nnunet_labels.values():
        name = entry["class"]
        values = set(classes[name])
        for source in sources_of.get(name, ()):
            if source != name:
                values -= set(classes[source])
        own[name] = tuple(sorted(values))
    return own


def to_nnunet_values(info: DatasetInfo, classes: Mapping[str, tuple[int, ...]]) -> dict[int, int]:
    """Source label value -> nnU-Net label value for every value the source's classes use; others are background."""
    own = channel_values(info, classes)
    lookup = {}
    for entry in info.nnunet_labels.values():
        for value in own[entry["class"]]:
            if value in lookup and lookup[value] != entry["value"]:
                raise BenchError(f"{info.name}: label value {value} claimed by two nnU-Net labels")
            lookup[int(value)] = int(entry["value"])
    return lookup


def _strip_suffix(name: str) -> str:
    suffix = volume_suffix(Path(name)) or (".npy" if name.endswith(".npy") else None)
    return name[: -len(suffix)] if suffix else name


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_") or "case"


def case_ids(sources: Iterable[CaseSource]) -> list[str]:
    """nnU-Net case ids: SAT-DS's patient id without file suffix; where a patient has several scans (BraTS
    sequences, follow-ups), the first path component (from the file upwards) that tells them apart is added."""
    sources = list(sources)
    base = [_safe(_strip_suffix(s.case_id)) for s in sources]
    groups = defaultdict(list)
    for index, key in enumerate(base):
        groups[key].append(index)
    ids = list(base)
    for key, members in groups.items():
        if len(members) == 1:
            continue
        paths = [sources[i].image.parts[::-1] for i in members]
        depth = next((d for d in range(min(map(len, paths)))
                      if len({p[d] for p in paths}) == len(members)), None)
        for rank, i in enumerate(members):
            tag = _safe(_strip_suffix(paths[rank][depth])) if depth is not None else f"{rank + 1:03d}"
            ids[i] = tag if tag.startswith(key) else f"{key}_{tag}"
    duplicates = [k for k, n in Counter(ids).items() if n > 1]
    if duplicates:
        raise InputError(f"cases share the nnU-Net id(s) {', '.join(duplicates[:5])}; cannot name them apart")
    return ids


def is_test(info: DatasetInfo, source: CaseSource) -> bool | None:
    """True for SAT's test split, False for train, None if the patient is in neither list."""
    key = _strip_suffix(str(source.case_id))
    if in_split(info, key, "test"):
        return True
    return False if in_split(info, key, "train") else None


def _atomic(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = FILE_ENDING if target.name.endswith(FILE_ENDING) else ".tmp"  # nibabel compresses by file name
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _is_nifti_gz(path: Path) -> bool:
    return path.name.lower().endswith(".nii.gz")


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _nifti_geometry_equal(image: nib.Nifti1Image, label: nib.Nifti1Image) -> bool:
    return (image.shape[:3] == label.shape[:3]
            and np.allclose(image.affine, label.affine, rtol=0, atol=GEOMETRY_TOLERANCE))


def _copy_as_nii_gz(source: Path, target: Path) -> None:
    """A NIfTI file as .nii.gz with identical bytes inside: copied, or gzip-compressed if it was plain .nii."""
    if _is_nifti_gz(source):
        _atomic(target, lambda tmp: shutil.copyfile(source, tmp))
        return

    def compress(tmp: Path) -> None:
        with open(source, "rb") as raw, gzip.open(tmp, "wb") as packed:
            shutil.copyfileobj(raw, packed)

    _atomic(target, compress)


def _write_image(source: Path, target: Path) -> None:
    if _is_nifti(source):
        _copy_as_nii_gz(source, target)
    else:
        volume = read_volume(source)
        _atomic(target, lambda tmp: write_volume(tmp, volume.array, volume.affine))


def _remap(array: np.ndarray, lookup: dict[int, int], path: Path) -> tuple[np.ndarray, Counter]:
    """Mask values -> nnU-Net values; values SAT-DS does not use become background and are counted."""
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise InputError(f"{path}: label map has non-integer values")
        array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise InputError(f"{path}: label map has negative values")
    values, counts = np.unique(array, return_counts=True)
    dropped = Counter({int(v): int(n) for v, n in zip(values, counts) if v != 0 and int(v) not in lookup})
    table = np.zeros(int(values.max()) + 1 if values.size else 1, np.uint16)
    for mask_value, nnunet_value in lookup.items():
        if mask_value < table.size:
            table[mask_value] = nnunet_value
    out = table[array]
    return out.astype(np.uint8 if out.max(initial=0) < 256 else np.uint16), dropped


def _write_label(source: Path, image_path: Path, target: Path, lookup: dict[int, int]) -> Counter:
    """The label map in nnU-Net values with the image's geometry; copied byte for byte when nothing changes."""
    if _is_nifti(source):
        label = nib.load(str(source))
        image = nib.load(str(image_path)) if _is_nifti(image_path) else None
        if image is not None and not _nifti_geometry_equal(image, label):
            raise InputError(f"geometry mismatch between {image_path} and {source}")
        array = np.asanyarray(label.dataobj)
        remapped, dropped = _remap(array, lookup, source)
        if np.array_equal(remapped, array):
            _copy_as_nii_gz(source, target)
            return dropped
        header = label.header.copy()
        header.set_data_dtype(remapped.dtype)
        header.set_slope_inter(1, 0)
        out = nib.Nifti1Image(remapped, label.affine, header)
        out.set_qform(*label.get_qform(coded=True))
        out.set_sform(*label.get_sform(coded=True))
        _atomic(target, lambda tmp: nib.save(out, str(tmp)))
        return dropped
    label = read_label_map(source)
    check_same_geometry(read_volume(image_path), label)
    remapped, dropped = _remap(label.array, lookup, source)
    _atomic(target, lambda tmp: write_volume(tmp, remapped, label.affine))
    return dropped


def convert_dataset(info: DatasetInfo, sources: list[CaseSource], raw_root: Path,
                    overwrite: bool = False, progress=None) -> ConversionReport:
    """Write `raw_root/<DatasetNNN_Name>/` (imagesTr, labelsTr, imagesTs, labelsTs, dataset.json, bench_cases.json).

    Cases already written are kept unless `overwrite` (a killed conversion resumes); files are written atomically.
    """
    folder = Path(raw_root) / info.nnunet_name
    report = ConversionReport(folder)
    splits = [is_test(info, source) for source in sources]
    unknown = [s.case_id for s, split in zip(sources, splits) if split is None]
    if unknown:
        raise InputError(f"{info.name}: {len(unknown)} case(s) in neither of SAT's splits, e.g. {unknown[0]!r}")
    records = {}
    for source, case, test in zip(sources, case_ids(sources), splits):
        part = "Ts" if test else "Tr"
        image = folder / f"images{part}" / f"{case}_0000{FILE_ENDING}"
        label = folder / f"labels{part}" / f"{case}{FILE_ENDING}"
        if not overwrite and image.is_file() and label.is_file():
            report.reused += 1
        else:
            lookup = to_nnunet_values(info, source.classes)
            report.dropped_values.update(_write_label(source.label, source.image, label, lookup))
            _write_image(source.image, image)
        (report.test if test else report.train).append(case)
        records[case] = {"split": "test" if test else "train", "patient_id": str(source.case_id),
                         "image": str(source.image), "label": str(source.label)}
        if progress is not None:
            progress(case)
    description = dataset_json(info, len(report.train))
    _atomic(folder / "dataset.json", lambda tmp: tmp.write_text(json.dumps(description, indent=4)))
    _atomic(folder / CASES_FILE, lambda tmp: tmp.write_text(json.dumps(
        {"dataset": info.name, "nnunet_name": info.nnunet_name, "cases": records}, indent=2)))
    return report
