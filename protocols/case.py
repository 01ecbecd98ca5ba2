"""Score every class of one case in one pass: DSC and NSD per class, pure numpy.

Both sides of a case may be a label map (an integer array; a class is one or more label values) or per-class
binary masks (a mapping class name -> bool array, SAT's output layout: one file per class). The bounding boxes
of all labels are found in one pass over each label map; each class is then cropped to the union of its
prediction and reference boxes before any surface computation, so the cost of a class scales with its size,
not with the volume. Label values no class claims are not scored (a subset of classes can be scored, as with
nnU-Net's `-l`); `SegmentationIndex.unclaimed_labels` names them so the caller can say so.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from protocols.boxes import Crop, bounding_box, label_boxes
from protocols.class_metrics import (
    BASE_METRICS, DISTANCE_NAMES, LESION, extra_scores, image_diagonal_mm, parse_metrics,
)
from protocols.label_maps import class_mask, label_values
from protocols.lesions import Lesion, class_lesions
from protocols.metrics import check_spacing, check_tolerance, empty_score
from protocols.surfaces import SurfacePair
from protocols.errors import BenchError

Segmentation = np.ndarray | Mapping[str, np.ndarray]
ClassMap = Mapping[str, int | Sequence[int]]


@dataclass(frozen=True)
class ClassScore:
    """Scores of one class in one case, with what is needed to re-apply another empty-mask policy later."""

    class_name: str
    dsc: float
    nsd: float
    ref_empty: bool
    pred_empty: bool
    ref_voxels: int
    pred_voxels: int
    extra: Mapping[str, float | int | str] = field(default_factory=dict)
    lesions: tuple[Lesion, ...] = ()

    def as_row(self) -> dict:
        """The score as one flat row: the standard columns, then the extra metrics' columns (lesions apart)."""
        row = {k: v for k, v in vars(self).items() if k not in ("extra", "lesions")}
        return {**row, **self.extra}


def _merge_boxes(boxes: Sequence[Crop | None]) -> Crop | None:
    present = [box for box in boxes if box is not None]
    if len(present) < 2:
        return present[0] if present else None
    return tuple(slice(min(s.start for s in spans), max(s.stop for s in spans)) for spans in zip(*present))


class SegmentationIndex:
    """One side (prediction or reference) of a case with its label boxes found once: each class's bounding box
    and cropped mask, and the label values no class claims."""

    def __init__(self, segmentation: Segmentation):
        self.segmentation = segmentation
        self.is_label_map = isinstance(segmentation, np.ndarray)
        if self.is_label_map:
            self.label_boxes = label_boxes(segmentation)

    def unclaimed_labels(self, classes: ClassMap) -> list[int]:
        """Label values present in a label map that no class claims (always empty for per-class masks)."""
        if not self.is_label_map:
            return []
        known = {v for value in classes.values() for v in label_values(value)}
        return sorted(set(self.label_boxes) - known)

    def box(self, name: str, values: tuple[int, ...]) -> Crop | None:
        if not self.is_label_map:
            return bounding_box(self.segmentation[name])
        return _merge_boxes([self.label_boxes.get(v) for v in values])

    def mask(self, name: str, values: tuple[int, ...], box: Crop) -> np.ndarray:
        if not self.is_label_map:
            return self.segmentation[name][box]
        return class_mask(self.segmentation[box], values)


def _check_ndim(argument: str, array: np.ndarray) -> None:
    """Only 2D and 3D arrays have surfaces to score (a 1-D or 4-D array is a mistake, not a case)."""
    if array.ndim not in (2, 3):
        raise BenchError(f"{argument} must be 2D or 3D, got shape {' x '.join(map(str, array.shape))}")


