"""The metrics a case can be scored for beyond DSC and NSD, the row columns each adds, and their empty rules.

Names (as `bench evaluate --metrics` takes them): ``dsc`` and ``nsd`` (always scored), the overlap metrics of
`protocols.overlap` (``iou``, ``precision``, ``recall``, ``vol_diff``, ``rel_vol_error``; each also stores the
TP/FP/FN voxel counts), the surface distances ``hd95`` and ``assd`` (`protocols.surfaces`, from the same
surfaces NSD was read from), and ``lesion``: the lesion-wise columns of `protocols.lesions` (for the classes the
caller marks as lesions). Shorthands: ``overlap``, ``distances``, ``all``.

Distances of a class with an empty mask follow an explicit rule, recorded per row in ``distance_rule``:
- both empty: 0 mm under the ``"sat"`` empty policy (a perfect answer, as DSC 1), NaN under ``"nan"`` (left out
  of every mean and count);
- exactly one empty: the diagonal of the image in mm, the largest distance two points of the image can have
  (a documented worst value, as BraTS's 373.13 mm for its 240 x 240 x 155 mm grid), never an inf in a mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from protocols.lesions import FRACTION_LESION_METRICS, LESION_COLUMNS
from protocols.metrics import BASE_METRICS
from protocols.overlap import COUNT_COLUMNS, overlap_metrics
from protocols.surfaces import SurfacePair
from protocols.errors import BenchError

OVERLAP_NAMES = {"iou": "iou", "precision": "precision", "recall": "recall", "vol_diff": "vol_diff_mm3",
                 "rel_vol_error": "rel_vol_error"}
DISTANCE_NAMES = {"hd95": "hd95_mm", "assd": "assd_mm"}
LESION = "lesion"
SHORTHANDS = {"overlap": tuple(OVERLAP_NAMES), "distances": tuple(DISTANCE_NAMES),
              "all": (*BASE_METRICS, *OVERLAP_NAMES, *DISTANCE_NAMES, LESION)}
METRIC_NAMES = (*BASE_METRICS, *OVERLAP_NAMES, *DISTANCE_NAMES, LESION)
# Where lower is better (a best value is the smallest); volume errors are signed, so no best is marked for them.
LOWER_IS_BETTER = frozenset(DISTANCE_NAMES.values())
SIGNED = frozenset({"vol_diff_mm3", "rel_vol_error"})
DISTANCE_RULES = {"measured": "measured", "both_sat": "both empty -> 0", "both_nan": "both empty -> NaN",
                  "one": "one empty -> image diagonal"}


COLUMN_OF = {"dsc": "dsc", "nsd": "nsd", **OVERLAP_NAMES, **DISTANCE_NAMES,
             **{name: name for name in FRACTION_LESION_METRICS}}


def view_columns(choice: str) -> tuple[str, ...]:
    """The row columns a result view (`--metric`) shows: ``both`` is DSC and NSD, else the one metric named."""
    if choice == "both":
        return BASE_METRICS
    if choice not in COLUMN_OF:
        raise BenchError(f"unknown --metric {choice!r}; choose one of both, {', '.join(COLUMN_OF)}")
    return (COLUMN_OF[choice],)


def parse_metrics(names: Iterable[str]) -> tuple[str, ...]:
    """Metric names (shorthands expanded) in the canonical order, DSC and NSD always included."""
    asked = set(BASE_METRICS)
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        if name not in METRIC_NAMES and name not in SHORTHANDS:
            raise BenchError(f"unknown metric {name!r}; choose from {', '.join((*METRIC_NAMES, *SHORTHANDS))}")
        asked.update(SHORTHANDS.get(name, (name,)))
    return tuple(m for m in METRIC_NAMES if m in asked)


def metric_columns(metrics: Sequence[str]) -> list[str]:
    """The row columns beyond the standard ones that `metrics` add, in a fixed order."""
    columns = []
    if any(m in OVERLAP_NAMES for m in metrics):
        columns += [*COUNT_COLUMNS, *(OVERLAP_NAMES[m] for m in OVERLAP_NAMES if m in metrics)]
    distances = [DISTANCE_NAMES[m] for m in DISTANCE_NAMES if m in metrics]
    columns += distances + ["distance_rule"] if distances else []
    return columns + (list(LESION_COLUMNS) if LESION in metrics else [])


def image_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Length in mm of the diagonal of an image: the worst value of a surface distance."""
    return math.sqrt(sum((n * float(s)) ** 2 for n, s in zip(shape, spacing)))


def extra_scores(
    metrics: Sequence[str], tp: int, pred_voxels: int, ref_voxels: int, spacing: Sequence[float],
    pair: SurfacePair | None, diagonal_mm: float, empty_policy: str,
) -> dict:
    """The columns `metric_columns(metrics)` names for one class: `pair` is the class's surfaces (None when a
    mask is empty)."""
    scores: dict = {}
    if any(m in OVERLAP_NAMES for m in metrics):
        overlap = overlap_metrics(tp, pred_voxels - tp, ref_voxels - tp, math.prod(map(float, spacing)),
                                  empty_policy)
        scores.update({c: getattr(overlap, c) for c in COUNT_COLUMNS})
        scores.update({OVERLAP_NAMES[m]: getattr(overlap, OVERLAP_NAMES[m]) for m in OVERLAP_NAMES if m in metrics})
    distances = [m for m in DISTANCE_NAMES if m in metrics]
    if distances:
        if pair is not None:
            values, rule = {"hd95": pair.hausdorff, "assd": pair.assd}, "measured"
        elif pred_voxels == ref_voxels == 0:
            both = 0.0 if empty_policy == "sat" else float("nan")
            values, rule = {m: lambda: both for m in distances}, f"both_{'sat' if empty_policy == 'sat' else 'nan'}"
        else:
            values, rule = {m: lambda: diagonal_mm for m in distances}, "one"
        scores.update({DISTANCE_NAMES[m]: float(values[m]()) for m in distances})
        scores["distance_rule"] = DISTANCE_RULES[rule]
    return scores
