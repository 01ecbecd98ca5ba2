"""`bench tables`: class-, region- or dataset-wise macro averages of runs next to published numbers.

The table goes to stdout alone and the notes to stderr, so ``bench tables ... --format latex > table.tex``
holds only LaTeX and ``--format csv > table.csv`` parses as one CSV table of plain numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import typer

from protocols.metrics import EMPTY_POLICIES
from bench.views.click_tables import (
    TABLE3,
    click_curves,
    paper_era_runs,
    per_slice_runs,
    running_max,
    table3_layout,
)
from bench.views.cost import cost_text, parse_targets
from bench.views.published import load_published
from bench.views.runs import Runs, collect_entries, empty_lines, load_runs
from bench.views.tables import (
    canonical_format,
    best_mask,
    comparability_layout,
    comparable,
    coverage_lines,
    cross_notes,
    interval_columns,
    layout,
    render,
    shared_region_entries,
    with_intervals,
)
from protocols import aggregate
from protocols.class_metrics import view_columns
from protocols.lesions import FRACTION_LESION_METRICS
from protocols.interactive import SUMMARY_KEYS, summarise_clicks
from protocols.errors import BenchError

BY = ("class", "region", "dataset")
CLICK_TABLES = (TABLE3, "sam-med3d-table4")
Scorer = Callable[[pd.DataFrame], dict[str, pd.DataFrame]]
METRIC_HELP = ("Metric(s) to show: both (DSC and NSD), dsc, nsd, or one scored with `bench evaluate --metrics`: "
               "iou, precision, recall, vol_diff, rel_vol_error, hd95, assd (distances: lower is better), or with "
               f"--metrics lesion: {', '.join(FRACTION_LESION_METRICS)}.")
Format = Literal["md", "markdown", "csv", "latex"]
EmptyPolicy = Literal[EMPTY_POLICIES]
FORMAT_HELP = "md (or markdown) | csv (plain numbers, intervals as lo/hi columns) | latex (booktabs)"
POLICY_HELP = ("Re-apply this empty-mask policy from the stored ref_empty/pred_empty flags (sat: both empty -> 1; "
               "nan: left out); default: each run as stored.")


def marked(values: pd.DataFrame, entries: pd.DataFrame, by: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Best-value marks among comparable entries only (same grid, policy and coverage; see bench.views.tables)."""
    runs = entries.loc[entries["source"] == "run", "method"].unique()
    return best_mask(values, comparability_layout(entries, by, metrics).reindex_like(values), runs)


def protocol_table(
    runs: Runs, published: Sequence[str] = (), by: str = "region", metric: str = "both", fmt: str = "md",
    seed: int | None = None, n_boot: int = 1000, scorer: Scorer = aggregate.all_scores,
) -> tuple[str, list[str]]:
    """(the table of one protocol, with 95% bootstrap intervals when a seed is given; notes)."""
    generator = np.random.default_rng(seed) if seed is not None else None
    metrics = view_columns(metric)
    entries, notes = collect_entries(runs, published, generator, n_boot, scorer, metrics)
    chosen, left_out = comparable(entries, by)
    values = layout(chosen, by, metrics)
    text = values
    if seed is not None:
        lo, hi = (layout(chosen, by, metrics, value=v) for v in ("lo", "hi"))
        text = interval_columns(values, lo, hi) if fmt == "csv" else with_intervals(values, lo, hi)
        notes.append(f"[lo, hi]: 95% bootstrap interval, cases resampled within each dataset ({n_boot} replicates, "
                     f"seed {seed})")
    body = render(text, fmt, best=None if fmt == "csv" else marked(values, chosen, by, metrics))
    shared = shared_region_entries(entries, aggregate.class_groups(runs.rows)) if by == "region" else None
    if shared is not None:
        count = int(shared.loc[shared["key"] == aggregate.OVERALL, "classes"].max())
        if fmt == "csv":
            notes.append(f"a second table (regions on the {count} classes every method covers) is printed only "
                         "with --format md or latex")
        else:
            shared_values = layout(shared, "region", metrics)
            heading = f"On the {count} classes every method covers (published class values):"
            body += ("\n% " if fmt == "latex" else "\n") + heading + "\n\n"
            body += render(shared_values, fmt, best=marked(shared_values, shared, "region", metrics))
    lines = [*coverage_lines(entries), *empty_lines(runs), *left_out, *cross_notes(chosen), *notes]
    return body, list(dict.fromkeys(lines))


def clicks_table(clicks: pd.DataFrame) -> pd.DataFrame:
    """Interactive runs: DSC/NSD@1/3/5/10, final value and normalised AUC per (model, class, policy), percent."""
    summary = summarise_clicks(clicks)
    table = summary.set_index([*(c for c in SUMMARY_KEYS if c in summary.columns), "cases"])
    return table[[c for c in table.columns if c.startswith(aggregate.METRICS)]] * 100


