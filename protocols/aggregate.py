"""Macro averages of per-case scores, following the SAT paper's evaluation protocols (section 8.3).

Every function is pure: per-case rows in, tables out. The rows first get three columns from `attach_terms`:
``method`` (what is compared: the run name), ``key`` (the unified class, modality included: ``ct_liver`` and
``mri_liver`` are different classes) and ``group`` (the class's region group: its region, ``lesion`` for abnormal
classes, ``whole body`` for classes in several regions). Then:

- a *cell* is one (method, dataset, class): the mean over its cases (NaN scores, e.g. under the "nan" empty-mask
  policy, are left out of the mean);
- a *class* score is the mean of its cells over datasets (macro, not pooled over cases);
- a *region* score is the mean of the class scores of its group; the *overall* score the mean over all classes;
- a *dataset* score is the mean of its cells over classes.

Every aggregate carries its counts (cases, datasets, classes) so partial coverage stays visible. Every metric a
row holds (``protocols.class_metrics``: IoU, HD95, ...) is averaged the same way when asked for by `metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from protocols.lesions import FRACTION_LESION_METRICS
from protocols.metrics import EMPTY_POLICIES
from protocols.errors import BenchError

METRICS = ("dsc", "nsd")
# Extra metrics re-scored by an empty policy like DSC (fractions, and the lesion metrics of lesion-wise rows) or
# by the distances' rule.
FRACTION_METRICS = ("iou", "precision", "recall")
DISTANCE_METRICS = ("hd95_mm", "assd_mm")
LEVELS = ("class", "region", "dataset", "overall")
LESION = "lesion"
WHOLE_BODY = "whole body"
UNASSIGNED = "unassigned"
OVERALL = "all"
CELL_KEYS = ["method", "dataset", "key", "group"]
SCORE_COLUMNS = ["method", "level", "key", "group", *METRICS, "cases", "datasets", "classes"]


def region_group(regions: Sequence[str], abnormal: bool) -> str:
    """The region group a class is averaged in: lesion classes apart, multi-region classes as whole body."""
    if abnormal:
        return LESION
    regions = tuple(regions)
    if len(regions) > 1:
        return WHOLE_BODY
    return regions[0] if regions else UNASSIGNED


def attach_terms(rows: pd.DataFrame, terms: pd.DataFrame, key_of: Callable[[str, str], str]) -> pd.DataFrame:
    """Rows with ``method``, ``key`` and ``group`` added.

    ``terms`` has columns ``key``, ``regions`` (tuple) and ``abnormal``; ``key_of(modality, class_name)`` gives a
    row's unified class key. Classes missing from ``terms`` land in the ``unassigned`` group, in plain sight.
    """
    pairs = rows.groupby(["modality", "class_name"], sort=False, dropna=False)
    keys = np.array([key_of(m, c) for m, c in pairs.size().index], dtype=object)
    groups = {key: region_group(regions, bool(abnormal)) for key, regions, abnormal
              in terms[["key", "regions", "abnormal"]].itertuples(index=False)}
    labelled = rows.assign(key=keys[pairs.ngroup().to_numpy()]) if len(rows) else rows.assign(key=[])
    if "method" not in labelled.columns:
        labelled["method"] = labelled["run"]
    labelled["group"] = labelled["key"].map(groups).fillna(UNASSIGNED)
    return labelled



def apply_empty_policy(rows: pd.DataFrame, policy: str) -> pd.DataFrame:
    """Rows re-scored under an empty-mask policy from their ``ref_empty``/``pred_empty`` flags, without rescoring.

    Only rows empty on both sides change (``sat``: 1, ``nan``: NaN); a row empty on one side scores 0 under both
    policies and is set so, whatever was stored.
    """
    if policy not in EMPTY_POLICIES:
        raise BenchError(f"unknown empty policy {policy!r}; choose one of {', '.join(EMPTY_POLICIES)}")
    missing = [c for c in ("ref_empty", "pred_empty") if c not in rows.columns]
    if missing:
        raise BenchError(f"rows lack {', '.join(missing)}: the policy cannot be re-applied without rescoring")
    ref, pred = rows["ref_empty"].eq(True), rows["pred_empty"].eq(True)
    both, one = ref & pred, ref ^ pred
    scores = {m: rows[m].mask(both, 1.0 if policy == "sat" else np.nan).mask(one, 0.0)
              for m in (*METRICS, *FRACTION_METRICS) if m in rows.columns}
    # lesion metrics only on the rows scored lesion-wise (the others keep their NaN)
    lesion_rows = rows["lesion_ref"].notna() if "lesion_ref" in rows.columns else None
    scores |= {m: rows[m].mask(both & lesion_rows, 1.0 if policy == "sat" else np.nan).mask(one & lesion_rows, 0.0)
               for m in FRACTION_LESION_METRICS if m in rows.columns and lesion_rows is not None}
    # distances: both empty -> 0 (sat) or NaN; one empty keeps its stored worst value (the image diagonal)
    scores |= {m: rows[m].mask(both, 0.0 if policy == "sat" else np.nan) for m in DISTANCE_METRICS
               if m in rows.columns}
    return rows.assign(**scores)


def both_empty(rows: pd.DataFrame) -> pd.Series:
    """Per method: how many (case, class) rows are empty in both reference and prediction; NaN for a method
    whose rows carry no flags."""
    if not {"ref_empty", "pred_empty"} <= set(rows.columns):
        return pd.Series(np.nan, index=pd.Index(rows["method"].unique(), name="method"))
    flags = (rows["ref_empty"].eq(True) & rows["pred_empty"].eq(True)).astype(float)
    flagged = rows[["ref_empty", "pred_empty"]].notna().all(axis=1)
    counts = flags.groupby(rows["method"], sort=False).sum()
    return counts.where(flagged.groupby(rows["method"], sort=False).all())


def class_groups(rows: pd.DataFrame) -> pd.Series:
    """The region group of each class key seen in labelled rows."""
    return rows.drop_duplicates("key").set_index("key")["group"]


def cell_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (method, dataset, class): mean scores over cases and the case count. Needs `attach_terms` columns."""
    return Cells(rows).table


