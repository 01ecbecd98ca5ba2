"""Real label maps for the scoring benchmarks: the AMOS22 label with two degradations, the two TotalSegmentator
predictions of one CT, and AMOS resized (nearest) or relabelled into more classes for the growth sweeps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from bench.data.io import read_label_map

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
AMOS = SHARED / "amos" / "amos_0013_label.nii.gz"
TOTALSEGMENTATOR = SHARED / "totalsegmentator_example"
AMOS_CLASSES = [
    "spleen", "right kidney", "left kidney", "gallbladder", "esophagus", "liver", "stomach", "aorta",
    "inferior vena cava", "pancreas", "right adrenal gland", "left adrenal gland", "duodenum",
    "urinary bladder", "prostate/uterus",
]


@dataclass(frozen=True)
class Workload:
    """One case to score: prediction and reference label maps of one grid, its spacing, its classes."""

    name: str
    pred: np.ndarray
    ref: np.ndarray
    spacing: tuple[float, ...]
    classes: dict[str, int]


def require(path: Path) -> Path:
    if not path.exists():
        raise SystemExit(f"{path} is absent: this benchmark needs ../shared/data")
    return path


def degrade(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A realistic wrong prediction: every organ shifted by up to 3 voxels in-plane, a third eroded."""
    prediction = np.zeros_like(labels)
    for value in range(1, labels.max() + 1):
        organ = labels == value
        if value == 15:  # one organ missed entirely
            continue
        organ = ndimage.shift(organ, (*rng.integers(-3, 4, 2), rng.integers(-1, 2)), order=0)
        if rng.random() < 1 / 3:
            organ = ndimage.binary_erosion(organ, iterations=2)
        prediction[organ] = value
    return prediction


def degrade_hard(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A prediction with ragged boundaries: every organ dilated or eroded by 1-2 voxels, the whole map shifted
    by one slice in z, and a third of the voxels on a 3-voxel band around every boundary given the label of
    their in-plane neighbour (label swaps between touching organs, speckle on the organ surfaces)."""
    prediction = np.zeros_like(labels)
    for value in range(1, labels.max() + 1):
        grow = ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion
        prediction[grow(labels == value, iterations=int(rng.integers(1, 3)))] = value
    prediction[..., 1:] = prediction[..., :-1].copy()
    band = ndimage.maximum_filter(prediction, 3) != ndimage.minimum_filter(prediction, 3)
    neighbour = np.roll(prediction, 1, axis=int(rng.integers(0, 2)))
    swap = band & (rng.random(prediction.shape, dtype=np.float32) < 1 / 3)
    return np.asfortranarray(np.where(swap, neighbour, prediction))  # NIfTI's memory order, as read


def amos(degradation=degrade, seed: int = 0) -> Workload:
    volume = read_label_map(require(AMOS))
    pred = degradation(volume.array, np.random.default_rng(seed))
    name = "AMOS, " + ("the benchmark's degradation" if degradation is degrade else "a harder degradation")
    return Workload(name, pred, volume.array, volume.spacing, {n: i + 1 for i, n in enumerate(AMOS_CLASSES)})


def totalsegmentator() -> Workload:
    """TotalSegmentator's fast (3 mm) model against its full model on the same CT, every class either predicts."""
    ref = read_label_map(require(TOTALSEGMENTATOR / "seg_total.nii.gz"))
    pred = read_label_map(TOTALSEGMENTATOR / "seg_total_fast.nii.gz")
    names = json.loads((TOTALSEGMENTATOR / "classes.json").read_text())
    present = set(np.unique(ref.array)) | set(np.unique(pred.array))
    classes = {names[str(v)]: int(v) for v in sorted(present) if v}
    return Workload("TotalSegmentator fast vs full", pred.array, ref.array, ref.spacing, classes)


def upsampled(workload: Workload, factors: tuple[int, ...]) -> Workload:
    """Both label maps nearest-upsampled by whole `factors` per axis (each voxel repeated), kept Fortran-ordered
    as NIfTI arrays are; the spacing is kept, so the organs are larger in voxels and in mm."""
    def grow(labels: np.ndarray) -> np.ndarray:
        for axis, factor in enumerate(factors):
            labels = np.repeat(labels, factor, axis=axis)
        return np.asfortranarray(labels)

    voxels = int(np.prod(factors))
    return Workload(f"{workload.name}, {voxels} x voxels", grow(workload.pred), grow(workload.ref), workload.spacing,
                    workload.classes)


def split_classes(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """AMOS relabelled into `n_classes` classes with the same foreground: fewer classes than organs merge organs
    (value modulo n), more cut each organ into stripes along the first axis of its bounding box; Fortran-ordered
    like the NIfTI array it comes from."""
    organs = int(labels.max())
    if n_classes <= organs:
        return np.asfortranarray(np.where(labels > 0, (labels.astype(np.int32) - 1) % n_classes + 1, 0), labels.dtype)
    pieces = np.full(organs, n_classes // organs) + (np.arange(organs) < n_classes % organs)
    first = np.concatenate([[1], 1 + np.cumsum(pieces)[:-1]])
    result = np.zeros(labels.shape, np.uint16, order="F")
    for value, box in enumerate(ndimage.find_objects(labels), 1):
        if box is None:
            continue
        start, stop = box[0].start, box[0].stop
        stripe = (np.arange(start, stop) - start) * pieces[value - 1] // (stop - start)
        crop = labels[box] == value
        result[box][crop] = (first[value - 1] + np.broadcast_to(stripe[:, None, None], crop.shape))[crop]
    return result