def clicks_text(clicks: pd.DataFrame, fmt: str = "md") -> str:
    table = clicks_table(clicks)
    unmarked = pd.DataFrame(False, index=table.index, columns=table.columns)
    return render(table, fmt, best=unmarked)


def tables_output(
    run_dirs: Sequence[Path], published: Sequence[str] = (), by: str = "region", metric: str = "both",
    fmt: str = "md", seed: int | None = None, n_boot: int = 1000, empty_policy: str | None = None,
    scorer: Scorer = aggregate.all_scores,
) -> tuple[str, list[str]]:
    """(`bench tables` output: the protocol table of the standard rows, then the click summary if any; notes).
    `scorer` computes the macro averages (pandas, or `dask_scores` on a cluster)."""
    if by not in BY:
        raise BenchError(f"unknown --by {by!r}; choose one of {', '.join(BY)}")
    view_columns(metric)  # an unknown name fails before any run is read
    runs = load_runs(run_dirs, empty_policy)
    parts, notes = [], []
    click_tables = [name for name in published if name in CLICK_TABLES]
    if not runs.rows.empty:
        body, notes = protocol_table(runs, [n for n in published if n not in CLICK_TABLES], by, metric, fmt, seed,
                                     n_boot, scorer)
        parts.append(body)
    elif set(published) - set(click_tables):
        notes.append(f"--published {', '.join(sorted(set(published) - set(click_tables)))}: these tables are "
                     "compared with scored runs (no click column); the runs given hold only clicks")
    if not runs.clicks.empty:
        if parts and fmt == "csv":
            notes.append("the interactive click summary is left out of CSV beside a protocol table: "
                         "run `bench tables` on the click runs alone")
        else:
            heading = {"md": "Interactive clicks (percent):\n\n", "latex": "% Interactive clicks (percent)\n", "csv": ""}
            parts.append(heading[fmt] + clicks_text(runs.clicks, fmt))
            table3, table3_notes = table3_text(runs, TABLE3 in click_tables, fmt, seed, n_boot)
            parts.append(table3)
            notes += table3_notes
    elif click_tables:
        notes.append(f"--published {', '.join(click_tables)}: SAM-Med3D's tables are laid out beside click runs "
                     "(`bench clicks` or `bench run` under a click protocol); the runs given hold no clicks")
    if "sam-med3d-table4" in click_tables:
        notes.append("sam-med3d-table4 is not laid out: its groups (A&T, Bone, Brain, Cardiac, Gland, Muscle, seen and "
                     "unseen lesions) are not defined class by class in the paper; `bench tables --published "
                     "sam-med3d-table4` alone prints it")
    return "\n".join(parts), notes


def table3_text(runs: Runs, published: bool, fmt: str, seed: int | None, n_boot: int) -> tuple[str, list[str]]:
    """SAM-Med3D Table 3 layout of the click runs (overall DSC, percent), the paper's rows below when asked."""
    generator = np.random.default_rng(seed) if seed is not None else None
    curves = click_curves(runs.clicks, generator, n_boot)
    per_slice = per_slice_runs(runs.configs)
    paper_era = runs.clicks[runs.clicks["run"].isin(paper_era_runs(runs.configs))]
    era = click_curves(running_max(paper_era), generator, n_boot) if not paper_era.empty else None
    values = table3_layout(curves, per_slice, published, paper_era=era)
    text = values
    if seed is not None:
        lo, hi = (table3_layout(curves, per_slice, value=v, paper_era=era).reindex_like(values)
                  for v in ("dsc_lo", "dsc_hi"))
        text = interval_columns(values, lo, hi) if fmt == "csv" else with_intervals(values, lo, hi)
    heading = {"md": "\nOverall DSC after k points (SAM-Med3D Table 3 layout; percent):\n\n",
               "latex": "% Overall DSC after k points (SAM-Med3D Table 3 layout; percent)\n", "csv": "\n"}
    unmarked = pd.DataFrame(False, index=text.index, columns=text.columns)
    notes = ["Table 3 layout: a run's value after k points is the datasets-first mean over cases of each case's "
             "mean over classes; per-slice runs (kN: round k gives each target slice its k-th point) and the others "
             "(k points) are in separate rows; runs under a protocol reporting the paper-era score (sam-med3d-paper) "
             "get a second row with each target's max DSC over clicks 1..k, as the paper reports"]
    if published:
        notes.append("SAM-Med3D paper rows: scored on 1.5 mm crops of 128^3 around the target, each case's best DSC "
                     "over its clicks (validation.py); cross-grid context, not ranked against the runs")
    return heading[fmt] + render(text, fmt, best=unmarked), notes


