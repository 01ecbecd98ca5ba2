"""`bench report`: a static HTML page (tables, figures, run metadata, coverage) that opens from disk."""

from __future__ import annotations

from pathlib import Path

import typer



def report(
    run: list[Path] = typer.Option(..., "--run", help="Run folder (or metrics.parquet); repeat for several runs."),
    out: Path = typer.Option(..., "--out", help="Folder for index.html and figures/."),
    published: list[str] = typer.Option([], "--published", help="Published table to include; repeatable."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap intervals."),
    n_boot: int = typer.Option(200, "--n-boot", help="Bootstrap replicates per interval."),
    baseline: str = typer.Option(None, "--baseline", help="Leaderboard baseline (default: nnU-Nets if present)."),
) -> None:
    """Write the HTML report; open OUT/index.html in a browser."""
    from bench.report import write_report  # here, not at import: matplotlib slows every CLI start

    try:
        index = write_report(run, out, published, seed, n_boot, baseline)
    except (ValueError, KeyError, FileNotFoundError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"report: {index}")
