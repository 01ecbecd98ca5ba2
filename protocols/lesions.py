"""Lesion-wise scores of one class in one case: lesions found and missed, matched-lesion quality, panoptic quality.

Lesions are the instances of a class: the connected components of its mask (`connected_lesions`; connectivity
26 in 3D and 8 in 2D by default, i.e. voxels sharing a face, an edge or a corner; 6 / 4 for faces only, as SegFM's
`CVPR25_text_eval.py` labels predictions with cc3d connectivity 6), or instance label maps given as they are.
Reference and predicted lesions are matched one to one by IoU at a threshold (inclusive, 0.5 by default):
- ``hungarian``: the assignment with the most matches at or above the threshold, then the largest total IoU
  (scipy's `linear_sum_assignment` on SegFM's cost, -[IoU >= t] - IoU / (2 min(n_ref, n_pred)); panoptica's
  `MaxBipartiteMatching`);
- ``greedy``: pairs taken by decreasing IoU while both are free (panoptica's `NaiveThresholdMatching`).
Above a threshold of 0.5 every lesion has at most one candidate and both give the same matches.

From the matches: TP (matched), FP (unmatched predicted) and FN (unmatched reference) lesion counts; lesion
precision TP / n_pred, recall TP / n_ref, F1 2 TP / (2 TP + FP + FN); the DSC, IoU and NSD of each matched pair
and their means; panoptic quality RQ = F1, SQ = mean IoU of the matches, PQ = SQ x RQ (Kirillov et al. 2019); and
for each reference-lesion volume bin (< 100 mm^3, 100-1000 mm^3, > 1000 mm^3) how many lesions there are and how
many were found (the detection rate by size, pooled over cases and classes by `detection_by_size`).

Empty rules: no lesion on either side scores 1.0 under the ``"sat"`` empty policy (NaN under ``"nan"``) for
precision, recall, F1, RQ, SQ, PQ and the matched-lesion means; otherwise a ratio with a zero denominator is 0.0
(precision without predicted lesions, recall without reference lesions), and with no match the matched-lesion
means and SQ are 0.0, as SegFM scores the DSC of true positives ("dsc_tp = 0").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from protocols.metrics import empty_score
from protocols.surfaces import SurfacePair
from protocols.errors import BenchError

MATCHERS = ("hungarian", "greedy")
SIZE_BINS_MM3 = (100.0, 1000.0)
SIZE_BINS = ("lt100", "100_1000", "gt1000")
LESION_COLUMNS = (
    "lesion_ref", "lesion_pred", "lesion_tp", "lesion_fp", "lesion_fn", "lesion_precision", "lesion_recall",
    "lesion_f1", "lesion_dsc", "lesion_nsd", "rq", "sq", "pq",
    *(f"{kind}_{name}" for name in SIZE_BINS for kind in ("lesions", "found")),
)
FRACTION_LESION_METRICS = ("lesion_precision", "lesion_recall", "lesion_f1", "lesion_dsc", "lesion_nsd", "rq",
                           "sq", "pq")


@dataclass(frozen=True)
class Lesion:
    """One lesion of the lesion table: its side (``ref`` or ``pred``), number on that side (1..n), size, size
    bin, and the partner it was matched to on the other side (0: none) with their IoU, DSC and NSD."""

    side: str
    lesion: int
    voxels: int
    volume_mm3: float
    size_bin: str
    partner: int
    iou: float
    dsc: float
    nsd: float


def connectivity_structure(ndim: int, connectivity: int) -> np.ndarray:
    """scipy's structuring element for a connectivity given as a neighbour count (6/18/26 in 3D, 4/8 in 2D)."""
    ranks = {2: {4: 1, 8: 2}, 3: {6: 1, 18: 2, 26: 3}}[ndim]
    if connectivity not in ranks:
        raise BenchError(f"connectivity must be one of {sorted(ranks)} in {ndim}D, got {connectivity}")
    return ndimage.generate_binary_structure(ndim, ranks[connectivity])


def connected_lesions(mask: np.ndarray, connectivity: int | None = None) -> np.ndarray:
    """Instance map of a boolean mask: its connected components numbered 1..n (scan order), 0 the background."""
    connectivity = connectivity or (26 if mask.ndim == 3 else 8)
    labels, _ = ndimage.label(mask, structure=connectivity_structure(mask.ndim, connectivity))
    return labels


