"""Statistics beyond the paper's point estimates: bootstrap confidence intervals and patient-level paired tests.

Bootstrap: cases are resampled with replacement within each (method, dataset), so every dataset keeps its case
count, and every aggregate (class, region, dataset, overall) is recomputed from the same replicates with the
macro averages of `protocols.aggregate`; the interval is the percentile interval of the replicates. The random
numbers come only from the ``numpy.random.Generator`` passed in, so a seed fixes the intervals.

Paired tests treat the patient (case) as the unit: the classes of one scan are not independent samples, so each
case contributes the mean over the classes both runs scored in it, and the Wilcoxon signed-rank test runs over
cases; the difference gets a bootstrap interval (cases within datasets) and an effect size. Comparing several
runs or many classes at once, adjust the p-values with `holm`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from protocols.aggregate import LEVELS, METRICS, Cells, summarise
from protocols.errors import BenchError

_PAIR = ["dataset", "case_id", "key"]


def resample_counts(strata: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """How often each case is drawn in each replicate, resampling within strata: shape (cases, n_boot).

    ``strata`` gives each case's stratum and must be sorted (cases of a stratum contiguous).
    """
    if np.any(np.diff(strata) < 0):
        raise BenchError("cases must be sorted by stratum")
    n_cases = strata.size
    starts = np.searchsorted(strata, strata, side="left")
    sizes = np.searchsorted(strata, strata, side="right") - starts
    drawn = starts[:, None] + np.floor(rng.random((n_cases, n_boot)) * sizes[:, None]).astype(np.int64)
    flat = drawn + np.arange(n_boot, dtype=np.int64)[None, :] * n_cases
    return np.bincount(flat.ravel(), minlength=n_cases * n_boot).reshape(n_boot, n_cases).T


def bootstrap_ci(
    rows: pd.DataFrame, rng: np.random.Generator, n_boot: int = 1000, confidence: float = 0.95,
    metrics: tuple[str, ...] = METRICS,
) -> dict[str, pd.DataFrame]:
    """Percentile intervals for every aggregate of labelled rows (see `aggregate.attach_terms`).

    Returns per level a table with ``method``, ``key`` and ``<metric>_lo`` / ``<metric>_hi`` (fractions).
    """
    if not 0 < confidence < 1:
        raise BenchError(f"confidence must lie in (0, 1), got {confidence}")
    if n_boot < 1:
        raise BenchError(f"n_boot must be at least 1, got {n_boot}")
    cells = Cells(rows, metrics)
    weights = resample_counts(cells.strata, n_boot, rng).astype(np.float64)
    replicates = cells.table[["method", "dataset", "key", "group"]]
    columns = {}
    rows = cells.rows
    for metric in cells.metrics:
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
        for metric in cells.metrics:
            draws = table[[f"{metric}#{b}" for b in range(n_boot)]].to_numpy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN aggregates keep a NaN interval
                result[f"{metric}_lo"], result[f"{metric}_hi"] = np.nanpercentile(draws, [tail, 100 - tail], axis=1)
        intervals[level] = result
    return intervals


@dataclass(frozen=True)
class PairedTest:
    """A patient-level paired comparison of one metric, B minus A.

    Each case (patient) contributes one pair: its mean over the classes both runs scored in it. ``difference`` is
    the mean case difference, averaged within datasets first (as SAT averages datasets first); ``lo``/``hi`` its
    95% bootstrap interval with cases resampled within datasets; ``effect_size`` the matched-pairs rank-biserial
    correlation (-1..1) of the Wilcoxon signed-rank test over cases, whose statistic and p-value follow.
    """

    metric: str
    cases: int
    classes: int
    datasets: int
    pairs: int
    only_a: int
    only_b: int
    dropped_nan: int
    mean_a: float
    mean_b: float
    difference: float
    lo: float
    hi: float
    median_difference: float
    effect_size: float
    statistic: float
    p_value: float


def matched_pairs(rows_a: pd.DataFrame, rows_b: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """(the (dataset, case, class) rows scored on both sides, columns a and b; counts of what was left out)."""
    if metric not in rows_a.columns or metric not in rows_b.columns:
        raise BenchError(f"unknown metric {metric!r}; the rows have no such column")
    a = rows_a.set_index(_PAIR)[metric]
    b = rows_b.set_index(_PAIR)[metric]
    for name, side in (("A", a), ("B", b)):
        if side.index.has_duplicates:
            raise BenchError(f"run {name} repeats a (dataset, case, class); pass a single run per side")
    common = a.index.intersection(b.index)
    matched = pd.DataFrame({"a": a.reindex(common), "b": b.reindex(common)}).dropna()
    if matched.empty:
        raise BenchError(f"the two runs share no (dataset, case, class) pair with a {metric} score on both sides")
    left_out = {"only_a": len(a.index.difference(b.index)), "only_b": len(b.index.difference(a.index)),
                "dropped_nan": len(common) - len(matched)}
    return matched.reset_index(), left_out


def wilcoxon_over(differences: np.ndarray) -> tuple[float, float, float]:
    """(statistic, p-value, rank-biserial effect size) of the Wilcoxon signed-rank test of paired differences."""
    nonzero = differences[differences != 0]
    if nonzero.size == 0:  # identical scores: scipy cannot rank zero differences
        return 0.0, 1.0, 0.0
    from scipy.stats import (  # here, not at import: scipy.stats adds ~0.8 s to every CLI start
        rankdata,
        wilcoxon,
    )

    result = wilcoxon(differences)
    ranks = rankdata(np.abs(nonzero))
    effect = (ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum()
    return float(result.statistic), float(result.pvalue), float(effect)


def dataset_first_mean(values: np.ndarray, strata: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean over strata (datasets) of the mean within each; ``weights`` (cases x replicates) resample the cases."""
    weights = np.ones((values.size, 1)) if weights is None else weights
    n_strata = int(strata.max()) + 1
    one_hot = np.zeros((n_strata, values.size))
    one_hot[strata, np.arange(values.size)] = 1.0
    means = (one_hot @ (weights * values[:, None])) / (one_hot @ weights)
    return means.mean(axis=0)


