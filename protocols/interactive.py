"""Summaries of interactive curves (the loop that calls models is `bench.engine.interactive`): pure functions.

Scores reported are DSC@k, NSD@k, the final value and the area under the curve (normalised, or the SegFM
script's trapezoid), never the maximum over clicks (that would reward a model for clicks that made it worse).
Click 0 is a box-only first interaction (SegFM): it is no point of the click curve. `case_table` gives the SegFM
challenge's per-case scores (CVPR25_iter_eval.py's CSV). `max_over_clicks` exists only to
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


def trapezoid_auc(values: Sequence[float]) -> float:
    """The SegFM script's AUC (CVPR25_iter_eval.py:530): `cumulative_trapezoid(values, x=0..N-1)[-1]`, not
    normalised (0 to N - 1 for scores in [0, 1]); a one-click curve has no area (0)."""
    values = np.asarray(values, dtype=float)
    return float(((values[1:] + values[:-1]) / 2.0).sum())


AUCS = {"normalised": normalised_auc, "trapezoid": trapezoid_auc}


def _curve(group: pd.DataFrame, at: Sequence[int], auc: str = "normalised") -> dict[str, float]:
    ordered = group[group["click"] >= 1].sort_values("click")
    out = {}
    for metric in ("dsc", "nsd"):
        values = ordered[metric].to_numpy(float)
        for k in at:
            out[f"{metric}@{k}"] = values[k - 1] if k <= values.size else np.nan
        out[f"{metric}_final"] = values[-1]
        out[f"{metric}_auc"] = AUCS[auc](values)
    return out


def summarise_clicks(rows: pd.DataFrame, *, at: Sequence[int] = (1, 3, 5, 10),
                     by: Sequence[str] = SUMMARY_KEYS, auc: str = "normalised") -> pd.DataFrame:
    """Per-(model, class, policy) means over cases of DSC/NSD@k, final value and AUC (`auc`: normalised or
    trapezoid); a box row (click 0) is left out of the curve.

    `rows` are click rows (one per case, class and click, as `bench clicks` stores them); each curve is
    summarised first, then curves are averaged, with `cases` counting them. `@k` beyond a run's N is NaN.
    """
    keys = [key for key in CURVE_KEYS if key in rows.columns]
    curves = pd.DataFrame([
        {**dict(zip(keys, key)), **_curve(group, at, auc)} for key, group in rows.groupby(keys, dropna=False)
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


def case_table(rows: pd.DataFrame, *, n_clicks: int, auc: str = "trapezoid", nsd_zero_at_dsc: float | None = None,
               time_limit_s_per_class: float | None = None) -> pd.DataFrame:
    """Per case the SegFM challenge's scores (CVPR25_iter_eval.py:495-541), from click rows of every class.

    Interaction 1 is the box (click 0), 2..N+1 the clicks. At each, DSC and NSD are means over the classes of the
    case (those present in its reference: the ones clicked), NSD 0 where that DSC is <= `nsd_zero_at_dsc`
    (497-501); a case without a box row scores 0 at interaction 1 (356-365). `*_AUC`: the AUC over the N click
    interactions; `*_Final`: the last. `TotalRunningTime` sums the model's seconds; with `time_limit_s_per_class`
    every score of a case above that times its classes is 0 (the challenge's README; the script only warns, 526).
    """
    keys = [key for key in CURVE_KEYS if key in rows.columns and key not in ("class_name",)]
    records = []
    for key, group in rows.groupby(keys, dropna=False, sort=True):
        per_click = group.groupby("click")[["dsc", "nsd"]].mean()
        per_click = per_click.reindex(range(n_clicks + 1), fill_value=0.0)
        dsc, nsd = per_click["dsc"].to_numpy(float), per_click["nsd"].to_numpy(float)
        if nsd_zero_at_dsc is not None:
            nsd = np.where(dsc > nsd_zero_at_dsc, nsd, 0.0)
        classes = int(group["class_name"].nunique())
        seconds = float(group["seconds"].sum())
        if time_limit_s_per_class is not None and seconds > time_limit_s_per_class * classes:
            dsc, nsd = np.zeros_like(dsc), np.zeros_like(nsd)
        record = dict(zip(keys, key))
        record.update({f"DSC_{i + 1}": value for i, value in enumerate(dsc)})
        record.update({f"NSD_{i + 1}": value for i, value in enumerate(nsd)})
        record.update(DSC_AUC=AUCS[auc](dsc[1:]), NSD_AUC=AUCS[auc](nsd[1:]), DSC_Final=dsc[-1], NSD_Final=nsd[-1],
                      TotalRunningTime=seconds, num_class=classes)
        records.append(record)
    return pd.DataFrame(records)
