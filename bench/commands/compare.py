"""`bench compare RUN_A RUN_B`: paired Wilcoxon signed-rank tests on matched (dataset, case, class) pairs."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.commands.tables import load_runs
from protocols.aggregate import METRICS
from protocols.stats import PairedTest, paired_test


def compare_text(run_a: Path, run_b: Path) -> str:
    """One line per metric: matched pairs, means, median difference (B - A), Wilcoxon statistic and p-value."""
    a, b = load_runs([run_a]), load_runs([run_b])
    results = [paired_test(a.rows, b.rows, metric) for metric in METRICS]
    head = "| metric | pairs | A | B | median B-A | W | p | only A | only B | NaN dropped |\n"
    head += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    body = "".join(_line(result) for result in results)
    notes = "".join(f"- {note}\n" for note in dict.fromkeys([*a.notes, *b.notes]))
    return f"A = {run_a}\nB = {run_b}\n\n{head}{body}" + (f"\n{notes}" if notes else "")


def _line(r: PairedTest) -> str:
    return (f"| {r.metric} | {r.pairs} | {100 * r.mean_a:.2f} | {100 * r.mean_b:.2f} "
            f"| {100 * r.median_difference:+.2f} "
            f"| {r.statistic:.1f} | {r.p_value:.3g} | {r.only_a} | {r.only_b} | {r.dropped_nan} |\n")


def compare(
    run_a: Path = typer.Argument(..., help="First run folder (or metrics.parquet)."),
    run_b: Path = typer.Argument(..., help="Second run folder (or metrics.parquet)."),
) -> None:
    """Paired Wilcoxon signed-rank test of DSC and NSD between two runs on the pairs both scored."""
    try:
        typer.echo(compare_text(run_a, run_b), nl=False)
    except (ValueError, KeyError, FileNotFoundError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
