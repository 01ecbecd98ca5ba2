"""Write ``index.html`` and ``figures/`` for runs (the only I/O of the report; layout lives in page/figures).

Sections: a header (date, harness version and commit, settings, each run's protocol, grid and coverage), the
leaderboard, region/class/dataset tables with 95% intervals, Fig. 3 bars with error bars, per-region class
panels, the interactive clicks section (curves with intervals, SAM-Med3D Table 3 layout) and pictures of the
segmentations. A run with only click rows gets the header and the clicks section.
"""

from __future__ import annotations

import html
import os
import platform
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bench.views.leaderboard import leaderboard_view, ranked
from bench.engine.provenance import git_commit, harness_version
from bench.views.report import figures
from bench.views.report.cost import cost_sections
from bench.views.report.page import anchor, figure, html_table, page
from bench.views.report.pictures import picture_sections
from bench.views.runs import Runs, collect_entries, empty_lines, load_runs
from bench.views.tables import (
    UNSCALED,
    best_mask,
    comparability_layout,
    comparable,
    coverage_lines,
    cross_notes,
    layout,
    plural,
    shared_region_entries,
)
from protocols import aggregate
from protocols.aggregate import METRICS, OVERALL, class_groups
from protocols.interactive import SUMMARY_KEYS, summarise_clicks
from bench.views.click_tables import click_curves, per_slice_runs, table3_layout
from protocols.lesions import SIZE_BINS, detection_by_size
from protocols.stats import paired_tests

_FIGURES = "figures"


def write_report(
    run_dirs: Sequence[Path], out_dir: Path, published: Sequence[str] = (), seed: int = 0, n_boot: int = 200,
    baseline: str | None = None, title: str = "Segmentation benchmark report", empty_policy: str | None = None,
    pictures: int = 6, picture_case: str | None = None, metrics: Sequence[str] = METRICS,
) -> Path:
    """Write the report for ``run_dirs`` (with ``published`` tables) under ``out_dir``; returns index.html.

    Every aggregate shows a 95% bootstrap interval over cases resampled within datasets (``n_boot`` replicates
    from ``seed``). ``pictures`` classes of the first run (its lowest mean DSC first) get best/median/worst
    case pictures, or only ``picture_case``; 0 turns pictures off. ``metrics`` are the row columns the tables,
    figures and tests show (DSC and NSD by default; e.g. ``("hd95_mm",)``).
    """
    out_dir = Path(out_dir)
    runs = load_runs(run_dirs, empty_policy)
    out_dir.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-report-"))
    try:
        _write(runs, run_dirs, build, published, seed, n_boot, baseline, title, empty_policy, pictures, picture_case,
               metrics)
        _swap_in(build, out_dir)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return out_dir / "index.html"


def _swap_in(build: Path, out_dir: Path) -> None:
    """Move a finished report from ``build`` into ``out_dir``: the old figures go, the new ones come in, and
    index.html is replaced last in one step, so a reader never sees a page with missing figures."""
    old = build / "old-figures"
    if (out_dir / _FIGURES).exists():
        os.replace(out_dir / _FIGURES, old)
    if (build / _FIGURES).exists():
        os.replace(build / _FIGURES, out_dir / _FIGURES)
    os.replace(build / "index.html", out_dir / "index.html")


def _write(runs: Runs, run_dirs, out_dir: Path, published, seed, n_boot, baseline, title, empty_policy, pictures,
           picture_case, metrics) -> None:
    """The whole report written under ``out_dir`` (a fresh folder)."""
    sections, notes = [], []
    picture_html, picture_notes, pictured = [], [], []
    if pictures and not runs.rows.empty:
        picture_html, picture_notes, pictured = picture_sections(runs, out_dir, pictures, picture_case)
    if not runs.rows.empty:
        links = {key: "#" + anchor("pictures", key) for key in pictured}
        standard, notes = _standard_sections(runs, out_dir, published, seed, n_boot, baseline, links, metrics)
        sections += standard
    if not runs.clicks.empty:
        sections += _click_sections(runs.clicks, runs.configs, out_dir, np.random.default_rng(seed), n_boot)
        notes.append("SAM-Med3D Table 3 was scored on volumes resampled to 1.5 mm and cropped to 128^3 around the "
                     "target: cross-grid context beside any run of this harness")
    cost, cost_notes = cost_sections(run_dirs, out_dir, _FIGURES, np.random.default_rng(seed), n_boot)
    sections += cost
    notes += cost_notes
    sections += picture_html
    notes += picture_notes
    facts = _facts(runs, run_dirs, seed, n_boot, empty_policy, published)
    metadata_ = {str(path): runs.configs.get(str(path)) or {"metrics": str(path)} for path in run_dirs}
    (out_dir / "index.html").write_text(page(title, sections, metadata_, list(dict.fromkeys(notes)), facts))


def _drawn(heading: str, draw) -> tuple[str, str]:
    """A section, or, when its data cannot make it (a ValueError saying why), the section saying why."""
    try:
        return heading, draw()
    except ValueError as error:
        return heading, f'<p class="notes">not drawn: {html.escape(str(error))}</p>'


