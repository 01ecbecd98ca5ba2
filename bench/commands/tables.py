"""`bench tables`: class-, region- or dataset-wise macro averages of runs next to published numbers.

The table goes to stdout alone and the notes to stderr, so ``bench tables ... --format latex > table.tex``
holds only LaTeX and ``--format csv > table.csv`` parses as one CSV table of plain numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import typer

from bench.runs import Runs, collect_entries, empty_lines, load_runs
from bench.tables import (
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
from protocols.interactive import SUMMARY_KEYS, summarise_clicks

BY = ("class", "region", "dataset")
METRIC_CHOICES = {"dsc": ("dsc",), "nsd": ("nsd",), "both": aggregate.METRICS}
Format = Literal["md", "csv", "latex"]
EmptyPolicy = Literal["sat", "nan"]
FORMAT_HELP = "md | csv (plain numbers, intervals as lo/hi columns) | latex (booktabs tabular)"
POLICY_HELP = ("Re-apply this empty-mask policy from the stored ref_empty/pred_empty flags (sat: both empty -> 1; "
               "nan: left out); default: each run as stored.")


def marked(values: pd.DataFrame, entries: pd.DataFrame, by: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Best-value marks among comparable entries only (same grid, policy and coverage; see bench.tables)."""
    runs = entries.loc[entries["source"] == "run", "method"].unique()
    return best_mask(values, comparability_layout(entries, by, metrics).reindex_like(values), runs)


def protocol_table(
    runs: Runs, published: Sequence[str] = (), by: str = "region", metric: str = "both", fmt: str = "md",
    seed: int | None = None, n_boot: int = 1000,
) -> tuple[str, list[str]]:
    """(the table of one protocol, with 95% bootstrap intervals when a seed is given; notes)."""
    generator = np.random.default_rng(seed) if seed is not None else None
    entries, notes = collect_entries(runs, published, generator, n_boot)
    chosen, left_out = comparable(entries, by)
    metrics = METRIC_CHOICES[metric]
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
) -> tuple[str, list[str]]:
    """(`bench tables` output: the protocol table of the standard rows, then the click summary if any; notes)."""
    if by not in BY:
        raise ValueError(f"unknown --by {by!r}; choose one of {', '.join(BY)}")
    if metric not in METRIC_CHOICES:
        raise ValueError(f"unknown --metric {metric!r}; choose one of {', '.join(METRIC_CHOICES)}")
    runs = load_runs(run_dirs, empty_policy)
    parts, notes = [], []
    if not runs.rows.empty:
        body, notes = protocol_table(runs, published, by, metric, fmt, seed, n_boot)
        parts.append(body)
    if not runs.clicks.empty:
        if parts and fmt == "csv":
            notes.append("the interactive click summary is left out of CSV beside a protocol table: "
                         "run `bench tables` on the click runs alone")
        else:
            heading = {"md": "Interactive clicks (percent):\n\n", "latex": "% Interactive clicks (percent)\n", "csv": ""}
            parts.append(heading[fmt] + clicks_text(runs.clicks, fmt))
    return "\n".join(parts), notes


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


def tables(
    run: list[Path] = typer.Option(..., "--run", help="Run folder (or metrics.parquet); repeat for several runs."),
    published: list[str] = typer.Option([], "--published", help="Published table, e.g. sat-table1; repeatable."),
    by: Literal["class", "region", "dataset"] = typer.Option("region", "--by", help="Rows: class, region or dataset."),
    metric: Literal["dsc", "nsd", "both"] = typer.Option("both", "--metric", help="Metric(s) to show."),
    fmt: Format = typer.Option("md", "--format", help=FORMAT_HELP),
    seed: int = typer.Option(None, "--ci-seed", help="Add 95% bootstrap intervals over cases, with this seed."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap replicates for --ci-seed."),
    empty_policy: EmptyPolicy = typer.Option(None, "--empty-policy", help=POLICY_HELP),
) -> None:
    """Tables like SAT Table 1 (by region) and Table 2 (by dataset or class); best values marked among comparables.

    The table goes to stdout, notes to stderr."""
    try:
        body, notes = tables_output(run, published, by, metric, fmt, seed, n_boot, empty_policy)
    except (ValueError, KeyError, FileNotFoundError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    typer.echo(body, nl=False)
    echo_notes(notes)
