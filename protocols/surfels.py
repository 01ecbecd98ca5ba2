"""Surface elements ("surfels") of binary masks, exactly as DeepMind's surface-distance defines them.

A mask's surface lives on the dual grid: one vertex between every 2x2(x2) block of voxels. Each vertex gets a
neighbour code (one bit per corner voxel, outside the image counts as background), and the surface piece
through that block has a length (2D) or area (3D) that depends only on the code and the voxel spacing. Codes
and areas follow `surface_distance.compute_surface_distances`, so the Normalised Surface Dice built on them is
the one SAT reports; the test suite checks that equality against the package itself.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from skimage.measure import marching_cubes

from protocols.errors import BenchError


def _corner_shifts(ndim: int) -> list[tuple[tuple[int, ...], int]]:
    """(corner offset, bit shift) pairs: the lowest corner is the highest bit (128 in 3D, 8 in 2D)."""
    corners = list(itertools.product((0, 1), repeat=ndim))
    top_bit = len(corners) - 1
    return [(corner, top_bit - i) for i, corner in enumerate(corners)]


def neighbour_codes(masks: Sequence[np.ndarray], margin: Sequence[int] | int = 0) -> np.ndarray:
    """Neighbour code of every dual-grid vertex of each of `masks` (all of one shape), C-contiguous, of shape
    `(len(masks), *(shape + 2 + 2 * margin))`: the masks of a pair are coded in one go, not one call each.

    Vertex `i` sits between voxels `i - 1` and `i`, so objects touching the image border get a closed surface;
    `margin` adds that many background vertices (code 0) on both sides of each axis, and one more background
    vertex ends each axis (the grid is that of the padded mask, so that every step below is one pass over a flat
    array, with no per-row loop). The code is built one axis at a time (last axis first): each step doubles the
    bits per vertex by pairing every vertex with its upper neighbour along that axis, `stride` bytes further in
    the flat array, so the lowest corner ends in the highest bit. A vertex of the last layer of an axis pairs
    with the first (background) voxel of the next row, of the next mask, or with nothing, so its code stays 0.
    """
    shape = masks[0].shape
    margin = [int(margin)] * len(shape) if np.isscalar(margin) else [int(m) for m in margin]
    padded = np.zeros([len(masks)] + [n + 2 + 2 * m for n, m in zip(shape, margin)], np.uint8)
    inside = tuple(slice(1 + m, 1 + m + n) for n, m in zip(shape, margin))
    for grid, mask in zip(padded, masks):
        grid[inside] = mask
    codes, spare = padded.reshape(-1), np.empty(padded.size, np.uint8)
    bits = 1
    for stride in reversed(padded.strides[1:]):
        np.multiply(codes, np.uint8(1 << bits), out=spare)  # a multiply: NumPy's uint8 shift is not vectorised
        np.bitwise_or(spare[:-stride], codes[stride:], out=spare[:-stride])
        codes, spare = spare, codes
        bits *= 2
    return codes.reshape(padded.shape)


@lru_cache(maxsize=2)
def transposed_codes(ndim: int) -> np.ndarray:
    """For each neighbour code of a transposed mask (`mask.T`), the code of the same vertex in `mask` itself.

    Scoring a Fortran-ordered mask through its (C-ordered) transpose reads memory in order; counts of codes
    found on the transpose are mapped back through this table, so the numbers are those of the mask itself.
    """
    table = np.zeros(1 << (1 << ndim), np.intp)
    for code in range(len(table)):
        cube = _corner_values(code, ndim).transpose()
        table[code] = sum(int(cube[corner]) << shift for corner, shift in _corner_shifts(ndim))
    table.flags.writeable = False
    return table


def border_vertices(codes: np.ndarray, ndim: int) -> np.ndarray:
    """Dual-grid vertices the surface passes through: some but not all corners are foreground (`codes` of an
    `ndim`-dimensional grid, or of a stack of them)."""
    full = (1 << (1 << ndim)) - 1
    return (codes - np.uint8(1)) < np.uint8(full - 1)  # uint8 wrap-around: code 0 becomes 255


def _corner_values(code: int, ndim: int) -> np.ndarray:
    cube = np.zeros((2,) * ndim)
    for corner, shift in _corner_shifts(ndim):
        cube[corner] = (code >> shift) & 1
    return cube


@lru_cache(maxsize=1)
def _marching_cubes_triangles() -> tuple[np.ndarray, np.ndarray]:
    """Triangles of every 3D neighbour code in voxel units, and the code each triangle belongs to.

    A configuration and its complement have the same surface; the one with at most four foreground corners is
    triangulated (scikit-image's Lorensen tables add spurious triangles for some complements).
    """
    triangles, owners = [], []
    for code in range(1, 255):
        source = 255 - code if bin(code).count("1") > 4 else code
        verts, faces, _, _ = marching_cubes(_corner_values(source, 3), level=0.5, method="lorensen")
        triangles.append(verts.astype(np.float64)[faces])
        owners.append(np.full(len(faces), code))
    return np.concatenate(triangles), np.concatenate(owners)


def _marching_cubes_areas(spacing: tuple[float, float, float]) -> np.ndarray:
    """Area in mm^2 of the marching-cubes surface through a 2x2x2 block, for each of the 256 codes."""
    triangles, owners = _marching_cubes_triangles()
    corners = triangles * np.asarray(spacing, np.float64)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return np.bincount(owners, weights=0.5 * np.linalg.norm(normals, axis=1), minlength=256)


def _marching_squares_length(code: int, spacing: tuple[float, float]) -> float:
    """Length in mm of the marching-squares contour through one 2x2 block (segments join edge midpoints)."""
    corners = [corner for corner, shift in _corner_shifts(2) if (code >> shift) & 1]
    diagonal = 0.5 * math.sqrt(spacing[0] ** 2 + spacing[1] ** 2)
    if len(corners) in (1, 3):
        return diagonal
    if len(corners) != 2:
        return 0.0
    (a0, a1), (b0, b1) = corners
    if a0 != b0 and a1 != b1:  # opposite corners: two separate cut-offs
        return 2 * diagonal
    return spacing[1] if a0 == b0 else spacing[0]


@lru_cache(maxsize=64)
def surfel_area_table(spacing: tuple[float, ...]) -> np.ndarray:
    """Length (2D) or area (3D) of the surface element for each neighbour code, for one voxel spacing."""
    if len(spacing) == 2:
        table = [_marching_squares_length(code, spacing) for code in range(16)]
    elif len(spacing) == 3:
        table = _marching_cubes_areas(spacing)
    else:
        raise BenchError(f"spacing must have 2 or 3 elements, got {spacing!r}")
    table = np.asarray(table, np.float64)
    table.flags.writeable = False
    return table


@lru_cache(maxsize=64)
def offsets_within(spacing: tuple[float, ...], tolerance_mm: float) -> np.ndarray:
    """Integer offsets whose length in mm is <= tolerance, as rows of an (n, ndim) array.

    Lengths are computed term by term in the order scipy's `distance_transform_edt` uses, so that a distance
    exactly equal to the tolerance is classified the same way as in surface-distance.
    """
    radii = [int(math.floor(tolerance_mm / s)) for s in spacing]
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in radii], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    offsets = offsets[offset_lengths(offsets, spacing) <= tolerance_mm]
    offsets.flags.writeable = False
    return offsets


def offset_lengths(offsets: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Length in mm of each integer offset (rows of an (n, ndim) array), its terms summed in the order scipy's
    `distance_transform_edt` sums them."""
    steps = [offsets[:, axis].astype(np.float64) * np.float64(s) for axis, s in enumerate(spacing)]
    squared = steps[0] * steps[0]
    for step in steps[1:]:
        squared = squared + step * step
    return np.sqrt(squared)
