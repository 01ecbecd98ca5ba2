"""The surfaces of a prediction and a reference, built once, and every surface metric read from them.

`SurfacePair` holds, for two non-empty masks already cropped to (at least) the bounding box of their union, the
dual-grid border vertices of each surface (`protocols.surfels`), their flat indices and surfel areas. NSD reads
them through the tolerance ball (a gather per offset, never a full distance map unless the ball is large); HD
and ASSD read the exact distance from every border vertex to the nearest border vertex of the other surface
(the distances a Euclidean distance transform of the border map gives, without a distance map of the crop),
computed on first use and kept: the few hundred shortest grid offsets are tried nearest first, one gather per
offset at the vertices not yet placed (most vertices lie within a few voxels of the other surface), and the
vertices farther than those offsets reach query a k-d tree of the other surface's vertices in mm.
So a case scored for NSD, HD95 and ASSD builds its surfaces once (STYLE.md: surface-distance's split between
`compute_surface_distances` and the cheap metrics read from it). Fortran-ordered masks (crops of NIfTI arrays) are
read through their C-ordered transposes, in memory order, and NSD sums areas as (vertices per neighbour code) x
(area of the code), so its value does not depend on the memory order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property, lru_cache

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from protocols.surfels import (
    border_vertices, neighbour_codes, offset_lengths, offsets_within, surfel_area_table, transposed_codes,
)
from protocols.errors import BenchError

# Above this many offsets in the tolerance ball, one exact distance transform is cheaper than shifted ORs; the
# offsets are not even enumerated when their bounding box is larger than _MAX_OFFSET_BOX (memory stays bounded by
# the crop for any tolerance).
_MAX_SHIFTS = 64
_MAX_OFFSET_BOX = 4096
# HD/ASSD try about this many of the shortest offsets by gathers (nearest first) before a k-d tree places the
# vertices still unplaced: on the AMOS label 97% of the non-shared border vertices are within them, and a gather
# costs a few ns where a tree query (with its share of the tree) costs about 1 us.
_DISTANCE_OFFSETS = 500


@lru_cache(maxsize=64)
def _tolerance_offsets(spacing: tuple[float, ...], tolerance_mm: float) -> tuple[np.ndarray | None, tuple[int, ...]]:
    """The integer offsets within the tolerance when few enough to gather one by one, else None (use an EDT);
    with the background margin per axis they need (cached: every class of a case asks for the same)."""
    if math.prod(2 * math.floor(tolerance_mm / s) + 1 for s in spacing) > _MAX_OFFSET_BOX:
        return None, (0,) * len(spacing)
    offsets = offsets_within(spacing, tolerance_mm)
    if len(offsets) > _MAX_SHIFTS:
        return None, (0,) * len(spacing)
    return offsets, tuple(int(m) for m in np.abs(offsets).max(axis=0))


@lru_cache(maxsize=64)
def _distance_offsets(spacing: tuple[float, ...]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """About `_DISTANCE_OFFSETS` integer offsets (all those within the radius of a ball holding that many grid
    points) grouped into shells of one length, the shells in increasing length: (offsets, the offset rows of each
    shell, each shell's length in mm). Cached: every class of a case asks for the same."""
    ball = math.pi if len(spacing) == 2 else 4 * math.pi / 3
    radius = (_DISTANCE_OFFSETS * math.prod(spacing) / ball) ** (1 / len(spacing))
    offsets = offsets_within(spacing, radius)
    lengths = offset_lengths(offsets, spacing)
    order = np.argsort(lengths, kind="stable")
    starts = np.flatnonzero(np.diff(lengths[order])) + 1
    return offsets, np.split(order, starts), lengths[order][np.concatenate([[0], starts])]


def _within(source: np.ndarray, targets: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """For each flat index in `targets`, whether a `source` border vertex lies at one of the `offsets`.

    `source` is a border map or a stack of them (the offsets move within its trailing axes). Each offset is one
    gather at the target vertices (`source` carries a background margin at least as wide as the ball, so no
    offset wraps around an axis).
    """
    if not source.flags.c_contiguous:
        raise BenchError("source border map must be C-contiguous (flat offsets assume C order)")
    strides = np.asarray(source.strides[source.ndim - offsets.shape[1]:]) // source.itemsize
    flat = source.reshape(-1)
    steps = offsets @ strides
    within = flat[targets + steps[0]]
    for step in steps[1:]:
        within |= flat[targets + step]
    return within


class SurfacePair:
    """Border vertices (flat indices into a padded dual grid) and surfel areas of a prediction and a reference.

    `borders` is the stack of the two border maps (pred's, then ref's): both masks are coded and searched by the
    same NumPy calls, as many per class whatever its size (with many small classes, the calls are the cost).

    `tolerance_mm` is the NSD tolerance the pair is built for: it sets the background margin the gathers need.
    With `transposed`, the grid (borders, indices, codes, offsets, `grid_spacing`) is that of the masks'
    transposes: Fortran-ordered masks, and crops of them (views, contiguous in neither order), are read in memory
    order.
    """

    def __init__(self, pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], tolerance_mm: float = 0.0):
        self.spacing = tuple(float(s) for s in spacing)
        self.tolerance_mm = float(tolerance_mm)
        offsets, margin = _tolerance_offsets(self.spacing, self.tolerance_mm)
        self.transposed = offsets is not None and pred.strides[0] < pred.strides[-1]
        if self.transposed:
            pred, ref, margin, offsets = pred.T, ref.T, margin[::-1], offsets[:, ::-1]
        self.offsets = offsets
        self.grid_spacing = self.spacing[::-1] if self.transposed else self.spacing
        codes = neighbour_codes((pred, ref), margin)
        self.borders = border_vertices(codes, len(self.spacing))
        found = np.flatnonzero(self.borders)  # pred's vertices, then ref's (one grid further)
        split = int(np.searchsorted(found, self.borders[0].size))
        self.indices = [found[:split], found[split:] - self.borders[0].size]
        found_codes = codes.reshape(-1)[found]
        self.codes = [found_codes[:split], found_codes[split:]]

    def _area_table(self) -> np.ndarray:
        """Surfel area per neighbour code of the grid (the masks' own codes, or their transposes')."""
        table = surfel_area_table(self.spacing)
        return table[transposed_codes(len(self.spacing))] if self.transposed else table

    @cached_property
    def areas(self) -> list[np.ndarray]:
        """Surfel area of each border vertex, in the order of `indices`."""
        table = self._area_table()
        return [table[c] for c in self.codes]

    def nsd(self) -> float:
        """Normalised Surface Dice at the pair's tolerance: the surface area of both masks lying within the
        tolerance of the other surface, over their total surface area (DeepMind's surface Dice)."""
        if self.offsets is None:  # a large ball: one exact distance transform per side, as surface-distance
            near_ref = (distance_transform_edt(~self.borders[1], sampling=self.spacing) <= self.tolerance_mm
                        ).reshape(-1)[self.indices[0]]
            near_pred = (distance_transform_edt(~self.borders[0], sampling=self.spacing) <= self.tolerance_mm
                         ).reshape(-1)[self.indices[1]]
            near = np.concatenate([near_ref, near_pred])
        else:  # each side's vertices looked up in the other's grid of the stack
            partners = np.concatenate([self.indices[0] + self.borders[0].size, self.indices[1]])
            near = _within(self.borders, partners, self.offsets)
        n_codes = 1 << (1 << len(self.spacing))
        counts = np.bincount(near * n_codes + np.concatenate(self.codes), minlength=2 * n_codes)
        near, total = counts[n_codes:], counts[:n_codes] + counts[n_codes:]
        if self.transposed:  # counts of the transposes' codes -> counts of the masks' own codes (an involution)
            own = transposed_codes(len(self.spacing))
            total, near = total[own], near[own]
        areas = surfel_area_table(self.spacing)
        return float((near @ areas) / (total @ areas))

    @cached_property
    def _nearest_both(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """`_nearest` of both sides (pred to ref, ref to pred): (distances, shell index) each, computed once."""
        return self._nearest(0, 1), self._nearest(1, 0)

    @property
    def distances(self) -> tuple[np.ndarray, np.ndarray]:
        """(mm from each pred border vertex to the reference surface, mm from each ref border vertex to the
        prediction surface), in the order of `indices`: exact nearest-vertex distances, computed once."""
        return tuple(distances for distances, _ in self._nearest_both)

    def _nearest(self, mine: int, other: int) -> tuple[np.ndarray, np.ndarray]:
        """mm from each border vertex of side `mine` to the nearest border vertex of side `other`, and the index
        of the shell of offsets that found it (the number of shells for the vertices the k-d tree placed, all
        farther than every shell).

        The other side's border map is padded by the offsets' reach, so a gather at a vertex plus an offset's flat
        step never wraps; the shells of offsets are tried in increasing length, and a vertex's distance is the
        length of the first shell with an offset that lands on the other surface. Lengths are summed term by term
        as scipy's distance transform does (`surfels.offset_lengths`), also for the vertices the k-d tree places.
        """
        offsets, shells, lengths = _distance_offsets(self.grid_spacing)
        source = self.borders[other]
        reach = np.abs(offsets).max(axis=0)
        padded = np.zeros([n + 2 * r for n, r in zip(source.shape, reach)], bool)
        padded[tuple(slice(r, r + n) for n, r in zip(source.shape, reach))] = source
        flat = padded.reshape(-1)
        steps = offsets @ np.asarray(padded.strides)  # bytes = elements: a bool map
        low = int(steps.min())
        coordinates = np.unravel_index(self.indices[mine], source.shape)
        at = sum((c + r) * stride for c, r, stride in zip(coordinates, reach, padded.strides)) + low
        distances = np.empty(len(at))
        shell_of = np.full(len(at), len(shells), np.intp)
        todo = np.arange(len(at))
        for number, (shell, length) in enumerate(zip(shells, lengths)):
            if not todo.size:
                break
            hit = flat[steps[shell[0]] - low:][at]
            for k in shell[1:]:
                hit |= flat[steps[k] - low:][at]
            if hit.any():
                placed = todo[hit]
                distances[placed], shell_of[placed] = length, number
                todo, at = todo[~hit], at[~hit]
        if todo.size:
            grid = np.asarray(self.grid_spacing)
            theirs = np.stack(np.unravel_index(self.indices[other], source.shape), axis=1)
            mine_points = np.stack([c[todo] for c in coordinates], axis=1)
            tree = cKDTree(theirs * grid, leafsize=64, balanced_tree=False, compact_nodes=False)
            nearest = tree.query(mine_points * grid)[1]
            distances[todo] = offset_lengths(mine_points - theirs[nearest], self.grid_spacing)
        return distances, shell_of

    def hausdorff(self, percent: float = 95.0) -> float:
        """The larger of the two area-weighted `percent` percentiles of the distances (HD95 by default;
        `surface_distance.compute_robust_hausdorff`)."""
        lengths = _distance_offsets(self.grid_spacing)[2]
        return max(_percentile(d, s, lengths, a, percent) for (d, s), a in zip(self._nearest_both, self.areas))

    def assd(self) -> float:
        """Average symmetric surface distance: the area-weighted mean distance over both surfaces together."""
        total = sum(float(np.sum(d * a)) for d, a in zip(self.distances, self.areas))
        return total / (float(self.areas[0].sum()) + float(self.areas[1].sum()))


def _percentile(distances: np.ndarray, shell_of: np.ndarray, lengths: np.ndarray, areas: np.ndarray,
                percent: float) -> float:
    """surface-distance's area-weighted percentile: the first distance (ascending) whose cumulative area
    fraction reaches `percent`, without a sort of the distances: the vertices a shell of offsets placed share its
    length, so the areas are summed per shell (`shell_of`, the shells in increasing `lengths`), and only the
    vertices the k-d tree placed (shell `len(lengths)`, farther than every shell) are sorted. Summing a shell's
    areas before the cumulative sum only changes its rounding, as the order of equal distances does (surface-
    distance orders them by area), not the distance found."""
    n_shells = len(lengths)
    counts = np.bincount(shell_of, minlength=n_shells + 1)
    by_shell = np.bincount(shell_of, weights=areas, minlength=n_shells + 1)[:n_shells]
    present = counts[:n_shells] > 0
    far = shell_of == n_shells
    order = np.argsort(distances[far])
    values = np.concatenate([lengths[present], distances[far][order]])
    cumulative = np.cumsum(np.concatenate([by_shell[present], areas[far][order]])) / np.sum(areas)
    index = int(np.searchsorted(cumulative, percent / 100.0))
    return float(values[min(index, len(values) - 1)])
