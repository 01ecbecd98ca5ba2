"""Figures in the SAT paper's style, saved as PNG and SVG: grouped bars per region (Fig. 3) and per-class dot
plots grouped by region and sorted by score (Fig. 4/5). Inputs are tables of percent values; no other I/O."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.tables import REGION_LABELS  # noqa: E402

FORMATS = ("png", "svg")
_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def save(figure: plt.Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` and close the figure."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(f".{fmt}") for fmt in FORMATS]
    for path in paths:
        figure.savefig(path, dpi=120)
    plt.close(figure)
    return paths


def region_bars(values: pd.DataFrame, metric: str) -> plt.Figure:
    """Fig. 3 (a)/(b): one group of bars per region, one bar per method; ``values`` rows are methods."""
    figure, axes = plt.subplots(figsize=(max(6.0, 0.9 * values.shape[1] + 2), 3.6), layout="constrained")
    width = 0.8 / max(1, len(values))
    x = np.arange(values.shape[1])
    for i, (method, row) in enumerate(values.iterrows()):
        axes.bar(x + (i - (len(values) - 1) / 2) * width, row.to_numpy(dtype=float), width,
                 label=str(method), color=_COLOURS[i % len(_COLOURS)])
    axes.set_xticks(x, [str(c) for c in values.columns])
    axes.set_ylabel(f"{metric.upper()} (%)")
    axes.set_ylim(0, 100)
    axes.grid(axis="y", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, ncol=min(5, len(values)), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return figure


def class_dots(values: pd.DataFrame, groups: pd.Series, metric: str, order_by: str) -> plt.Figure:
    """Fig. 4/5: classes clustered by region group, sorted high to low by ``order_by``; one dot per method,
    the methods' dots of a class joined by a vertical line. ``values``: rows classes, columns methods."""
    frame = values.assign(_group=groups.reindex(values.index), _score=values[order_by])
    order = [g for g in REGION_LABELS if g in set(frame["_group"])] + sorted(set(frame["_group"]) - set(REGION_LABELS))
    frame["_rank"] = frame["_group"].map({g: i for i, g in enumerate(order)})
    frame = frame.sort_values(["_rank", "_score"], ascending=[True, False], na_position="last")
    x = np.arange(len(frame))
    figure, axes = plt.subplots(figsize=(min(40.0, max(6.0, 0.22 * len(frame) + 2)), 4.0), layout="constrained")
    data = frame[values.columns].to_numpy(dtype=float)
    axes.vlines(x, np.nanmin(data, axis=1), np.nanmax(data, axis=1), color="#bbbbbb", linewidth=0.8, zorder=1)
    for i, method in enumerate(values.columns):
        axes.scatter(x, data[:, i], s=14, label=str(method), color=_COLOURS[i % len(_COLOURS)], zorder=2)
    bounds = np.flatnonzero(np.diff(frame["_rank"].to_numpy())) + 0.5
    for boundary in bounds:
        axes.axvline(boundary, color="#888888", linewidth=0.6, linestyle="--")
    group_of_column = frame["_group"].to_numpy()
    for group in dict.fromkeys(group_of_column):
        middle = x[group_of_column == group].mean()
        axes.text(middle, 101, REGION_LABELS.get(group, group), ha="center", va="bottom", fontsize=8)
    axes.set_xticks(x, [str(k) for k in frame.index], rotation=90, fontsize=6)
    axes.set_xlim(-1, len(frame))
    axes.set_ylim(0, 108)
    axes.set_ylabel(f"{metric.upper()} (%)")
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, loc="lower left", fontsize=8)
    return figure


def click_curves(curves: pd.DataFrame, metric: str) -> plt.Figure:
    """Score vs number of clicks: one line per (model, policy) averaged over classes, plus one thin line per
    class. ``curves`` has columns series, class_name, click and the metric (percent)."""
    figure, axes = plt.subplots(figsize=(6.5, 3.6), layout="constrained")
    for i, (series, group) in enumerate(curves.groupby("series", sort=True)):
        colour = _COLOURS[i % len(_COLOURS)]
        for _, per_class in group.groupby("class_name"):
            axes.plot(per_class["click"], per_class[metric], color=colour, alpha=0.25, linewidth=0.8)
        mean = group.groupby("click")[metric].mean()
        axes.plot(mean.index, mean.to_numpy(), color=colour, marker="o", markersize=3, label=f"{series} (mean)")
    axes.set_xlabel("clicks")
    axes.set_ylabel(f"{metric.upper()} (%)")
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, fontsize=8, loc="lower right")
    return figure
