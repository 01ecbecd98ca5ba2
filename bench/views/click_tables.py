"""Click runs as curves and in SAM-Med3D's Table 3 layout, beside the paper's rows (for `bench tables` and the report).

A series is one run (its model, first click and next-click policy). Its value after click k is the datasets-first
mean over cases of each case's mean over classes (the harness's macro convention), in percent. SAM-Med3D Table 3
gives overall Dice after 1, 3, 5 and 10 points for SAM-Med3D and after N, 3N and 5N points for the 2D models, N
being the number of slices holding the target: a run under a per-slice protocol (`sam-med3d-2d-baseline`: round k
gives every target slice its k-th point) fills the N columns, any other run the point columns.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from bench.views.published import load_published
from protocols.aggregate import METRICS
from protocols.interactive import CURVE_KEYS
from protocols.stats import dataset_first_mean, mean_interval

TABLE3 = "sam-med3d-table3"
EFFORT = (1, 3, 5, 10)  # Table 3's columns: k points (3D), kN points (2D, one point per slice per round)
PROMPTS = {"points": "k points", "per_slice": "k points per slice (kN)"}
_PUBLISHED = {f"dsc@{k}point{'s' * (k > 1)}": ("points", k) for k in EFFORT} | {
    f"dsc@{'' if k == 1 else k}Npoints": ("per_slice", k) for k in EFFORT}


def _protocol_part(config: dict, part: str) -> dict:
    """One part (`prompts`, `scoring`) of the protocol a run.json records; empty for runs without one."""
    return (config.get("protocol") or {}).get(part) or {}


def per_slice_runs(configs: Mapping[str, dict]) -> set[str]:
    """Names of the runs whose protocol clicks per slice (from each run.json's protocol)."""
    return {str(config.get("run")) for config in configs.values()
            if _protocol_part(config, "prompts").get("per_slice_axis") is not None}


def paper_era_runs(configs: Mapping[str, dict]) -> set[str]:
    """Names of the runs whose protocol reports SAM-Med3D's paper-era max over clicks (`sam-med3d-paper`)."""
    return {str(config.get("run")) for config in configs.values()
            if "max_over_clicks" in _protocol_part(config, "scoring").get("report", ())}


def running_max(clicks: pd.DataFrame) -> pd.DataFrame:
    """Each target's scores replaced by their maximum over clicks 1..k (validation.py's per-case max over the
    clicks of a k-click run; rows must be one per click)."""
    keys = [key for key in CURVE_KEYS if key in clicks.columns]
    ordered = clicks.sort_values("click", kind="stable")
    maxima = ordered.groupby(keys, dropna=False)[list(METRICS)].cummax()
    return ordered.assign(**{metric: maxima[metric] for metric in METRICS}).sort_index()


def click_curves(clicks: pd.DataFrame, rng: np.random.Generator | None = None, n_boot: int = 1000) -> pd.DataFrame:
    """Per series and click: the datasets-first mean over cases of each case's mean over classes, in percent,
    with its 95% bootstrap interval (cases resampled within datasets) when `rng` is given."""
    clicks = clicks.assign(series=clicks["run"] + " (" + clicks["model"] + ", " + clicks["first_click"].astype(str)
                           + " + " + clicks["prompt_policy"].astype(str) + ")")
    records = []
    for (run, series, click), group in clicks.groupby(["run", "series", "click"], sort=True):
        cases = group.groupby(["dataset", "case_id"], sort=True)[list(METRICS)].mean().reset_index()
        strata = cases.groupby("dataset", sort=True).ngroup().to_numpy()
        record = {"run": run, "series": series, "click": int(click)}
        for metric in METRICS:
            if rng is None:
                mean, lo, hi = dataset_first_mean(cases[metric].to_numpy(), strata)[0], np.nan, np.nan
            else:
                mean, lo, hi = mean_interval(cases[metric].to_numpy(), strata, rng, n_boot)
            record |= {metric: 100 * mean, f"{metric}_lo": 100 * lo, f"{metric}_hi": 100 * hi}
        records.append(record)
    return pd.DataFrame(records)


def table3_layout(curves: pd.DataFrame, per_slice: set[str] = frozenset(), published: bool = True,
                  value: str = "dsc", paper_era: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 3: one row per (method, prompt), DSC (or `value`: `dsc_lo`, `dsc_hi`) after k = 1, 3, 5, 10 points
    or rounds; `paper_era` curves (of `running_max` rows) as rows of their own, labelled; the paper's rows
    below the runs' when `published`. Index: method, prompt; columns: k."""
    def rows(frame: pd.DataFrame, suffix: str = "") -> pd.DataFrame:
        frame = frame[frame["click"].isin(EFFORT)].assign(
            method=lambda f: f["run"],
            prompt=lambda f: f["run"].map(lambda run: PROMPTS["per_slice" if run in per_slice else "points"] + suffix))
        return frame.pivot_table(index=["method", "prompt"], columns="click", values=value, aggfunc="first",
                                 sort=False)

    parts = [rows(curves)]
    if paper_era is not None and not paper_era.empty:
        parts.append(rows(paper_era, ", max over clicks 1..k (paper-era)"))
    parts = [pd.concat(parts).sort_index(kind="stable")]  # a run's rows together
    if published and value == "dsc":
        paper = load_published(TABLE3)
        paper = paper[paper["metric"].isin(_PUBLISHED)]
        kind = paper["metric"].map(lambda metric: _PUBLISHED[metric][0])
        printed = paper.assign(method=paper["method"] + " (SAM-Med3D paper, 1.5 mm grid)", prompt=kind.map(PROMPTS),
                               click=paper["metric"].map(lambda metric: _PUBLISHED[metric][1]))
        parts.append(printed.pivot_table(index=["method", "prompt"], columns="click", values="value",
                                         aggfunc="first", sort=False))
    table = pd.concat(parts)
    table.columns = [int(k) for k in table.columns]
    return table.reindex(columns=list(EFFORT))
