"""Per-slice prompts for slice-wise (2D) models on 3D volumes, as in SAM-Med3D's comparison with SAM/SAM-Med2D.

Prompts come back in 3D voxel coordinates (the slice index sits on `axis`), so the 2D-to-3D adapter
(`models.adapters.SliceWise`) routes each one to its slice; a per-slice box is a 3D box one slice thick.
"N, 3N, 5N points" means k = 1, 3, 5 points on each of the N slices that contain the target.
"""

from __future__ import annotations

import numpy as np

from protocols.prompts import Box, Click
from protocols.prompts_boxes import box_from_mask
from protocols.errors import BenchError


def target_slices(ref: np.ndarray, axis: int) -> list[int]:
    """Indices of the slices along `axis` that contain target voxels."""
    others = tuple(a for a in range(ref.ndim) if a != axis)
    return [int(i) for i in np.flatnonzero(ref.any(axis=others))]


def _slice_index(axis: int, index: int, ndim: int) -> tuple:
    where = [slice(None)] * ndim
    where[axis] = index
    return tuple(where)


def _lift(point: tuple[int, ...], axis: int, index: int) -> tuple[int, ...]:
    return tuple(point[:axis]) + (index,) + tuple(point[axis:])


def _pick(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
    flat = np.flatnonzero(mask)
    return tuple(int(i) for i in np.unravel_index(flat[rng.integers(flat.size)], mask.shape))


def slice_points(ref: np.ndarray, axis: int, k: int, rng: np.random.Generator, *,
                 ring_width: int = 5) -> tuple[Click, ...]:
    """k points on every target slice, alternating positive (inside) and negative (outside).

    Positives are uniform over the slice's target; negatives uniform over a ring up to `ring_width` pixels
    outside it (the whole slice background when the ring is cut off by the image edge and empty). The first
    point of a slice is always positive, so k = 1 gives SAM-Med3D's "N points".
    """
    if k < 1 or ring_width < 1:
        raise BenchError(f"k and ring_width must be >= 1, got k={k}, ring_width={ring_width}")
    from scipy.ndimage import binary_dilation  # here, not at the top: the CLI's start-up imports this module

    clicks = []
    for index in target_slices(ref, axis):
        target = ref[_slice_index(axis, index, ref.ndim)]
        ring = binary_dilation(target, iterations=ring_width) & ~target
        outside = ring if ring.any() else ~target
        for n in range(k):
            positive = n % 2 == 0 or not outside.any()
            clicks.append(Click(_lift(_pick(target if positive else outside, rng), axis, index), positive))
    return tuple(clicks)


def slice_boxes(ref: np.ndarray, axis: int, *, source: str = "slice", jitter: int = 0,
                rng: np.random.Generator | None = None) -> tuple[Box, ...]:
    """One box per target slice: the slice mask's tight box (`source="slice"`) or the 3D box's footprint
    (`source="volume"`), each optionally jittered in-plane by up to `jitter` pixels."""
    if source not in ("slice", "volume"):
        raise BenchError(f"source must be 'slice' or 'volume', got {source!r}")
    slices = target_slices(ref, axis)
    footprint = ref.any(axis=axis)
    boxes = []
    for index in slices:
        plane = ref[_slice_index(axis, index, ref.ndim)] if source == "slice" else footprint
        box = box_from_mask(plane, jitter=jitter, rng=rng)
        boxes.append(Box(_lift(box.lo, axis, index), _lift(box.hi, axis, index)))
    return tuple(boxes)


def slice_round(pred: np.ndarray, ref: np.ndarray, axis: int, spacing, click_for) -> tuple[Click, ...]:
    """One click on every target slice along `axis` whose prediction is not yet perfect (SAM-Med3D's 2D
    baseline: round k gives the k-th point of each slice). `click_for(pred2d, ref2d, spacing2d)` makes a slice's
    click (None when that slice is perfect); slices are visited in index order, so one generator is enough."""
    plane_spacing = tuple(s for a, s in enumerate(spacing) if a != axis)
    clicks = []
    for index in target_slices(ref, axis):
        where = _slice_index(axis, index, ref.ndim)
        click = click_for(pred[where], ref[where], plane_spacing)
        if click is not None:
            clicks.append(Click(_lift(click.point, axis, index), click.positive))
    return tuple(clicks)