def _check_inputs(pred: Segmentation, ref: Segmentation, spacing: Sequence[float], classes: ClassMap) -> None:
    shapes = set()
    for side_name, side in (("pred", pred), ("ref", ref)):
        if isinstance(side, np.ndarray):
            if not np.issubdtype(side.dtype, np.integer):
                raise BenchError(f"{side_name} label map must have an integer dtype, got {side.dtype}")
            _check_ndim(side_name, side)
            shapes.add(side.shape)
            continue
        for name in classes:
            if name not in side:
                raise BenchError(f"{side_name} has no mask for class {name!r}")
            if side[name].dtype != bool:
                raise BenchError(f"{side_name} mask {name!r} must be boolean, got {side[name].dtype}")
            _check_ndim(f"{side_name} mask {name!r}", side[name])
            shapes.add(side[name].shape)
    for name, value in classes.items():
        if min(label_values(value)) <= 0:
            raise BenchError(f"class {name!r} must map to positive label values, got {value!r}")
    if len(shapes) > 1:
        raise BenchError(f"pred and ref shapes differ: {sorted(shapes)}")
    check_spacing(spacing, len(next(iter(shapes))) if shapes else len(spacing))


def evaluate_case(
    pred: Segmentation | SegmentationIndex,
    ref: Segmentation | SegmentationIndex,
    spacing: Sequence[float],
    classes: ClassMap,
    tolerance_mm: float = 1.0,
    empty_policy: str = "sat",
    *,
    distances: bool = False,
    metrics: Sequence[str] = BASE_METRICS,
    ignore_label: int | None = None,
    lesion_classes: Collection[str] | None = None,
    lesion_options: Mapping[str, object] | None = None,
    instance_maps: bool = False,
) -> list[ClassScore]:
    """DSC and NSD@`tolerance_mm` for every class in `classes` (name -> label value or values), and the further
    `metrics` of `protocols.class_metrics` in each score's `extra` (`distances` adds HD95 and ASSD in mm), all
    read from one build of each class's surfaces.

    A class given several label values is their union (e.g. kidney = left + right kidney). A side may be given
    as a `SegmentationIndex` already built (to ask it for unclaimed labels without a second pass). With
    `ignore_label`, reference voxels of that value are left out of both sides (as nnU-Net's evaluator's
    `ignore_label`): set to background in the reference and in the prediction before anything is scored.
    With the ``lesion`` metric, the classes in `lesion_classes` (all when None) are also scored lesion by lesion
    (`protocols.lesions.lesion_scores` with `lesion_options`: connectivity, matcher, threshold), their lesion
    table in each score's `lesions`. With `instance_maps`, both sides are instance label maps of the one class
    in `classes` (0 background, every other value one lesion; the class's label values are not read): the class
    is every non-zero voxel, and its lesions are the given instances (`protocols.lesions.class_lesions`), not
    connected components.
    """
    check_tolerance(tolerance_mm)
    metrics = parse_metrics([*metrics, *(DISTANCE_NAMES if distances else ())])
    if ignore_label is not None:
        pred, ref = without_ignored(pred, ref, ignore_label, classes)
    _check_inputs(*(s.segmentation if isinstance(s, SegmentationIndex) else s for s in (pred, ref)), spacing, classes)
    instances = None
    if instance_maps:
        instances = _instance_maps(pred, ref, classes)
        pred, ref = ({name: side != 0 for name in classes} for side in instances)
    pred_side = pred if isinstance(pred, SegmentationIndex) else SegmentationIndex(pred)
    ref_side = ref if isinstance(ref, SegmentationIndex) else SegmentationIndex(ref)
    scores = []
    diagonal = image_diagonal_mm(_shape(ref_side), spacing)
    for name, value in classes.items():
        values = label_values(value)
        pred_box, ref_box = pred_side.box(name, values), ref_side.box(name, values)
        box = _merge_boxes([pred_box, ref_box])
        pred_mask = pred_side.mask(name, values, box) if pred_box is not None else None
        ref_mask = ref_side.mask(name, values, box) if ref_box is not None else None
        pred_voxels = int(np.count_nonzero(pred_mask)) if pred_mask is not None else 0
        ref_voxels = int(np.count_nonzero(ref_mask)) if ref_mask is not None else 0
        fixed = empty_score(pred_voxels == 0, ref_voxels == 0, empty_policy)
        overlap, pair = 0, None
        if fixed is None:
            overlap = int(np.count_nonzero(pred_mask & ref_mask))
            dsc = 2.0 * overlap / (pred_voxels + ref_voxels)
            pair = SurfacePair(pred_mask, ref_mask, spacing, tolerance_mm)
            nsd = pair.nsd()
        else:
            dsc = nsd = fixed
        extra = extra_scores(metrics, overlap, pred_voxels, ref_voxels, spacing, pair, diagonal, empty_policy)
        lesions = []
        if LESION in metrics and (lesion_classes is None or name in lesion_classes):
            if instances is not None:  # the given instances, cropped as the masks
                pred_mask, ref_mask = (side[box] if mask is not None else None
                                       for side, mask in zip(instances, (pred_mask, ref_mask)))
            row, lesions = class_lesions(pred_mask, ref_mask, spacing, tolerance_mm=tolerance_mm,
                                         empty_policy=empty_policy, **(lesion_options or {}))
            extra |= row
        scores.append(ClassScore(name, dsc, nsd, ref_voxels == 0, pred_voxels == 0, ref_voxels, pred_voxels,
                                 extra, tuple(lesions)))
    return scores