def sequential_instances(instances: np.ndarray) -> np.ndarray:
    """Instance values renumbered 1..n in increasing order of value (as skimage's `relabel_sequential`); memory
    bounded by the map whatever the values (a lesion labelled 2**31 - 1 asks for no lookup table that large)."""
    values = np.unique(instances)
    values = values[values != 0]
    return np.where(instances != 0, np.searchsorted(values, instances) + 1, 0)


def overlaps(ref: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Voxel overlap of every (reference, predicted) instance pair, background included: (n_ref+1, n_pred+1)."""
    n_ref, n_pred = int(ref.max(initial=0)), int(pred.max(initial=0))
    pairs = ref.astype(np.int64).ravel() * (n_pred + 1) + pred.astype(np.int64).ravel()
    return np.bincount(pairs, minlength=(n_ref + 1) * (n_pred + 1)).reshape(n_ref + 1, n_pred + 1)


def match(iou: np.ndarray, threshold: float = 0.5, matcher: str = "hungarian") -> list[tuple[int, int]]:
    """Matched (reference, predicted) index pairs (0-based rows and columns of `iou`), IoU >= `threshold`."""
    if matcher not in MATCHERS:
        raise BenchError(f"matcher must be one of {MATCHERS}, got {matcher!r}")
    if not 0 < threshold <= 1:
        raise BenchError(f"the matching IoU threshold must lie in (0, 1], got {threshold}")
    if iou.size == 0:
        return []
    if matcher == "hungarian":
        cost = -(iou >= threshold).astype(float) - iou / (2 * min(iou.shape))
        rows, columns = linear_sum_assignment(cost)
        return sorted((int(r), int(c)) for r, c in zip(rows, columns) if iou[r, c] >= threshold)
    order = np.argsort(-iou, axis=None, kind="stable")
    taken_ref, taken_pred, pairs = set(), set(), []
    for r, c in zip(*np.unravel_index(order, iou.shape)):
        if iou[r, c] < threshold:
            break
        if r not in taken_ref and c not in taken_pred:
            taken_ref.add(r), taken_pred.add(c)
            pairs.append((int(r), int(c)))
    return sorted(pairs)


def _size_bin(volume_mm3: float) -> str:
    """< 100 mm^3, 100-1000 mm^3 (both inclusive), > 1000 mm^3."""
    small, large = SIZE_BINS_MM3
    return SIZE_BINS[0] if volume_mm3 < small else SIZE_BINS[1] if volume_mm3 <= large else SIZE_BINS[2]


def class_lesions(
    pred: np.ndarray | None, ref: np.ndarray | None, spacing: Sequence[float], *, connectivity: int | None = None,
    **options,
) -> tuple[dict[str, float | int], list[Lesion]]:
    """`instance_scores` of one class of a case. Each side is a boolean mask (its lesions are its connected
    components at `connectivity`), an instance label map (an integer array: its lesions are its non-zero values,
    renumbered by `sequential_instances`), or None when empty (no mask built)."""
    if pred is None and ref is None:
        return _summary(0, 0, [], [], options.get("empty_policy", "sat")), []
    shape = (pred if pred is not None else ref).shape

    def instances(side: np.ndarray | None) -> np.ndarray:
        if side is None:
            return np.zeros(shape, np.int64)
        return connected_lesions(side, connectivity) if side.dtype == bool else sequential_instances(side)

    return instance_scores(instances(pred), instances(ref), spacing, **options)


def lesion_scores(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], *, connectivity: int | None = None,
    **options,
) -> tuple[dict[str, float | int], list[Lesion]]:
    """`instance_scores` of two boolean masks, each lesion a connected component."""
    return instance_scores(connected_lesions(pred, connectivity), connected_lesions(ref, connectivity), spacing,
                           **options)


def instance_scores(
    pred_labels: np.ndarray, ref_labels: np.ndarray, spacing: Sequence[float], *, threshold: float = 0.5,
    matcher: str = "hungarian", tolerance_mm: float = 1.0, empty_policy: str = "sat",
) -> tuple[dict[str, float | int], list[Lesion]]:
    """(the `LESION_COLUMNS` of one class, its lesion table) from two instance label maps numbered 1..n
    (`connected_lesions`, or `sequential_instances` of any instance map)."""
    if pred_labels.shape != ref_labels.shape:
        raise BenchError(f"pred and ref shapes differ: {pred_labels.shape} vs {ref_labels.shape}")
    overlap = overlaps(ref_labels, pred_labels)
    ref_sizes, pred_sizes = overlap.sum(axis=1)[1:], overlap.sum(axis=0)[1:]
    inner = overlap[1:, 1:].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inner / (ref_sizes[:, None] + pred_sizes[None, :] - inner)
    pairs = match(np.nan_to_num(iou), threshold, matcher)
    voxel_mm3 = math.prod(map(float, spacing))
    partner_of_ref, partner_of_pred, quality = {}, {}, {}
    ref_boxes, pred_boxes = ndimage.find_objects(ref_labels), ndimage.find_objects(pred_labels)
    for r, p in pairs:
        partner_of_ref[r], partner_of_pred[p] = p, r
        box = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(ref_boxes[r], pred_boxes[p]))
        pair_ref, pair_pred = ref_labels[box] == r + 1, pred_labels[box] == p + 1
        nsd = SurfacePair(pair_pred, pair_ref, spacing, tolerance_mm).nsd()
        quality[r] = (float(iou[r, p]), 2.0 * inner[r, p] / (ref_sizes[r] + pred_sizes[p]), nsd)
    nan = float("nan")
    table = [Lesion("ref", r + 1, int(n), n * voxel_mm3, _size_bin(n * voxel_mm3), partner_of_ref.get(r, -1) + 1,
                    *quality.get(r, (nan, nan, nan))) for r, n in enumerate(ref_sizes)]
    table += [Lesion("pred", p + 1, int(n), n * voxel_mm3, _size_bin(n * voxel_mm3), partner_of_pred.get(p, -1) + 1,
                     *quality.get(partner_of_pred.get(p, -1), (nan, nan, nan))) for p, n in enumerate(pred_sizes)]
    return _summary(len(ref_sizes), len(pred_sizes), [quality[r] for r, _ in pairs], table, empty_policy), table


def _summary(n_ref: int, n_pred: int, matched: list[tuple[float, float, float]], table: list[Lesion],
             empty_policy: str) -> dict[str, float | int]:
    tp = len(matched)
    row: dict[str, float | int] = {"lesion_ref": n_ref, "lesion_pred": n_pred, "lesion_tp": tp,
                                   "lesion_fp": n_pred - tp, "lesion_fn": n_ref - tp}
    if n_pred == n_ref == 0:
        row |= dict.fromkeys(FRACTION_LESION_METRICS, empty_score(True, True, empty_policy))
    else:
        f1 = 2 * tp / (n_ref + n_pred)
        means = np.mean(matched, axis=0) if matched else np.zeros(3)
        row |= {"lesion_precision": tp / n_pred if n_pred else 0.0, "lesion_recall": tp / n_ref if n_ref else 0.0,
                "lesion_f1": f1, "lesion_dsc": float(means[1]), "lesion_nsd": float(means[2]), "rq": f1,
                "sq": float(means[0]), "pq": float(means[0]) * f1}
    for name in SIZE_BINS:
        ref_lesions = [lesion for lesion in table if lesion.side == "ref" and lesion.size_bin == name]
        row[f"lesions_{name}"] = len(ref_lesions)
        row[f"found_{name}"] = sum(lesion.partner > 0 for lesion in ref_lesions)
    return row


def detection_by_size(rows: pd.DataFrame, by: Sequence[str] = ("method",)) -> pd.DataFrame:
    """Detection rate by reference-lesion volume bin, pooled over the rows' cases and lesion classes: one row per
    `by` group and bin with ``lesions``, ``found`` and ``rate`` = found / lesions (NaN without lesions)."""
    parts = []
    for name in SIZE_BINS:
        totals = rows.groupby(list(by), sort=True)[[f"lesions_{name}", f"found_{name}"]].sum()
        parts.append(pd.DataFrame({"size_bin": name, "lesions": totals[f"lesions_{name}"].astype(int),
                                   "found": totals[f"found_{name}"].astype(int)}, index=totals.index))
    table = pd.concat(parts).reset_index()
    table["rate"] = table["found"] / table["lesions"].where(table["lesions"] > 0)
    order = {name: i for i, name in enumerate(SIZE_BINS)}
    return table.sort_values([*by, "size_bin"], key=lambda c: c.map(order) if c.name == "size_bin" else c,
                             kind="stable").reset_index(drop=True)
