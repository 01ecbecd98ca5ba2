"""Write ``index.html`` and ``figures/`` for runs (the only I/O of the report; layout lives in page/figures)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench import store
from bench.commands.leaderboard import ranked
from bench.commands.tables import clicks_table, collect_entries, load_runs
from bench.report import figures
from bench.report.page import figure, html_table, page
from bench.tables import (
    best_mask, comparable, coverage_lines, layout, leaderboard_view, shared_region_entries, with_intervals,
)
from protocols.aggregate import METRICS, OVERALL, class_groups
from protocols.interactive import mean_curves

_FIGURES = "figures"


def write_report(
    run_dirs: Sequence[Path], out_dir: Path, published: Sequence[str] = (), seed: int = 0, n_boot: int = 200,
    baseline: str | None = None, title: str = "Segmentation benchmark report",
) -> Path:
    """Write the report for ``run_dirs`` (with ``published`` tables) under ``out_dir``; returns index.html.

    Every aggregate shows a 95% bootstrap interval over cases (``n_boot`` replicates from ``seed``).
    """
    out_dir = Path(out_dir)
    runs = load_runs(run_dirs)
    rows = runs.rows
    entries, notes = collect_entries(runs, published, np.random.default_rng(seed), n_boot)
    notes.append(f"[lo, hi]: 95% bootstrap interval over cases ({n_boot} replicates, seed {seed})")
    groups = class_groups(rows)
    regions, left_out = comparable(entries, "region")
    notes += left_out
    sections = [("Region-wise (SAT Table 1 layout)", _table(regions, "region"))]
    shared = shared_region_entries(entries, groups)
    if shared is not None:
        count = int(shared.loc[shared["key"] == OVERALL, "classes"].max())
        values = layout(shared, "region")
        heading = f"Region-wise on the {count} classes every method covers"
        sections.append((heading, html_table(values, best_mask(values))))
    for metric in METRICS:
        values = layout(regions, "region", (metric,)).droplevel("metric")
        stem = f"{_FIGURES}/regions_{metric}"
        figures.save(figures.region_bars(values, metric), out_dir / stem)
        sections.append((f"{metric.upper()} per region (Fig. 3 style)", figure(stem, f"{metric.upper()} per region")))
    classes, left_out = comparable(entries, "class")
    notes += left_out
    order_by = rows["method"].iloc[0]
    for metric in METRICS:
        values = layout(classes, "class", (metric,)).droplevel("metric", axis=1)
        stem = f"{_FIGURES}/classes_{metric}"
        figures.save(figures.class_dots(values, groups, metric, order_by), out_dir / stem)
        caption = f"{metric.upper()} per class, grouped by region, sorted by {order_by} (Fig. 4/5 style)"
        sections.append((f"{metric.upper()} per class", figure(stem, caption)))
    sections.append(("Class-wise", _table(classes, "class")))
    datasets, left_out = comparable(entries, "dataset")
    notes += left_out
    sections.append(("Dataset-wise (SAT Table 2 layout)", _table(datasets, "dataset")))
    if not runs.clicks.empty:
        heading = "Interactive clicks (DSC/NSD@k, final, normalised AUC)"
        sections.append((heading, html_table(clicks_table(runs.clicks))))
        curves = mean_curves(runs.clicks)
        curves = curves.assign(
            series=curves["model"] + " / " + curves["first_click"] + " + " + curves["prompt_policy"],
            dsc=curves["dsc"] * 100, nsd=curves["nsd"] * 100,
        )
        for metric in METRICS:
            stem = f"{_FIGURES}/clicks_{metric}"
            figures.save(figures.click_curves(curves, metric), out_dir / stem)
            caption = f"{metric.upper()} after k clicks: mean over cases per class (thin) and over classes (bold)"
            sections.append((f"{metric.upper()} vs clicks", figure(stem, caption)))
    board, chosen, left_out = ranked(entries, "class", baseline)
    notes += left_out
    heading = "Leaderboard (class-wise)" + (f", deltas against {chosen}" if chosen else "")
    sections.insert(0, (heading, html_table(leaderboard_view(board, chosen))))
    metadata = {str(path): _metadata(Path(path)) for path in run_dirs}
    index = out_dir / "index.html"
    index.write_text(page(title, sections, metadata, list(dict.fromkeys(coverage_lines(entries) + notes))))
    return index


def _table(entries: pd.DataFrame, by: str) -> str:
    values = layout(entries, by)
    lo, hi = (layout(entries, by, value=side) for side in ("lo", "hi"))
    return html_table(with_intervals(values, lo, hi), best_mask(values))


def _metadata(path: Path) -> dict:
    run_dir = path if path.is_dir() else path.parent
    return store.read_config(run_dir) if (run_dir / store.CONFIG_FILE).is_file() else {"metrics": str(path)}
