"""Statistics beyond the paper's point estimates: bootstrap confidence intervals and a paired Wilcoxon test.

Bootstrap: cases are resampled with replacement within each (method, dataset), so every dataset keeps its case
count, and every aggregate (class, region, dataset, overall) is recomputed from the same replicates with the
macro averages of `protocols.aggregate`; the interval is the percentile interval of the replicates. The random
numbers come only from the ``numpy.random.Generator`` passed in, so a seed fixes the intervals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from protocols.aggregate import LEVELS, METRICS, Cells, summarise

_PAIR = ["dataset", "case_id", "key"]


def resample_counts(strata: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """How often each case is drawn in each replicate, resampling within strata: shape (cases, n_boot).

    ``strata`` gives each case's stratum and must be sorted (cases of a stratum contiguous).
    """
    if np.any(np.diff(strata) < 0):
        raise ValueError("cases must be sorted by stratum")
    n_cases = strata.size
    starts = np.searchsorted(strata, strata, side="left")
    sizes = np.searchsorted(strata, strata, side="right") - starts
    drawn = starts[:, None] + np.floor(rng.random((n_cases, n_boot)) * sizes[:, None]).astype(np.int64)
    flat = drawn + np.arange(n_boot, dtype=np.int64)[None, :] * n_cases
    return np.bincount(flat.ravel(), minlength=n_cases * n_boot).reshape(n_boot, n_cases).T


def bootstrap_ci(
    rows: pd.DataFrame, rng: np.random.Generator, n_boot: int = 1000, confidence: float = 0.95
) -> dict[str, pd.DataFrame]:
    """Percentile intervals for every aggregate of labelled rows (see `aggregate.attach_terms`).

    Returns per level a table with ``method``, ``key`` and ``<metric>_lo`` / ``<metric>_hi`` (fractions).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    cells = Cells(rows)
    weights = resample_counts(cells.strata, n_boot, rng).astype(np.float64)
    replicates = cells.table[["method", "dataset", "key", "group"]]
    columns = {}
    rows = cells.rows
    for metric in METRICS:
        point = cells.table[metric].to_numpy(dtype=np.float64)
        values = rows[metric].to_numpy(dtype=np.float64)
        valid = ~np.isnan(values)
        index, shape = (cells.cell_of_row, cells.case_of_row), (len(replicates), cells.n_cases)
        total = sparse.csr_matrix((np.where(valid, values, 0.0), index), shape=shape) @ weights
        count = sparse.csr_matrix((valid.astype(np.float64), index), shape=shape) @ weights
        with np.errstate(invalid="ignore", divide="ignore"):
            # A replicate that draws none of a cell's scored cases keeps the cell's observed mean, so every
            # replicate averages over the same classes as the point estimate.
            means = np.where(count > 0, total / count, point[:, None])
        columns |= {f"{metric}#{b}": means[:, b] for b in range(n_boot)}
    replicates = pd.concat([replicates, pd.DataFrame(columns)], axis=1)
    tail = (1 - confidence) / 2 * 100
    intervals = {}
    for level in LEVELS:
        table = summarise(replicates, level, values=list(columns))
        result = table[["method", "key"]].copy()
        for metric in METRICS:
            draws = table[[f"{metric}#{b}" for b in range(n_boot)]].to_numpy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN aggregates keep a NaN interval
                result[f"{metric}_lo"], result[f"{metric}_hi"] = np.nanpercentile(draws, [tail, 100 - tail], axis=1)
        intervals[level] = result
    return intervals


@dataclass(frozen=True)
class PairedTest:
    """A paired Wilcoxon signed-rank test of one metric on matched (dataset, case, class) pairs."""

    metric: str
    pairs: int
    only_a: int
    only_b: int
    dropped_nan: int
    mean_a: float
    mean_b: float
    median_difference: float
    statistic: float
    p_value: float


def paired_test(rows_a: pd.DataFrame, rows_b: pd.DataFrame, metric: str) -> PairedTest:
    """Compare two runs' labelled rows on the (dataset, case, class) pairs both scored (B minus A)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    a = rows_a.set_index(_PAIR)[metric]
    b = rows_b.set_index(_PAIR)[metric]
    for name, side in (("A", a), ("B", b)):
        if side.index.has_duplicates:
            raise ValueError(f"run {name} repeats a (dataset, case, class); pass a single run per side")
    common = a.index.intersection(b.index)
    matched = pd.DataFrame({"a": a.reindex(common), "b": b.reindex(common)}).dropna()
    if matched.empty:
        raise ValueError(f"the two runs share no (dataset, case, class) pair with a {metric} score on both sides")
    difference = matched["b"] - matched["a"]
    if (difference == 0).all():  # identical scores: scipy cannot rank zero differences
        statistic, p_value = 0.0, 1.0
    else:
        from scipy.stats import wilcoxon  # here, not at import: scipy.stats adds ~0.8 s to every CLI start

        result = wilcoxon(matched["a"], matched["b"])
        statistic, p_value = float(result.statistic), float(result.pvalue)
    return PairedTest(
        metric=metric, pairs=len(matched), only_a=len(a.index.difference(b.index)),
        only_b=len(b.index.difference(a.index)), dropped_nan=len(common) - len(matched),
        mean_a=float(matched["a"].mean()), mean_b=float(matched["b"].mean()),
        median_difference=float(difference.median()), statistic=statistic, p_value=p_value,
    )
