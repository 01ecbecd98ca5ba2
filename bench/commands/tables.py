"""`bench tables`: class-, region- or dataset-wise macro averages of runs next to published numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from bench import store
from bench.catalog import CatalogError, load_catalog, term_key
from bench.tables import (
    best_mask, comparable, coverage_lines, layout, published_entries, render, run_entries, shared_region_entries,
    with_intervals,
)
from protocols import aggregate, stats
from protocols.interactive import SUMMARY_KEYS, summarise_clicks
from protocols.published import load_published

BY = ("class", "region", "dataset")
METRIC_CHOICES = {"dsc": ("dsc",), "nsd": ("nsd",), "both": aggregate.METRICS}


@dataclass(frozen=True)
class Runs:
    """Rows of one or more runs: standard rows labelled with the catalog's terms, interactive click rows apart."""

    rows: pd.DataFrame
    clicks: pd.DataFrame
    notes: list[str]


def load_runs(run_dirs: Sequence[Path]) -> Runs:
    """Read the runs' metrics; click rows (a ``click`` value) are summarised per click, not macro-averaged."""
    rows = store.read_metrics(run_dirs)
    is_click = rows["click"].notna() if "click" in rows.columns else pd.Series(False, index=rows.index)
    standard = rows[~is_click]
    labelled = aggregate.attach_terms(standard, load_catalog().terms, term_key)
    unassigned = sorted(labelled.loc[labelled["group"] == aggregate.UNASSIGNED, "key"].unique())
    notes = [f"classes not in the catalog (region 'unassigned'): {', '.join(unassigned)}"] if unassigned else []
    return Runs(rows=labelled, clicks=rows[is_click], notes=notes)


def satds_dataset_name(name: str) -> str:
    """The SAT-DS name of a dataset named as a paper prints it; unknown names stay as they are."""
    try:
        return load_catalog().dataset(name).name
    except CatalogError:
        return name


def collect_entries(
    runs: Runs, published: Sequence[str] = (), intervals: np.random.Generator | None = None, n_boot: int = 1000,
) -> tuple[pd.DataFrame, list[str]]:
    """(entries of runs and published tables in run order, notes); bootstrap intervals if a generator is given."""
    if runs.rows.empty:
        raise ValueError("the runs hold no standard (non-click) rows to macro-average")
    scores = aggregate.all_scores(runs.rows)
    ci = stats.bootstrap_ci(runs.rows, intervals, n_boot=n_boot) if intervals is not None else None
    parts = [run_entries(scores[level], ci[level] if ci else None) for level in aggregate.LEVELS]
    notes = list(runs.notes)
    for name in published:
        entries, skipped = published_entries(load_published(name), term_key, satds_dataset_name)
        parts.append(entries)
        notes += skipped
    entries = pd.concat(parts, ignore_index=True)
    position = {method: i for i, method in enumerate(dict.fromkeys([*runs.rows["method"], *entries["method"]]))}
    return entries.sort_values("method", key=lambda m: m.map(position), kind="stable"), notes


def protocol_text(
    runs: Runs, published: Sequence[str] = (), by: str = "region", metric: str = "both", fmt: str = "md",
    seed: int | None = None, n_boot: int = 1000,
) -> str:
    """The table of one protocol (with 95% bootstrap intervals when a seed is given), then notes."""
    generator = np.random.default_rng(seed) if seed is not None else None
    entries, notes = collect_entries(runs, published, generator, n_boot)
    chosen, left_out = comparable(entries, by)
    metrics = METRIC_CHOICES[metric]
    values = layout(chosen, by, metrics)
    text = values
    if seed is not None:
        lo, hi = (layout(chosen, by, metrics, value=v) for v in ("lo", "hi"))
        text = with_intervals(values, lo, hi)
        notes.append(f"[lo, hi]: 95% bootstrap interval over cases ({n_boot} replicates, seed {seed})")
    body = render(text, fmt, best=best_mask(values))
    shared = shared_region_entries(entries, aggregate.class_groups(runs.rows)) if by == "region" else None
    if shared is not None:
        values = layout(shared, "region", metrics)
        count = int(shared.loc[shared["key"] == aggregate.OVERALL, "classes"].max())
        body += f"\nOn the {count} classes every method covers (published class values):\n\n"
        body += render(values, fmt, best=best_mask(values))
    lines = [*coverage_lines(entries), *left_out, *notes]
    return body + "".join(f"\n- {line}" for line in lines) + ("\n" if lines else "")


def clicks_table(clicks: pd.DataFrame) -> pd.DataFrame:
    """Interactive runs: DSC/NSD@1/3/5/10, final value and normalised AUC per (model, class, policy), percent."""
    summary = summarise_clicks(clicks)
    table = summary.set_index([*(c for c in SUMMARY_KEYS if c in summary.columns), "cases"])
    return table[[c for c in table.columns if c.startswith(aggregate.METRICS)]] * 100


def clicks_text(clicks: pd.DataFrame, fmt: str = "md") -> str:
    table = clicks_table(clicks)
    unmarked = pd.DataFrame(False, index=table.index, columns=table.columns)
    return "Interactive clicks (percent):\n\n" + render(table, fmt, best=unmarked)


def tables_text(
    run_dirs: Sequence[Path], published: Sequence[str] = (), by: str = "region", metric: str = "both",
    fmt: str = "md", seed: int | None = None, n_boot: int = 1000,
) -> str:
    """`bench tables` output: the protocol table of the standard rows, then the click summary if any."""
    if by not in BY:
        raise ValueError(f"unknown --by {by!r}; choose one of {', '.join(BY)}")
    if metric not in METRIC_CHOICES:
        raise ValueError(f"unknown --metric {metric!r}; choose one of {', '.join(METRIC_CHOICES)}")
    runs = load_runs(run_dirs)
    parts = [protocol_text(runs, published, by, metric, fmt, seed, n_boot)] if not runs.rows.empty else []
    if not runs.clicks.empty:
        parts.append(clicks_text(runs.clicks, fmt))
    return "\n".join(parts)


def tables(
    run: list[Path] = typer.Option(..., "--run", help="Run folder (or metrics.parquet); repeat for several runs."),
    published: list[str] = typer.Option([], "--published", help="Published table, e.g. sat-table1; repeatable."),
    by: str = typer.Option("region", "--by", help="class | region | dataset"),
    metric: str = typer.Option("both", "--metric", help="dsc | nsd | both"),
    fmt: str = typer.Option("md", "--format", help="md | csv | latex"),
    seed: int = typer.Option(None, "--ci-seed", help="Add 95% bootstrap intervals over cases, with this seed."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap replicates for --ci-seed."),
) -> None:
    """Tables like SAT Table 1 (by region) and Table 2 (by dataset or class); best values marked."""
    try:
        typer.echo(tables_text(run, published, by, metric, fmt, seed, n_boot), nl=False)
    except (ValueError, KeyError, FileNotFoundError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
