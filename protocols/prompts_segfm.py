"""The prompts of the CVPR 2025 SegFM challenge (JunMa11/CVPR-MedSegFMCompetition@748e862), rule by rule: its
3D box (`get_boxes.py`) and its refinement click (`CVPR25_iter_eval.py`). Pure functions.

The challenge's arrays are the NIfTI's in SimpleITK order (z, y, x): the transpose of ours (i, j, k). Every rule
is applied to that transposed view, so that whatever depends on the order of voxels (which component is largest
among equal sizes, which maximum the seeded draw picks) is what the script picks on the same volume; points and
boxes are given back in our order. Distances are in voxels, as the script's `distance_transform_edt` measures
them (no spacing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from protocols.boxes import bounding_box
from protocols.metrics import check_masks
from protocols.prompts import Box, Click
from protocols.prompts_distance import largest_component
from protocols.errors import BenchError

TIE_SEED = 42  # CVPR25_iter_eval.py:166: np.random.seed(42) before every draw
BOX_SHIFTS = 6  # get_boxes.py:51: np.random.randint(0, 6)
LARGE_ROI = 60_000_000  # CVPR25_iter_eval.py:208: a padded crop above this many voxels is halved for the EDT


@dataclass(frozen=True)
class SegFMBox:
    """The challenge's box of one target: the 2D box of its middle slice (`z_mid`, the middle of the slices it
    occupies) stretched over its z range, as an inclusive `Box` in our axis order; `shift` is the margin drawn."""

    box: Box
    z_mid: int
    shift: int

    def to_json(self) -> dict:
        return {"lo": list(self.box.lo), "hi": list(self.box.hi), "z_mid": self.z_mid, "shift": self.shift}


def challenge_view(array: np.ndarray) -> np.ndarray:
    """The array in the challenge's axis order (z, y, x): our (i, j, k) reversed, a view."""
    return np.transpose(array)


def draw_box_shift(rng: np.random.Generator) -> int:
    """The box margin in 256ths of the image side, uniform over 0..5 as get_boxes.py:51 draws it."""
    return int(rng.integers(BOX_SHIFTS))


def segfm_box(ref: np.ndarray, shift: int) -> SegFMBox:
    """get_boxes.py:66-90 (mask3D_to_bbox) with mask2D_to_bbox (44-61): z range of the target; on its middle
    occupied slice the tight 2D box widened by int(shift * W / 256) in x and int(shift * H / 256) in y, clipped."""
    check_masks(None, ref)
    if ref.ndim != 3 or not ref.any():
        raise BenchError("a SegFM box needs a non-empty 3D reference mask")
    view = challenge_view(ref)
    z = np.flatnonzero(view.any(axis=(1, 2)))
    z_mid = int(z[len(z) // 2])
    ys, xs = np.nonzero(view[z_mid])
    height, width = view.shape[1:]
    shift_x, shift_y = int(shift * width / 256), int(shift * height / 256)
    lo = (max(0, int(xs.min()) - shift_x), max(0, int(ys.min()) - shift_y), int(z[0]))
    hi = (min(width - 1, int(xs.max()) + shift_x), min(height - 1, int(ys.max()) + shift_y), int(z[-1]))
    return SegFMBox(Box(lo, hi), z_mid, int(shift))


def challenge_edt(component: np.ndarray) -> np.ndarray:
    """compute_edt (CVPR25_iter_eval.py:178-244): the Euclidean distance transform in voxels of a component,
    computed on its bounding box padded by max(25 %, 1 voxel) of zeros per axis; a padded box above 60 M voxels
    is max-pooled by 2 first and its distances repeated back (as the script's CPU path and block_reduce)."""
    from scipy.ndimage import distance_transform_edt  # here, not at the top: the CLI's start-up imports this module
    from skimage.measure import block_reduce

    crop = bounding_box(component)
    shape = np.array([s.stop - s.start for s in crop])
    padding = np.maximum((shape * 0.25).astype(int), 1)
    padded = np.pad(component[crop].astype(np.uint8), [(int(p), int(p)) for p in padding])
    large = padded.size > LARGE_ROI
    if large:
        padded = block_reduce(padded, block_size=(2,) * padded.ndim, func=np.max)
    distances = distance_transform_edt(padded)
    if large:
        for axis in range(distances.ndim):
            distances = distances.repeat(2, axis=axis)
    inner = tuple(slice(int(p), int(p + n)) for p, n in zip(padding, shape))
    out = np.zeros(component.shape, distances.dtype)
    out[crop] = distances[inner]
    return out


def draw_maximum(values: np.ndarray, tie_rng: np.random.RandomState) -> tuple[int, ...]:
    """sample_coord (CVPR25_iter_eval.py:164-175): one of the voxels holding the maximum, in C order, picked by
    `tie_rng.choice`; the script's draw is `np.random.RandomState(TIE_SEED)`, fresh for every click."""
    peaks = np.argwhere(values == values.max())
    return tuple(int(i) for i in peaks[tie_rng.choice(len(peaks))])


def segfm_click(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], rng: np.random.Generator) -> Click | None:
    """The refinement click of CVPR25_iter_eval.py:381-419: the largest 26-connected component of pred != ref
    (FN and FP as one mask), clicked at its distance maximum (voxels, padded crop; ties drawn by the seeded
    `sample_coord`), positive iff the reference holds that voxel. None when the prediction is perfect.
    `spacing` is checked but unused (the script measures in voxels); `rng` unused (the tie draw is seeded 42)."""
    check_masks(pred, ref, spacing)
    pred_view, ref_view = challenge_view(pred), challenge_view(ref)
    crop = bounding_box(pred_view != ref_view)
    if crop is None:
        return None
    component, _ = largest_component(pred_view[crop] != ref_view[crop])
    distances = challenge_edt(component) * component
    if not distances.any():  # CVPR25_iter_eval.py:403-406: sample the component itself
        distances = component
    local = draw_maximum(distances, np.random.RandomState(TIE_SEED))
    point = tuple(s.start + i for s, i in zip(crop, local))
    return Click(tuple(reversed(point)), bool(ref_view[point]))