def _instance_maps(pred: Segmentation | SegmentationIndex, ref: Segmentation | SegmentationIndex,
                   classes: ClassMap) -> tuple[np.ndarray, np.ndarray]:
    """Both sides as instance label maps of one class (`evaluate_case`'s `instance_maps`), checked."""
    sides = tuple(s.segmentation if isinstance(s, SegmentationIndex) else s for s in (pred, ref))
    if len(classes) != 1:
        raise BenchError(f"instance maps hold the lesions of one class; the class map names {len(classes)} "
                         f"({', '.join(classes)})")
    for side_name, side in zip(("pred", "ref"), sides):
        if not isinstance(side, np.ndarray):
            raise BenchError(f"instance maps must be label maps; {side_name} is per-class masks")
        if side.size and side.min() < 0:
            raise BenchError(f"{side_name} instance map holds a negative value ({side.min()}): 0 is background, "
                             "every positive value one lesion")
    return sides


def without_ignored(
    pred: Segmentation | SegmentationIndex, ref: Segmentation | SegmentationIndex, ignore_label: int, classes: ClassMap
) -> tuple[Segmentation, np.ndarray]:
    """Both sides with the voxels where the reference label map holds `ignore_label` set to background."""
    pred, ref = (s.segmentation if isinstance(s, SegmentationIndex) else s for s in (pred, ref))
    if not isinstance(ref, np.ndarray):
        raise BenchError("an ignore label needs the reference as a label map, not per-class masks")
    if any(int(ignore_label) in label_values(value) for value in classes.values()):
        raise BenchError(f"the ignore label {ignore_label} is also a class label value")
    ignored = ref == ignore_label
    if not ignored.any():
        return pred, ref
    if isinstance(pred, np.ndarray):
        if pred.shape != ref.shape:
            raise BenchError(f"pred and ref shapes differ: {sorted({pred.shape, ref.shape})}")
        pred = np.where(ignored, 0, pred).astype(pred.dtype, copy=False)
    else:
        pred = {name: mask & ~ignored if mask.shape == ref.shape else mask for name, mask in pred.items()}
    return pred, np.where(ignored, 0, ref).astype(ref.dtype, copy=False)


def _shape(side: SegmentationIndex) -> tuple[int, ...]:
    segmentation = side.segmentation
    if side.is_label_map:
        return segmentation.shape
    return next(iter(segmentation.values())).shape if segmentation else ()
