"""Click policies of the published interactive protocols: where the first click goes, and the next one.

First click (`FIRST_CLICKS`):
- ``random``: a uniformly random target voxel (SAM-Med3D paper, section 4.3; SAM-Med2D).
- ``center``: the interior point at the maximum of the spacing-aware distance transform of the largest
  target component (RITM, nnInteractive, CVPR'25 SegFM convention).

Next click from the error between prediction and reference (`NEXT_CLICKS`); FN = missed target voxels
(positive click), FP = wrongly included voxels (negative click):
- ``random_error``: uniform over FN | FP, positive iff the voxel is FN (SAM-Med3D and SAM-Med2D validation).
- ``fn_fp_coin``: FN or FP with probability 1/2 each (the non-empty one if only one is), then uniform.
- ``ritm``: distance transforms of FN and FP; the one with the larger maximum wins; uniform among its voxels
  farther than half that maximum from its border (SAM-Med3D's default evaluation clicks).
- ``center_largest_error``: the largest connected FN or FP component, at its distance-transform maximum.
- ``segfm_largest_error``: the CVPR'25 SegFM script's click (`protocols.prompts_segfm`): the largest component
  of FN | FP as one mask, at its distance maximum in voxels, ties drawn as the script draws them.

Distances are in millimetres (spacing-aware) and regions touching the image border are measured to the
border, as if the image were padded with background (the official code pads by one voxel). SAM-Med3D
measures in voxels of its 1.5 mm isotropic grid; in the native grid, millimetres are the equivalent.
Every function is pure: arrays in, a `Click` out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from protocols.prompts import Click
from protocols.boxes import bounding_box
from protocols.metrics import check_masks
from protocols.prompts_distance import distance_transform, largest_component
from protocols.prompts_segfm import segfm_click
from protocols.errors import BenchError

Spacing = Sequence[float]


def _offset(crop: tuple[slice, ...], local: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(s.start + i) for s, i in zip(crop, local))


def _uniform(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
    """A uniformly random True voxel of a non-empty mask."""
    flat = np.flatnonzero(mask)
    return tuple(int(i) for i in np.unravel_index(flat[rng.integers(flat.size)], mask.shape))


def _central_argmax(values: np.ndarray, spacing: Spacing) -> tuple[int, ...]:
    """Index of the maximum; on a plateau of equal maxima (a tube, a slab) the one nearest in mm to their mean
    position, so that a "centre" click lands mid-plateau rather than at its first corner. Deterministic."""
    peaks = np.argwhere(values == values.max())
    if len(peaks) > 1:
        offsets = (peaks - peaks.mean(axis=0)) * np.asarray(spacing, float)
        peaks = peaks[[int(np.argmin(np.einsum("ij,ij->i", offsets, offsets)))]]
    return tuple(int(i) for i in peaks[0])


def _centre(mask: np.ndarray, spacing: Spacing) -> tuple[int, ...]:
    """The distance-transform maximum of a non-empty mask, computed on its bounding box."""
    crop = bounding_box(mask)
    return _offset(crop, _central_argmax(distance_transform(np.ascontiguousarray(mask[crop]), spacing), spacing))


def random_click(ref: np.ndarray, spacing: Spacing, rng: np.random.Generator) -> Click:
    """First click: a uniformly random target voxel."""
    check_masks(None, ref, spacing)
    crop = _require_target(ref)
    return Click(_offset(crop, _uniform(ref[crop], rng)), True)


def center_click(ref: np.ndarray, spacing: Spacing, rng: np.random.Generator) -> Click:
    """First click: the distance maximum of the largest target component (`rng` unused: deterministic)."""
    check_masks(None, ref, spacing)
    crop = _require_target(ref)
    component, _ = largest_component(ref[crop])
    return Click(_offset(crop, _centre(component, spacing)), True)


def _require_target(ref: np.ndarray) -> tuple[slice, ...]:
    crop = bounding_box(ref)
    if crop is None:
        raise BenchError("cannot place a first click: the reference mask is empty")
    return crop


def _errors(pred: np.ndarray, ref: np.ndarray, spacing: Spacing):
    """(crop, FN, FP) on the bounding box of the error, or None when the prediction is perfect."""
    check_masks(pred, ref, spacing)
    crop = bounding_box(pred ^ ref)
    if crop is None:
        return None
    pred_crop, ref_crop = pred[crop], ref[crop]
    return crop, np.ascontiguousarray(ref_crop & ~pred_crop), np.ascontiguousarray(pred_crop & ~ref_crop)


def random_error_click(pred: np.ndarray, ref: np.ndarray, spacing: Spacing, rng: np.random.Generator) -> Click | None:
    """Uniform over FN | FP; positive iff the voxel is a false negative. None when there is no error."""
    found = _errors(pred, ref, spacing)
    if found is None:
        return None
    crop, fn, fp = found
    local = _uniform(fn | fp, rng)
    return Click(_offset(crop, local), bool(fn[local]))


def fn_fp_coin_click(pred: np.ndarray, ref: np.ndarray, spacing: Spacing, rng: np.random.Generator) -> Click | None:
    """FN or FP by a fair coin (the non-empty one if only one is), then a uniform voxel of it."""
    found = _errors(pred, ref, spacing)
    if found is None:
        return None
    crop, fn, fp = found
    heads = bool(rng.integers(2))
    positive = heads if fn.any() and fp.any() else bool(fn.any())
    return Click(_offset(crop, _uniform(fn if positive else fp, rng)), positive)


def _distance_in_box(mask: np.ndarray, spacing: Spacing) -> tuple[tuple[slice, ...] | None, np.ndarray]:
    crop = bounding_box(mask)
    if crop is None:
        return None, np.zeros((0,) * mask.ndim, np.float32)
    return crop, distance_transform(np.ascontiguousarray(mask[crop]), spacing)


def ritm_click(pred: np.ndarray, ref: np.ndarray, spacing: Spacing, rng: np.random.Generator) -> Click | None:
    """RITM / SAM-Med3D: the error type with the deeper interior; uniform where its distance > max / 2.

    Ties in the maximum go to the negative (FP) side, as `fn_max > fp_max` decides in the official code.
    """
    found = _errors(pred, ref, spacing)
    if found is None:
        return None
    crop, fn, fp = found
    fn_box, fn_distance = _distance_in_box(fn, spacing)
    fp_box, fp_distance = _distance_in_box(fp, spacing)
    fn_max = float(fn_distance.max(initial=0.0))
    fp_max = float(fp_distance.max(initial=0.0))
    positive = fn_max > fp_max
    box, distance, peak = (fn_box, fn_distance, fn_max) if positive else (fp_box, fp_distance, fp_max)
    local = _uniform(distance > peak / 2.0, rng)
    return Click(_offset(crop, _offset(box, local)), positive)


def center_largest_error_click(pred: np.ndarray, ref: np.ndarray, spacing: Spacing,
                               rng: np.random.Generator) -> Click | None:
    """The largest connected FN or FP component (FN on ties), clicked at its distance maximum (`rng` unused)."""
    found = _errors(pred, ref, spacing)
    if found is None:
        return None
    crop, fn, fp = found
    candidates = [(largest_component(mask), positive) for mask, positive in ((fn, True), (fp, False)) if mask.any()]
    (component, _), positive = max(candidates, key=lambda item: item[0][1])
    return Click(_offset(crop, _centre(component, spacing)), positive)


FirstClick = Callable[[np.ndarray, Spacing, np.random.Generator], Click]
NextClick = Callable[[np.ndarray, np.ndarray, Spacing, np.random.Generator], Click | None]

FIRST_CLICKS: dict[str, FirstClick] = {"random": random_click, "center": center_click}
NEXT_CLICKS: dict[str, NextClick] = {
    "random_error": random_error_click,
    "fn_fp_coin": fn_fp_coin_click,
    "ritm": ritm_click,
    "center_largest_error": center_largest_error_click,
    "segfm_largest_error": segfm_click,
}


def first_click(name: str, ref: np.ndarray, spacing: Spacing, rng: np.random.Generator) -> Click:
    """Dispatch to a first-click policy by name, with a clear error for unknown names."""
    if name not in FIRST_CLICKS:
        raise BenchError(f"unknown first-click policy {name!r}; choose from {sorted(FIRST_CLICKS)}")
    return FIRST_CLICKS[name](ref, spacing, rng)


def next_click(name: str, pred: np.ndarray, ref: np.ndarray, spacing: Spacing,
               rng: np.random.Generator) -> Click | None:
    """Dispatch to a next-click policy by name; None when the prediction is already perfect."""
    if name not in NEXT_CLICKS:
        raise BenchError(f"unknown click policy {name!r}; choose from {sorted(NEXT_CLICKS)}")
    return NEXT_CLICKS[name](pred, ref, spacing, rng)
