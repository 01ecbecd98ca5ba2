"""Bounding boxes of all labels of a label map in one pass."""

from __future__ import annotations

import numpy as np

Box = tuple[slice, ...]


def _foreground_index(flat: np.ndarray) -> np.ndarray:
    """Flat indices of the non-zero entries of a contiguous 1-D integer array.

    The bytes are first scanned 8 at a time as 64-bit words, so that only words holding some foreground are
    looked at byte by byte: a label map is mostly background.
    """
    raw = flat.view(np.uint8)
    if raw.size % 8:
        raw = np.concatenate([raw, np.zeros(8 - raw.size % 8, np.uint8)])
    hot_words = np.flatnonzero(raw.view(np.uint64))
    rows, columns = np.nonzero(raw.reshape(-1, 8)[hot_words])
    index = (hot_words[rows] * 8 + columns) // flat.itemsize
    if flat.itemsize > 1 and index.size:  # several non-zero bytes of one voxel: keep the first
        index = index[np.concatenate(([True], index[1:] != index[:-1]))]
    return index


def label_boxes(label_map: np.ndarray) -> list[Box | None]:
    """Bounding box of every label value 1..max (None where absent), like `scipy.ndimage.find_objects`.

    One scan finds the foreground voxels; their coordinates are then histogrammed per (label, index) along
    each axis. On a typical CT label map (a few percent foreground) this is several times faster than
    find_objects, which visits every voxel once per dimension through a generic iterator.
    """
    fortran = label_map.flags.f_contiguous and not label_map.flags.c_contiguous
    flat = (label_map.T if fortran else np.ascontiguousarray(label_map)).reshape(-1)
    index = _foreground_index(flat)
    if index.size == 0:
        return []
    labels = flat[index].astype(np.intp)
    if flat.size < 2**31:  # 32-bit index arithmetic is faster
        index = index.astype(np.int32)
    n_labels = int(labels.max()) + 1
    coordinates = []
    for size in reversed(label_map.shape[::-1] if fortran else label_map.shape):
        coordinates.append(index % size)
        index = index // size
    if not fortran:
        coordinates.reverse()
    extents = []
    for axis, size in enumerate(label_map.shape):
        present = np.bincount(labels * size + coordinates[axis], minlength=n_labels * size).reshape(n_labels, size)
        present = present > 0
        extents.append((present.argmax(axis=1), size - present[:, ::-1].argmax(axis=1), present.any(axis=1)))
    return [
        tuple(slice(int(first[v]), int(stop[v])) for first, stop, _ in extents) if extents[0][2][v] else None
        for v in range(1, n_labels)
    ]