def check_metrics(rows: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    """The metric columns to average, each one the rows hold (else a one-line error saying how to get it)."""
    missing = [m for m in metrics if m not in rows.columns]
    if missing:
        raise BenchError(f"the rows hold no {', '.join(missing)} column: score the runs with `bench evaluate "
                         f"--metrics` naming it")
    return list(metrics)


def summarise(cells: pd.DataFrame, level: str, values: Sequence[str] = METRICS) -> pd.DataFrame:
    """Macro averages of cell ``values`` at one level, with dataset and class counts, sorted by (method, key)."""
    values = list(values)
    classes = cells.groupby(["method", "key", "group"], sort=True)
    if level == "class":
        table = classes[values].mean()
        table["datasets"] = classes.size()
        table["classes"] = 1
        return table.reset_index()
    if level == "dataset":
        datasets = cells.groupby(LEVEL_UNITS["dataset"], sort=True)
        table = datasets[values].mean()
        table["datasets"] = 1
        table["classes"] = datasets.size()
        return table.reset_index().rename(columns={"dataset": "key"})
    by = LEVEL_UNITS[level]
    class_means = classes[values].mean().reset_index()
    table = class_means.groupby(by, sort=True)[values].mean()
    table["datasets"] = cells.groupby(by, sort=True)["dataset"].nunique()
    table["classes"] = class_means.groupby(by, sort=True).size()
    table = table.reset_index()
    return table.rename(columns={"group": "key"}) if level == "region" else table.assign(key=OVERALL)


def scores(rows: pd.DataFrame, level: str, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """One level's aggregates (columns ``SCORE_COLUMNS``, with `metrics` in place of DSC/NSD) from rows labelled
    by `attach_terms`."""
    return Cells(rows, metrics).scores(level)


def all_scores(rows: pd.DataFrame, metrics: Sequence[str] = METRICS) -> dict[str, pd.DataFrame]:
    """Every level's aggregates, sharing one pass over the rows for the cells."""
    cells = Cells(rows, metrics)
    return {level: cells.scores(level) for level in LEVELS}


LEVEL_UNITS = {"class": ["method", "key", "group"], "region": ["method", "group"], "dataset": ["method", "dataset"],
          "overall": ["method"]}


class Cells:
    """The cells of labelled rows (``table``), with each row's cell and case as integer codes.

    Cells are numbered in sorted (method, dataset, key, group) order, cases in sorted (method, dataset, case_id)
    order, so the cases of one (method, dataset) are contiguous (the bootstrap resamples within them).
    """

    def __init__(self, rows: pd.DataFrame, metrics: Sequence[str] = METRICS):
        # A row without any score (both masks empty under the "nan" policy) contributes nothing, so it is not
        # counted either: the counts say how many cases, datasets and classes a score rests on.
        self.metrics = check_metrics(rows, metrics)
        rows = rows[rows[self.metrics].notna().any(axis=1)]
        self.rows = rows
        grouped = rows.groupby(CELL_KEYS, sort=True)
        self.table = grouped[self.metrics].mean()
        self.table["cases"] = grouped.size()
        self.table = self.table.reset_index()
        self.cell_of_row = grouped.ngroup().to_numpy()
        cases = rows.groupby(["method", "dataset", "case_id"], sort=True)
        self.case_of_row = cases.ngroup().to_numpy()
        self.strata = cases.size().reset_index().groupby(["method", "dataset"], sort=True).ngroup().to_numpy()
        self.n_cases = int(self.case_of_row.max()) + 1 if len(rows) else 0
        distinct = _distinct(self.cell_of_row.astype(np.int64) * self.n_cases + self.case_of_row).size
        if distinct != len(rows):
            raise BenchError(
                f"{len(rows) - distinct} rows repeat a (method, dataset, case, class): pass each run "
                "once; interactive click rows are summarised by protocols.interactive, not averaged here"
            )

    def case_counts(self, level: str) -> np.ndarray:
        """Distinct cases behind each unit of ``level``, in the sorted order `summarise` returns."""
        unit_of_cell = self.table.groupby(LEVEL_UNITS[level], sort=True).ngroup().to_numpy()
        units = unit_of_cell[self.cell_of_row].astype(np.int64)
        distinct = _distinct(units * self.n_cases + self.case_of_row) // max(self.n_cases, 1)
        return np.bincount(distinct, minlength=unit_of_cell.max() + 1 if len(unit_of_cell) else 0)

    def scores(self, level: str) -> pd.DataFrame:
        _check_level(level)
        return level_scores(self.table, level, self.case_counts(level), self.metrics)


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise BenchError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")


def level_scores(
    cells: pd.DataFrame, level: str, cases: np.ndarray, metrics: Sequence[str] = METRICS
) -> pd.DataFrame:
    """One level's aggregates (columns ``SCORE_COLUMNS``, `metrics` in place of DSC/NSD) from the cell table and
    the number of distinct cases behind each unit of the level, in `summarise`'s sorted order (however they were
    computed)."""
    _check_level(level)
    table = summarise(cells, level, metrics).assign(level=level)
    table["cases"] = cases
    if "group" not in table.columns:
        table["group"] = table["key"] if level == "region" else ""
    return table[[*SCORE_COLUMNS[:4], *metrics, *SCORE_COLUMNS[-3:]]]


def _distinct(codes: np.ndarray) -> np.ndarray:
    """The distinct values of an integer array, sorted (a sort beats hashing at this size)."""
    ordered = np.sort(codes)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if ordered.size else ordered
