"""Bounding boxes: of one mask (`bounding_box`), and of every label of a label map in one pass (`label_boxes`)."""

from __future__ import annotations

import numpy as np

Crop = tuple[slice, ...]


def _span(flags: np.ndarray) -> tuple[int, int] | None:
    hits = np.flatnonzero(flags)
    return (int(hits[0]), int(hits[-1]) + 1) if hits.size else None


def bounding_box(mask: np.ndarray) -> Crop | None:
    """Tight bounding box of the True voxels as slices, or None when the mask is empty.

    Reads each byte about once, in memory order (NIfTI arrays are usually Fortran-ordered: they are handled
    through their transpose): the first True voxel is found by an argmax that stops there, the last layer along
    the slowest axis holding one by scanning layers from the end until one does (each scan stops at its first
    True), and the layers between are OR-ed into one layer whose extents give the other axes.
    """
    if mask.flags.f_contiguous and not mask.flags.c_contiguous:
        box = bounding_box(mask.T)
        return None if box is None else box[::-1]
    if mask.size == 0:
        return None
    layers = np.ascontiguousarray(mask).reshape(mask.shape[0], -1)
    first = int(layers.reshape(-1).argmax())  # NumPy's boolean argmax stops at the first True
    if not layers.reshape(-1)[first]:
        return None
    start, stop = first // layers.shape[1], len(layers)
    while not layers[stop - 1].any():
        stop -= 1
    slab = np.logical_or.reduce(layers[start:stop], axis=0).reshape(mask.shape[1:])
    spans = [(start, stop)]
    for axis in range(slab.ndim):
        spans.append(_span(slab.any(axis=tuple(a for a in range(slab.ndim) if a != axis))))
    return tuple(slice(start, stop) for start, stop in spans)


# Above this many (label, index) bins per axis, labels are renumbered to 0..n-1 first, so that memory is
# O(voxels + distinct labels) whatever the label values (one voxel labelled 2**31 - 1 must not ask for terabytes).
_MAX_BINS = 1 << 22


def _rows_with_foreground(rows: np.ndarray) -> np.ndarray:
    """Whether each row of a C-contiguous 2-D array holds a non-zero value (read 8 bytes at a time if it can)."""
    if rows.shape[1] * rows.itemsize % 8 == 0:
        return rows.view(np.uint64).any(axis=1)
    return rows.any(axis=1)


def label_boxes(label_map: np.ndarray) -> dict[int, Crop]:
    """Bounding box of every non-zero label value present, like `scipy.ndimage.find_objects` but keyed by value.

    One pass over the label map in memory order finds the rows (along the fastest axis) holding foreground; only
    those rows are compared with their shifted selves to find the runs of equal labels, and a box is the extent
    of the starts and ends of its label's runs (a CT label map has tens of thousands of runs for millions of
    foreground voxels). find_objects instead visits every voxel once per dimension through a generic iterator,
    about 20x slower on a 512 x 512 x 82 map.
    """
    fortran = label_map.flags.f_contiguous and not label_map.flags.c_contiguous
    memory = label_map.T if fortran else np.ascontiguousarray(label_map)
    if memory.size == 0:
        return {}
    rows = memory.reshape(-1, memory.shape[-1])
    hot = np.flatnonzero(_rows_with_foreground(rows))
    if hot.size == 0:
        return {}
    width = rows.shape[1] + 1  # each hot row after one zero: a run boundary lies between two unequal neighbours
    flat = np.zeros(hot.size * width + 1, rows.dtype)
    flat[:-1].reshape(hot.size, width)[:, 1:] = rows[hot]
    boundary = np.flatnonzero(flat[1:] != flat[:-1])
    start, end = boundary[flat[boundary + 1] != 0] + 1, boundary[flat[boundary] != 0]  # first, last voxel of a run
    labels = flat[start]  # runs do not overlap: the i-th start and the i-th end are those of one run
    start_row, start_column = np.divmod(start, width)
    owners = [labels] * (memory.ndim - 1) + [np.concatenate([labels, labels])]
    coordinates = list(np.unravel_index(hot[start_row], memory.shape[:-1])) if memory.ndim > 1 else []
    coordinates.append(np.concatenate([start_column, end % width]) - 1)
    if fortran:
        owners.reverse()
        coordinates.reverse()
    values = None
    if (int(labels.max()) + 1) * max(label_map.shape) > _MAX_BINS:
        values, inverse = np.unique(labels, return_inverse=True)
        owners = [inverse if len(o) == len(labels) else np.concatenate([inverse, inverse]) for o in owners]
    n_labels = int(labels.max()) + 1 if values is None else len(values)
    extents = []
    for axis, size in enumerate(label_map.shape):
        bins = owners[axis].astype(np.intp) * size + coordinates[axis]
        present = np.bincount(bins, minlength=n_labels * size).reshape(n_labels, size) > 0
        extents.append((present.argmax(axis=1), size - present[:, ::-1].argmax(axis=1), present.any(axis=1)))
    return {
        int(values[v]) if values is not None else v: tuple(slice(int(first[v]), int(stop[v])) for first, stop, _ in extents)
        for v in range(n_labels) if extents[0][2][v] and (values is not None or v > 0)
    }