def paired_test(
    rows_a: pd.DataFrame, rows_b: pd.DataFrame, metric: str, rng: np.random.Generator | None = None,
    n_boot: int = 2000, confidence: float = 0.95,
) -> PairedTest:
    """Compare two runs' rows at the patient level (B minus A); see `PairedTest`.

    Pairs are the (dataset, case, class) both runs scored (NaN on either side dropped); each case's score is its
    mean over those classes, so a patient counts once however many classes it has. ``rng`` seeds the bootstrap
    (``numpy.random.default_rng(0)`` when none is given, so the interval is reproducible).
    """
    matched, left_out = matched_pairs(rows_a, rows_b, metric)
    cases = matched.groupby(["dataset", "case_id"], sort=True)[["a", "b"]].mean().reset_index()
    difference = (cases["b"] - cases["a"]).to_numpy()
    strata = cases.groupby("dataset", sort=True).ngroup().to_numpy()
    statistic, p_value, effect = wilcoxon_over(difference)
    weights = resample_counts(strata, n_boot, rng or np.random.default_rng(0)).astype(np.float64)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(dataset_first_mean(difference, strata, weights), [tail, 100 - tail])
    return PairedTest(
        metric=metric, cases=len(cases), classes=matched["key"].nunique(), datasets=int(strata.max()) + 1,
        pairs=len(matched), **left_out,
        mean_a=float(dataset_first_mean(cases["a"].to_numpy(), strata)[0]),
        mean_b=float(dataset_first_mean(cases["b"].to_numpy(), strata)[0]),
        difference=float(dataset_first_mean(difference, strata)[0]), lo=float(lo), hi=float(hi),
        median_difference=float(np.median(difference)), effect_size=effect, statistic=statistic, p_value=p_value,
    )


def per_class_tests(rows_a: pd.DataFrame, rows_b: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per class: Wilcoxon signed-rank over the cases both runs scored (B minus A), with Holm-adjusted p-values
    over the classes. Columns key, cases, mean_a, mean_b, difference, effect_size, statistic, p_value, p_holm."""
    matched, _ = matched_pairs(rows_a, rows_b, metric)
    records = []
    for key, group in matched.groupby("key", sort=True):
        statistic, p_value, effect = wilcoxon_over((group["b"] - group["a"]).to_numpy())
        records.append({"key": key, "cases": len(group), "mean_a": group["a"].mean(), "mean_b": group["b"].mean(),
                        "difference": (group["b"] - group["a"]).mean(), "effect_size": effect,
                        "statistic": statistic, "p_value": p_value})
    table = pd.DataFrame(records)
    table["p_holm"] = holm(table["p_value"].to_numpy())
    return table


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of p-values for multiple comparisons (family-wise error), in input order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def mean_interval(
    values: np.ndarray, strata: np.ndarray, rng: np.random.Generator, n_boot: int = 1000, confidence: float = 0.95,
) -> tuple[float, float, float]:
    """(mean, lo, hi): the datasets-first mean of per-case values and its bootstrap interval, cases resampled
    within datasets. ``strata`` gives each case's dataset code, sorted."""
    values = np.asarray(values, dtype=float)
    weights = resample_counts(strata, n_boot, rng).astype(np.float64)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(dataset_first_mean(values, strata, weights), [tail, 100 - tail])
    return float(dataset_first_mean(values, strata)[0]), float(lo), float(hi)


def paired_tests(
    reference: pd.DataFrame, others: dict[str, pd.DataFrame], metrics: tuple[str, ...] = METRICS,
    rng: np.random.Generator | None = None, n_boot: int = 2000,
) -> pd.DataFrame:
    """`paired_test` of every run in ``others`` against ``reference`` for each metric, one row per test, with
    ``p_holm``: Holm's adjustment over all the tests of the table."""
    rng = rng or np.random.default_rng(0)
    records = [{"run": name, **vars(paired_test(reference, rows, metric, rng, n_boot))}
               for name, rows in others.items() for metric in metrics]
    table = pd.DataFrame(records)
    table["p_holm"] = holm(table["p_value"].to_numpy())
    return table