def _standard_sections(
    runs: Runs, out_dir: Path, published: Sequence[str], seed: int, n_boot: int, baseline: str | None,
    links: dict[str, str], metrics: Sequence[str] = METRICS,
) -> tuple[list[tuple[str, str]], list[str]]:
    rows = runs.rows
    entries, notes = collect_entries(runs, published, np.random.default_rng(seed), n_boot, metrics=metrics)
    notes = [*coverage_lines(entries), *empty_lines(runs), *notes,
             f"[lo, hi]: 95% bootstrap interval, cases resampled within each dataset ({n_boot} replicates, seed {seed})"]
    groups = class_groups(rows)
    run_names = list(dict.fromkeys(rows["method"]))
    board, chosen, board_notes = ranked(entries, "class", baseline, aggregate.Cells(runs.rows, metrics).table,
                                        metrics)
    notes += board_notes
    heading = "Leaderboard (class-wise)" + (f", deltas against {chosen}" if chosen else "")
    sections = [(heading, html_table(leaderboard_view(board, chosen, metrics)))]
    regions, left_out = comparable(entries, "region")
    notes += left_out + cross_notes(regions)
    sections.append(("Region-wise (SAT Table 1 layout)", _table(regions, "region", run_names, None, metrics)))
    shared = shared_region_entries(entries, groups)
    if shared is not None:
        count = int(shared.loc[shared["key"] == OVERALL, "classes"].max())
        values = layout(shared, "region", metrics)
        marks = best_mask(values, comparability_layout(shared, "region", metrics).reindex_like(values), run_names)
        sections.append((f"Region-wise on the {count} classes every method covers", html_table(values, marks)))
    for metric in metrics:
        values, lo, hi = (layout(regions, "region", (metric,), value=v).droplevel("metric") for v in ("value", "lo", "hi"))
        stem = f"{_FIGURES}/regions_{metric}"
        figures.save(figures.region_bars(values, metric, lo, hi), out_dir / stem)
        caption = f"{metric.upper()} per region; error bars: 95% bootstrap intervals of the runs"
        sections.append((f"{metric.upper()} per region (Fig. 3 style)", figure(stem, caption)))
    classes, left_out = comparable(entries, "class")
    notes += left_out
    order_by = run_names[0]
    for metric in metrics:
        values, lo, hi = (layout(classes, "class", (metric,), value=v).droplevel("metric", axis=1)
                          for v in ("value", "lo", "hi"))
        panels = figures.class_panels(values, groups, order_by)
        parts = []
        for i, (panel_title, keys) in enumerate(panels):
            stem = f"{_FIGURES}/classes_{metric}_{i:02d}"
            figures.save(figures.class_dots(values.loc[keys], metric, panel_title, lo.loc[keys], hi.loc[keys]),
                         out_dir / stem)
            parts.append(figure(stem, f"{metric.upper()}, {panel_title}: {len(keys)} classes sorted by {order_by}"))
        heading = f"{metric.upper()} per class, one panel per region (Fig. 4/5 style, whiskers: 95% intervals)"
        sections.append((heading, "".join(parts)))
    sections.append(("Class-wise", _table(classes, "class", run_names, links, metrics)))
    if len(run_names) > 1:
        sections.append(_drawn("Paired tests at the patient level, each run against " + run_names[0],
                               lambda: _paired_table(rows, run_names, np.random.default_rng(seed), n_boot, metrics)))
    datasets, left_out = comparable(entries, "dataset")
    notes += left_out
    sections.append(("Dataset-wise (SAT Table 2 layout)", _table(datasets, "dataset", run_names, None, metrics)))
    if {f"lesions_{name}" for name in SIZE_BINS} <= set(rows.columns):
        sections.append(_lesion_section(rows, out_dir))
    return sections, notes


def _lesion_section(rows: pd.DataFrame, out_dir: Path) -> tuple[str, str]:
    """Lesion detection by size (runs scored with `--metrics lesion`): pooled counts and the detection-rate plot."""
    scored = rows.dropna(subset=[f"lesions_{name}" for name in SIZE_BINS])
    table = detection_by_size(scored)
    stem = f"{_FIGURES}/lesions_by_size"
    figures.save(figures.detection_bars(table), out_dir / stem)
    shown = table.assign(rate=100 * table["rate"]).set_index(["method", "size_bin"])
    caption = ("reference lesions found (matched at IoU >= 0.5) by volume, pooled over cases and lesion classes; "
               "n: reference lesions in the bin")
    return "Lesion detection by size", html_table(shown) + figure(stem, caption)


