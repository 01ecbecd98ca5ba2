"""`bench report`: a static HTML page (tables, figures, pictures, run metadata, coverage) that opens from disk."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.cli.tables import METRIC_HELP, POLICY_HELP, EmptyPolicy
from protocols.class_metrics import view_columns
from protocols.errors import BenchError


def report(
    run: list[Path] = typer.Option(..., "--run", help="Run folder (or metrics.parquet); repeat for several runs."),
    out: Path = typer.Option(..., "--out", help="Folder for index.html and figures/."),
    published: list[str] = typer.Option([], "--published", help="Published table to include; repeatable."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap intervals."),
    n_boot: int = typer.Option(200, "--n-boot", help="Bootstrap replicates per interval."),
    baseline: str = typer.Option(None, "--baseline", help="Leaderboard baseline (default: nnU-Nets if present)."),
    empty_policy: EmptyPolicy = typer.Option(None, "--empty-policy", help=POLICY_HELP),
    pictures: int = typer.Option(6, "--pictures", help="Classes of the first run to picture (lowest DSC first); 0: none."),
    picture_case: str = typer.Option(None, "--picture-case", help="Picture this case instead of best/median/worst."),
    metric: str = typer.Option("both", "--metric", help=METRIC_HELP),
) -> None:
    """Write the HTML report; open OUT/index.html in a browser."""
    from bench.views.report import (
        write_report,  # here, not at import: matplotlib slows every CLI start
    )

    if out.exists() and not out.is_dir():
        raise BenchError(f"{out}: exists and is not a folder (--out is the folder for index.html and figures/)")
    index = write_report(run, out, published, seed, n_boot, baseline, empty_policy=empty_policy,
                         pictures=pictures, picture_case=picture_case, metrics=view_columns(metric))
    typer.echo(f"report: {index}")
