"""`bench demo`: the main job end to end on a bundled, deterministic synthetic CT set."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.commands.clicks import run_clicks_demo
from bench.commands.evaluate import print_summary
from bench.evaluation import RunSettings, evaluate_folders
from bench.synthetic import CLASSES, PRETEND_MODELS, write_demo_set


def demo(out: Path = typer.Option(Path("results/runs/demo"), help="Folder for the demo data and runs.")) -> None:
    """Generate the synthetic set, score two pretend models with DSC and NSD, simulate 10 clicks with the
    weightless interactive model, and print the tables."""
    data = write_demo_set(out / "data")
    typer.echo(f"synthetic CT set: {data} (4 cases, {len(CLASSES)} organs, spacing 0.8 x 0.8 x 2.5 mm)")
    for model in PRETEND_MODELS:
        settings = RunSettings(run=f"demo-{model}", model=model, dataset="demo", modality="CT", classes=CLASSES)
        outcome = evaluate_folders(data / "predictions" / model, data / "labels", out / "runs" / model, settings)
        print_summary(outcome.table, f"{model}: mean over {outcome.table.case_id.nunique()} cases (NSD @ 1 mm)")
    run_clicks_demo(data, out / "runs" / "clicks", n_clicks=10)