def _paired_table(rows: pd.DataFrame, runs: Sequence[str], rng: np.random.Generator, n_boot: int,
                  metrics: Sequence[str] = METRICS) -> str:
    """Wilcoxon over cases (each case's mean over the classes both runs scored), the datasets-first mean
    difference with its 95% bootstrap interval, the rank-biserial effect size and Holm-adjusted p-values."""
    reference = rows[rows["method"] == runs[0]]
    tests = paired_tests(reference, {m: rows[rows["method"] == m] for m in runs[1:]}, tuple(metrics), rng, n_boot)
    scale = tests["metric"].map(lambda m: 1.0 if m in UNSCALED else 100.0)
    table = pd.DataFrame({
        "run": tests["run"], "metric": tests["metric"], "cases": tests["cases"].astype(str),
        "classes": tests["classes"].astype(str), "datasets": tests["datasets"].astype(str),
        runs[0]: scale * tests["mean_a"], "run mean": scale * tests["mean_b"],
        "difference": scale * tests["difference"],
        "r": tests["effect_size"], "p": tests["p_value"].map("{:.3g}".format),
        "p (Holm)": tests["p_holm"].map("{:.3g}".format),
    }).set_index(["run", "metric"])
    nan = pd.DataFrame(np.nan, index=table.index, columns=table.columns)
    lo, hi = nan.copy(), nan.copy()
    lo["difference"], hi["difference"] = (scale * tests["lo"]).to_numpy(), (scale * tests["hi"]).to_numpy()
    note = ('<p class="notes">Holm correction over the {} tests of this table; difference: run minus {}, '
            "cases resampled within datasets for the 95% interval; r: rank-biserial effect size.</p>")
    return html_table(table, None, lo, hi) + note.format(len(tests), html.escape(runs[0]))


def _table(entries: pd.DataFrame, by: str, runs: Sequence[str], links: dict[str, str] | None = None,
           metrics: Sequence[str] = METRICS) -> str:
    values = layout(entries, by, metrics)
    lo, hi = (layout(entries, by, metrics, value=side) for side in ("lo", "hi"))
    marks = best_mask(values, comparability_layout(entries, by, metrics).reindex_like(values), runs)
    return html_table(values, marks, lo, hi, links)


def _click_sections(clicks: pd.DataFrame, configs: dict, out_dir: Path, rng: np.random.Generator,
                    n_boot: int) -> list[tuple[str, str]]:
    summary = summarise_clicks(clicks)
    table = summary.set_index([*(c for c in SUMMARY_KEYS if c in summary.columns), "cases"])
    table = table[[c for c in table.columns if c.startswith(METRICS)]] * 100
    sections = [("Interactive clicks (DSC/NSD@k, final, normalised AUC)", html_table(table))]
    curves = click_curves(clicks, rng, n_boot)
    per_slice = per_slice_runs(configs)
    layout3 = table3_layout(curves, per_slice)
    lo, hi = (table3_layout(curves, per_slice, value=v).reindex_like(layout3) for v in ("dsc_lo", "dsc_hi"))
    sections.append(("Overall DSC by clicks (SAM-Med3D Table 3 layout)", html_table(layout3, None, lo, hi)))
    for metric in METRICS:
        stem = f"{_FIGURES}/clicks_{metric}"
        figures.save(figures.click_curves(curves, metric), out_dir / stem)
        caption = (f"{metric.upper()} after k clicks: mean over cases (each case's mean over classes), "
                   "band: 95% bootstrap interval over cases")
        sections.append((f"{metric.upper()} vs clicks", figure(stem, caption)))
    return sections


def _facts(
    runs: Runs, run_dirs: Sequence[Path], seed: int, n_boot: int, empty_policy: str | None, published: Sequence[str],
) -> dict[str, str]:
    """The header: when, with what, how, and what each run rests on."""
    facts = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "harness": f"medseg-bench {harness_version()}" + (f", commit {commit}" if (commit := git_commit()) else ""),
        "python": platform.python_version(),
        "settings": (f"bootstrap {n_boot} replicates, seed {seed}, cases resampled within datasets; empty policy "
                     f"{empty_policy or 'as stored'}; published: {', '.join(published) or 'none'}"),
    }
    rows = pd.concat([runs.rows, runs.clicks], ignore_index=True)
    for path in run_dirs:
        config = runs.configs.get(str(path)) or {}
        name = config.get("run") or Path(path).name
        part = rows[rows["run"] == name] if "run" in rows.columns else rows.iloc[:0]
        scoring = (config.get("protocol") or {}).get("scoring") or {}
        protocol = (f"{config.get('command', 'evaluate')}; grid {part['grid'].iloc[0] if len(part) else '?'}; "
                    f"empty policy {part['policy'].iloc[0] if len(part) else '?'}; "
                    f"NSD tolerance {scoring.get('tolerance_mm', '?')} mm"
                    + (" (some classes their own)" if scoring.get("class_tolerance_mm") else ""))
        scored = part[part[list(METRICS)].notna().any(axis=1)] if len(part) else part
        coverage = ", ".join([plural(scored["class_name"].nunique(), "classes"),
                              plural(scored["dataset"].nunique(), "datasets"),
                              plural(scored.groupby(["dataset", "case_id"]).ngroups, "cases")]) if len(scored) else (
            "no scored rows")
        made_with = config.get("provenance") or {}
        made = ", ".join(f"{label} {made_with[k]}" for k, label in (("harness_version", "version"),
                         ("git_commit", "commit"), ("date", "on")) if made_with.get(k))
        facts[f"run {name}"] = f"{protocol}; {coverage}" + (f"; made with {made}" if made else "")
    return facts