def tables_text(
    run_dirs: Sequence[Path], published: Sequence[str] = (), by: str = "region", metric: str = "both",
    fmt: str = "md", seed: int | None = None, n_boot: int = 1000, empty_policy: str | None = None,
) -> str:
    """The tables followed by their notes, as one text (for the demo and for reading in a terminal)."""
    body, notes = tables_output(run_dirs, published, by, metric, fmt, seed, n_boot, empty_policy)
    return body + "".join(f"\n- {line}" for line in notes) + ("\n" if notes else "")


def echo_notes(notes: Sequence[str]) -> None:
    """Notes go to stderr, one per line, so stdout holds only the table."""
    for line in notes:
        typer.echo(f"- {line}", err=True)


def published_text(names: Sequence[str], fmt: str) -> str:
    """Published tables alone (no run): one row per (level, key), one column per (method, metric), as printed."""
    parts = []
    for name in names:
        rows = load_published(name)
        wide = rows.pivot_table(index=["level", "key"], columns=["method", "metric"], values="value", sort=False)
        wide.columns = [f"{method} {metric}" for method, metric in wide.columns]
        wide = wide.reset_index()
        if fmt == "csv":
            parts.append(wide.to_csv(index=False))
            continue
        cells = [[str(v) if not isinstance(v, float) else ("-" if np.isnan(v) else f"{v:.2f}") for v in row]
                 for row in wide.itertuples(index=False)]
        if fmt == "latex":
            lines = [f"% {name}: {rows['caption'].iloc[0]}", "\\begin{tabular}{" + "l" * len(wide.columns) + "}",
                     " & ".join(wide.columns) + " \\\\", *(" & ".join(c) + " \\\\" for c in cells), "\\end{tabular}"]
        else:
            lines = [f"{name}: {rows['caption'].iloc[0]}", "", "| " + " | ".join(wide.columns) + " |",
                     "|" + "---|" * len(wide.columns), *("| " + " | ".join(c) + " |" for c in cells)]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def tables(
    run: list[Path] = typer.Option([], "--run", help="Run folder (or metrics.parquet); repeat for several runs."),
    published: list[str] = typer.Option([], "--published", help="Published table, e.g. sat-table1; repeatable."),
    by: Literal["class", "region", "dataset"] = typer.Option("region", "--by", help="Rows: class, region or dataset."),
    metric: str = typer.Option("both", "--metric", help=METRIC_HELP),
    fmt: Format = typer.Option("md", "--format", help=FORMAT_HELP),
    seed: int = typer.Option(None, "--ci-seed", help="Add 95% bootstrap intervals over cases, with this seed."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap replicates for --ci-seed."),
    empty_policy: EmptyPolicy = typer.Option(None, "--empty-policy", help=POLICY_HELP),
    executor: Literal["local", "dask"] = typer.Option("local", help="Compute the macro averages here (pandas) or "
                                                                    "on a Dask cluster (very large runs)."),
    scheduler: str = typer.Option(None, help="Dask scheduler address (default: a local cluster of --workers)."),
    workers: int = typer.Option(2, min=1, help="Size of the local Dask cluster (--executor dask, no --scheduler)."),
    cost: bool = typer.Option(False, "--cost", help="One row per run: DSC/NSD beside median seconds per case and "
                                                    "per call, peak memory and (click runs) NoC."),
    noc_targets: str = typer.Option(None, "--noc-targets", help="NoC targets for --cost, percent (default 85,90)."),
) -> None:
    """Tables like SAT Table 1 (by region) and Table 2 (by dataset or class); best values marked among comparables.

    The table goes to stdout, notes to stderr."""
    fmt = canonical_format(fmt)
    if not run and not published:
        raise BenchError("give --run RUN (repeatable) and/or --published TABLE (e.g. sat-table1)")
    if not run:
        typer.echo(published_text(published, fmt), nl=False)
        return
    if cost:
        body, notes = cost_text(run, parse_targets(noc_targets), fmt)
        typer.echo(body, nl=False)
        echo_notes(notes)
        return
    if executor == "dask":
        if view_columns(metric) != aggregate.METRICS:
            raise BenchError(f"--executor dask averages DSC and NSD; --metric {metric} runs locally")
        from bench.views.dask_aggregate import dask_scores
        from bench.engine.executors import dask_client

        with dask_client(workers, scheduler) as client:
            body, notes = tables_output(run, published, by, metric, fmt, seed, n_boot, empty_policy,
                                        scorer=partial(dask_scores, client=client))
    else:
        body, notes = tables_output(run, published, by, metric, fmt, seed, n_boot, empty_policy)
    typer.echo(body, nl=False)
    echo_notes(notes)
