"""Summaries of interactive curves (the loop that calls models is `bench.interactive`): pure functions.

Scores reported are DSC@k, NSD@k, the final value and the normalised area under the curve, never the maximum
over clicks (that would reward a model for clicks that made it worse). `max_over_clicks` exists only to
reproduce the SAM-Med3D paper-era tables, which reported it, and is labelled so wherever it is printed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

CURVE_KEYS = ["run", "model", "dataset", "case_id", "class_name", "protocol", "prompt_policy", "first_click", "seed"]
SUMMARY_KEYS = ["model", "class_name", "prompt_policy", "first_click"]
MAX_LABEL = "dsc_max_over_clicks (SAM-Med3D paper-era only)"


def normalised_auc(values: Sequence[float]) -> float:
    """Trapezoidal area under a score-vs-clicks curve over clicks 1..N, divided by N - 1 (so it lies in [0, 1]
    for scores in [0, 1]); a one-click curve's area is its only value."""
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return float(values[0])
    return float(((values[1:] + values[:-1]) / 2.0).sum() / (values.size - 1))


def _curve(group: pd.DataFrame, at: Sequence[int]) -> dict[str, float]:
    ordered = group.sort_values("click")
    out = {}
    for metric in ("dsc", "nsd"):
        values = ordered[metric].to_numpy(float)
        for k in at:
            out[f"{metric}@{k}"] = values[k - 1] if k <= values.size else np.nan
        out[f"{metric}_final"] = values[-1]
        out[f"{metric}_auc"] = normalised_auc(values)
    return out


def summarise_clicks(rows: pd.DataFrame, *, at: Sequence[int] = (1, 3, 5, 10),
                     by: Sequence[str] = SUMMARY_KEYS) -> pd.DataFrame:
    """Per-(model, class, policy) means over cases of DSC/NSD@k, final value and normalised AUC.

    `rows` are click rows (one per case, class and click, as `bench clicks` stores them); each curve is
    summarised first, then curves are averaged, with `cases` counting them. `@k` beyond a run's N is NaN.
    """
    keys = [key for key in CURVE_KEYS if key in rows.columns]
    curves = pd.DataFrame([
        {**dict(zip(keys, key)), **_curve(group, at)} for key, group in rows.groupby(keys, dropna=False)
    ])
    metrics = [column for column in curves.columns if column not in keys]
    grouped = curves.groupby(list(by), dropna=False)
    table = grouped[metrics].mean()
    table.insert(0, "cases", grouped.size())
    return table.reset_index()


def mean_curves(rows: pd.DataFrame, *, by: Sequence[str] = SUMMARY_KEYS) -> pd.DataFrame:
    """Mean DSC and NSD over cases at every click, per `by` group (model, class, policy): the curves a report
    draws. Curves stopped early on a perfect mask already carry repeated scores, so every click has all cases."""
    keys = [key for key in by if key in rows.columns]
    return rows.groupby([*keys, "click"], sort=True)[["dsc", "nsd"]].mean().reset_index()


def max_over_clicks(rows: pd.DataFrame, *, by: Sequence[str] = SUMMARY_KEYS) -> pd.DataFrame:
    """The SAM-Med3D paper-era score: per case the maximum DSC over clicks, then the mean over cases, per `by`
    group; the column is named `MAX_LABEL` so it is never mistaken for a per-click score."""
    keys = [key for key in CURVE_KEYS if key in rows.columns]
    per_case = rows.groupby(keys, dropna=False)["dsc"].max().reset_index()
    groups = [key for key in by if key in per_case.columns]
    return per_case.groupby(groups, dropna=False)["dsc"].mean().rename(MAX_LABEL).reset_index()
