"""`bench export --run DIR --format csv|json|nnunet-summary`: a run's per-case numbers for other tools."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from bench.engine import store
from bench.views.export import case_files, export_text


def export(
    run: Path = typer.Option(..., "--run", help="Run folder (or its metrics.parquet)."),
    fmt: Literal["csv", "json", "nnunet-summary"] = typer.Option(
        "csv", "--format", help="csv (one line per case and class) | json (records) | nnunet-summary (summary.json)"),
    out: Path = typer.Option(None, "--out", help="Write to this file instead of stdout."),
    click: int = typer.Option(None, "--click", help="nnunet-summary of a click run: this click (default: final)."),
) -> None:
    """Export a run's per-case rows as CSV, JSON, or nnU-Net's summary.json (read by nnU-Net's tooling)."""
    rows = store.read_metrics([run])
    run_dir = run if run.is_dir() else run.parent
    config = store.read_config(run_dir) if (run_dir / store.CONFIG_FILE).is_file() else {}
    text = export_text(rows, fmt, config, case_files(config) if fmt == "nnunet-summary" else None, click)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    typer.echo(f"export: {out}", err=True)
