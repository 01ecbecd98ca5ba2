"""The report's cost sections: the runs' cost table, accuracy against time (one point per run, the interquartile
range of its per-case seconds as the horizontal bar, the 95% bootstrap interval of its DSC, cases resampled within
datasets, as the vertical one), per-click latency of the click runs (median and quartiles
of each click's model-call seconds) and their Dice per second (DSC against cumulative model seconds, one curve per
run, a point per click). The numbers come from `bench.views.cost`; the warm-up call is left out there."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from bench.views.cost import CASE, case_seconds, click_latency, cost_table, dice_per_second, read_run, scored_rows
from bench.views.report.figures import _STYLE, COLOURS, save
from bench.views.report.page import figure, html_table
from protocols.stats import resample_counts


def accuracy_point(rows: pd.DataFrame, rng: np.random.Generator, n_boot: int) -> dict | None:
    """One run's point: DSC (percent, the cost table's mean over (case, class) rows) with its 95% bootstrap
    interval (cases resampled within datasets), and the median and quartiles of its per-case model seconds;
    None for a run without model seconds."""
    seconds = case_seconds(rows)
    if seconds.empty:
        return None
    cases = scored_rows(rows).groupby(CASE)["dsc"].agg(["sum", "count"]).sort_index()
    strata = pd.factorize(cases.index.get_level_values("dataset"), sort=True)[0]
    weights = resample_counts(strata, n_boot, rng).astype(float)
    with np.errstate(invalid="ignore"):  # a replicate of cases without a score
        means = 100 * (weights.T @ cases["sum"].to_numpy()) / (weights.T @ cases["count"].to_numpy())
    lo, hi = np.nanpercentile(means, [2.5, 97.5])
    return {"run": str(rows["run"].iloc[0]), "DSC": 100 * cases["sum"].sum() / cases["count"].sum(),
            "DSC_lo": lo, "DSC_hi": hi, "median": seconds.median(), "q1": seconds.quantile(0.25),
            "q3": seconds.quantile(0.75)}


def _frame(axes, xlabel: str, ylabel: str, legend: str) -> None:
    """The cost figures' common frame: axis labels, a light grid, no top/right spines, the legend at `legend`."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, loc=legend)


def accuracy_vs_time(points: pd.DataFrame) -> plt.Figure:
    """DSC (percent) against median seconds per case, log x; `points`: run, DSC, DSC_lo, DSC_hi, median, q1, q3."""
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(figsize=(7.0, 3.8), layout="constrained")
        for i, point in enumerate(points.itertuples(index=False)):
            colour = COLOURS[i % len(COLOURS)]
            axes.errorbar([point.median], [point.DSC], xerr=[[point.median - point.q1], [point.q3 - point.median]],
                          yerr=[[point.DSC - point.DSC_lo], [point.DSC_hi - point.DSC]], fmt="o", color=colour,
                          capsize=3, label=str(point.run))
        axes.set_xscale("log")
        axes.set_ylim(0, 100)
        _frame(axes, "model seconds per case (median; bar: quartiles)", "DSC (%; bar: 95% interval)", "lower right")
    return fig


def click_latency_figure(latency: pd.DataFrame) -> plt.Figure:
    """Seconds per model call against the click index, one line per run (median, quartile band)."""
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(figsize=(7.0, 3.8), layout="constrained")
        for i, (run, group) in enumerate(latency.groupby("run", sort=True)):
            colour = COLOURS[i % len(COLOURS)]
            axes.fill_between(group["click"], group["q1"], group["q3"], color=colour, alpha=0.2, linewidth=0)
            axes.plot(group["click"], group["median"], color=colour, marker="o", markersize=3, label=str(run))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylim(bottom=0)
        _frame(axes, "click (0: the box alone)", "seconds per call", "upper right")
    return fig


def dice_per_second_figure(curves: pd.DataFrame) -> plt.Figure:
    """DSC (percent) against cumulative model seconds, one line per run, a marker per click; log x."""
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(figsize=(7.0, 3.8), layout="constrained")
        for i, (run, group) in enumerate(curves.groupby("run", sort=True)):
            axes.plot(group["seconds"], group["DSC"], color=COLOURS[i % len(COLOURS)], marker="o", markersize=3,
                      label=str(run))
        axes.set_xscale("log")
        axes.set_ylim(0, 100)
        _frame(axes, "cumulative model seconds (median over targets)", "DSC (%, median over targets)", "lower right")
    return fig


def cost_sections(run_dirs: Sequence[Path], out_dir: Path, folder: str, rng: np.random.Generator,
                  n_boot: int) -> tuple[list[tuple[str, str]], list[str]]:
    """(the report's cost sections, their notes); figures are written under `out_dir / folder`; the DSC intervals
    from `n_boot` replicates of `rng`."""
    table, notes = cost_table(run_dirs)
    sections = [("Cost beside accuracy", html_table(table.drop(columns=["device"])))]
    points, latency, curves = [], [], []
    for path in map(Path, run_dirs):
        rows, _, _ = read_run(path)
        run = str(rows["run"].iloc[0])
        point = accuracy_point(rows, rng, n_boot)
        if point is not None:
            points.append(point)
        curve = click_latency(rows)
        if not curve.empty:
            latency.append(curve.astype(float).assign(run=run))
        curve = dice_per_second(rows)
        if not curve.empty:
            curves.append(curve.astype(float).assign(run=run))
    if points:
        stem = f"{folder}/cost_accuracy_vs_time"
        save(accuracy_vs_time(pd.DataFrame(points)), out_dir / stem)
        sections.append(("Accuracy vs time", figure(stem, "DSC (last click for click runs) against model seconds "
                                                          "per case: one point per run; horizontal bar: quartiles "
                                                          "over cases, vertical: 95% bootstrap interval of the DSC "
                                                          "(cases resampled within datasets)")))
    if latency:
        latency = pd.concat(latency, ignore_index=True)
        stem = f"{folder}/cost_click_latency"
        save(click_latency_figure(latency), out_dir / stem)
        sections.append(("Per-click latency", figure(stem, "Model seconds per call at each click: median over "
                                                           "(case, class), band: quartiles; warm-up call left out")))
    if curves:
        stem = f"{folder}/cost_dice_per_second"
        save(dice_per_second_figure(pd.concat(curves, ignore_index=True)), out_dir / stem)
        sections.append(("Dice per second", figure(stem, "DSC against the model seconds spent on a target up to each "
                                                         "click: medians over (case, class), one point per click; "
                                                         "the target holding the warm-up call left out")))
    return sections, notes
