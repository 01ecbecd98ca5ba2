"""Figures in the SAT paper's style, saved as PNG and SVG: grouped bars per region with 95% intervals (Fig. 3),
per-class dot plots in one panel per region (Fig. 4/5) and score-vs-clicks curves with intervals. Inputs are
tables of percent values; no other I/O.

Figures are sized so that the page shows them at their natural size (at most ``MAX_WIDTH_IN`` wide, the page's
content width) and text is never drawn below ``LABEL_PT``: a class panel holds at most ``MAX_PER_PANEL``
classes, so 117 classes make several panels instead of one strip with 3-pixel labels. SVG text stays text
(``svg.fonttype = none``), so the rendered label size can be measured in a browser.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.views.tables import REGION_LABELS, UNSCALED

FORMATS = ("png", "svg")
LABEL_PT = 8.0
MAX_WIDTH_IN = 11.5  # 1104 CSS px: inside the page's 1200 px content box, so figures are never scaled down
MAX_PER_PANEL = 40
_INCH_PER_CLASS = 0.24
COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
_STYLE = {"svg.fonttype": "none", "font.size": LABEL_PT + 1, "axes.titlesize": LABEL_PT + 2,
          "xtick.labelsize": LABEL_PT, "ytick.labelsize": LABEL_PT, "legend.fontsize": LABEL_PT}


def save(figure: plt.Figure, stem: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` (or the given formats) and close the figure."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(f".{fmt}") for fmt in formats]
    with matplotlib.rc_context(_STYLE):
        for path in paths:
            figure.savefig(path, dpi=120)
    plt.close(figure)
    return paths


def _errors(values: np.ndarray, lo: np.ndarray | None, hi: np.ndarray | None) -> np.ndarray | None:
    """Asymmetric error bar lengths (2, n) from interval bounds; None without intervals."""
    if lo is None or hi is None or np.all(np.isnan(lo)):
        return None
    return np.nan_to_num(np.vstack([values - lo, hi - values]), nan=0.0).clip(min=0)


def region_bars(
    values: pd.DataFrame, metric: str, lo: pd.DataFrame | None = None, hi: pd.DataFrame | None = None
) -> plt.Figure:
    """Fig. 3 (a)/(b): one group of bars per region, one bar per method, 95% intervals as error bars (where the
    method has them; published numbers have none). ``values``/``lo``/``hi`` rows are methods."""
    with matplotlib.rc_context(_STYLE):
        figure, axes = plt.subplots(figsize=(min(MAX_WIDTH_IN, max(6.0, 0.9 * values.shape[1] + 2)), 3.8),
                                    layout="constrained")
        width = 0.8 / max(1, len(values))
        x = np.arange(values.shape[1])
        for i, (method, row) in enumerate(values.iterrows()):
            heights = row.to_numpy(dtype=float)
            bounds = [None if b is None else b.loc[method].to_numpy(dtype=float) for b in (lo, hi)]
            axes.bar(x + (i - (len(values) - 1) / 2) * width, heights, width, label=str(method),
                     color=COLOURS[i % len(COLOURS)], yerr=_errors(heights, *bounds),
                     error_kw={"elinewidth": 0.9, "capsize": 2, "ecolor": "#333333"})
        axes.set_xticks(x, [str(c) for c in values.columns])
        _value_axis(axes, metric, 100)
        axes.grid(axis="y", alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
        figure.legend(frameon=False, ncol=min(4, len(values)), loc="outside upper center")
    return figure


def detection_bars(table: pd.DataFrame) -> plt.Figure:
    """Detection rate (percent) by reference-lesion volume bin, one bar per method, the lesion count above each
    bar. ``table``: columns method, size_bin, lesions, rate (`protocols.lesions.detection_by_size`)."""
    labels = {"lt100": "< 100 mm³", "100_1000": "100-1000 mm³", "gt1000": "> 1000 mm³"}
    methods = list(dict.fromkeys(table["method"]))
    bins = list(dict.fromkeys(table["size_bin"]))
    with matplotlib.rc_context(_STYLE):
        figure, axes = plt.subplots(figsize=(6.0, 3.4), layout="constrained")
        width = 0.8 / max(1, len(methods))
        x = np.arange(len(bins))
        for i, method in enumerate(methods):
            part = table[table["method"] == method].set_index("size_bin").reindex(bins)
            offsets = x + (i - (len(methods) - 1) / 2) * width
            axes.bar(offsets, 100 * part["rate"].to_numpy(dtype=float), width, label=str(method),
                     color=COLOURS[i % len(COLOURS)])
            for position, rate, count in zip(offsets, part["rate"], part["lesions"]):
                axes.annotate(f"n={int(count)}", (position, 0 if pd.isna(rate) else 100 * rate), ha="center",
                              va="bottom", fontsize=7)
        axes.set_xticks(x, [labels.get(b, b) for b in bins])
        axes.set_ylabel("lesions detected (%)")
        axes.set_ylim(0, 108)
        axes.grid(axis="y", alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
        figure.legend(frameon=False, ncol=min(4, len(methods)), loc="outside upper center")
    return figure


def _value_axis(axes: plt.Axes, metric: str, top: float) -> None:
    """A percent axis from 0 to ``top``, or, for distances (from 0) and signed volumes, their unit."""
    if metric in UNSCALED:
        volume = metric.endswith("mm3")
        axes.set_ylabel(f"{metric.upper()} ({'mm^3' if volume else 'mm'})")
        if not volume:
            axes.set_ylim(bottom=0)
    else:
        axes.set_ylabel(f"{metric.upper()} (%)")
        axes.set_ylim(0, top)


def class_panels(values: pd.DataFrame, groups: pd.Series, order_by: str) -> list[tuple[str, pd.Index]]:
    """(title, class keys) of each panel: one per region group in SAT's region order, classes sorted high to
    low by ``order_by``, groups longer than ``MAX_PER_PANEL`` split into numbered parts."""
    frame = values.assign(_group=groups.reindex(values.index).fillna("unassigned"), _score=values[order_by])
    order = [g for g in REGION_LABELS if g in set(frame["_group"])] + sorted(set(frame["_group"]) - set(REGION_LABELS))
    panels = []
    for group in order:
        part = frame[frame["_group"] == group].sort_values("_score", ascending=False, na_position="last")
        pieces = int(np.ceil(len(part) / MAX_PER_PANEL))
        for i in range(pieces):
            keys = part.index[i * MAX_PER_PANEL:(i + 1) * MAX_PER_PANEL]
            label = REGION_LABELS.get(group, group)
            title = label if pieces == 1 else f"{label} ({i + 1}/{pieces})"
            panels.append((title, keys))
    return panels


def class_dots(
    values: pd.DataFrame, metric: str, title: str,
    lo: pd.DataFrame | None = None, hi: pd.DataFrame | None = None,
) -> plt.Figure:
    """Fig. 4/5, one panel: a dot per method and class, the methods' dots of a class joined by a grey line, the
    95% interval of each run as a thin whisker. ``values``: rows classes (already ordered), columns methods."""
    with matplotlib.rc_context(_STYLE):
        width = min(MAX_WIDTH_IN, max(6.5, _INCH_PER_CLASS * len(values) + 1.8))
        longest = max((len(str(k)) for k in values.index), default=4)
        height = 2.6 + 0.075 * min(longest, 40)
        figure, axes = plt.subplots(figsize=(width, height), layout="constrained")
        x = np.arange(len(values))
        data = values.to_numpy(dtype=float)
        with np.errstate(all="ignore"):
            low, high = np.nanmin(data, axis=1), np.nanmax(data, axis=1)
        axes.vlines(x, low, high, color="#bbbbbb", linewidth=0.8, zorder=1)
        n = max(1, values.shape[1])
        for i, method in enumerate(values.columns):
            offset = (i - (n - 1) / 2) * 0.12
            colour = COLOURS[i % len(COLOURS)]
            if lo is not None and hi is not None and method in lo.columns:
                whiskers = _errors(data[:, i], lo[method].to_numpy(dtype=float), hi[method].to_numpy(dtype=float))
                if whiskers is not None:
                    axes.errorbar(x + offset, data[:, i], yerr=whiskers, fmt="none", ecolor=colour, elinewidth=0.7,
                                  alpha=0.8, zorder=2)
            axes.scatter(x + offset, data[:, i], s=16, label=str(method), color=colour, zorder=3)
        axes.set_xticks(x, [str(k) for k in values.index], rotation=90, fontsize=LABEL_PT)
        axes.set_xlim(-0.7, len(values) - 0.3)
        _value_axis(axes, metric, 102)
        axes.set_title(title, loc="left")
        axes.grid(axis="y", alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
        figure.legend(frameon=False, loc="outside upper center", ncol=min(4, n))
    return figure


def click_curves(curves: pd.DataFrame, metric: str) -> plt.Figure:
    """Score vs number of clicks: one line per series (model, policy) with its 95% interval as a band.
    ``curves`` has columns series, click, the metric and ``<metric>_lo``/``<metric>_hi`` (percent)."""
    with matplotlib.rc_context(_STYLE):
        figure, axes = plt.subplots(figsize=(7.0, 3.8), layout="constrained")
        for i, (series, group) in enumerate(curves.groupby("series", sort=True)):
            colour = COLOURS[i % len(COLOURS)]
            group = group.sort_values("click")
            axes.fill_between(group["click"], group[f"{metric}_lo"], group[f"{metric}_hi"], color=colour,
                              alpha=0.2, linewidth=0)
            axes.plot(group["click"], group[metric], color=colour, marker="o", markersize=3, label=str(series))
        axes.set_xlabel("clicks")
        axes.set_ylabel(f"{metric.upper()} (%)")
        axes.set_ylim(0, 100)
        axes.grid(alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
        axes.legend(frameon=False, loc="lower right")
    return figure
