"""`bench demo`: the main job end to end on a bundled, deterministic synthetic CT set."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.data.class_maps import read_class_map
from bench.cli.reporting import print_click_summary, print_summary
from bench.cli.leaderboard import leaderboard_text
from bench.cli.tables import tables_text
from bench.engine.evaluation import evaluate_folders, evaluation_spec
from bench.engine.presets import load_protocol
from bench.data.sources import folder_sources
from bench.engine.runner import run_cases
from bench.engine.spec import RunSpec
from bench.data.synthetic import CLASSES, PRETEND_MODELS, write_demo_set
from protocols.protocol import with_overrides

CLICK_MODELS = ("region_growing", "oracle")


def demo(out: Path = typer.Option(Path("results/runs/demo"), help="Folder for the demo data and runs.")) -> None:
    """Run everything on a synthetic CT set: score two pretend models, run the two weightless interactive models
    with `bench run` (harness protocol, 10 clicks), print tables and a leaderboard, write the HTML report."""
    data = write_demo_set(out / "data")
    typer.echo(f"synthetic CT set: {data} (4 cases, {len(CLASSES)} organs, spacing 0.8 x 0.8 x 2.5 mm)")
    for model in PRETEND_MODELS:
        spec = evaluation_spec(run=f"demo-{model}", model=model, predictions=data / "predictions" / model,
                               classes=CLASSES)
        outcome = evaluate_folders(data / "labels", out / "runs" / model, spec, dataset="demo", modality="CT",
                                   classes=CLASSES)
        print_summary(outcome.table, f"{model}: mean over {outcome.table.case_id.nunique()} cases (NSD @ 1 mm)",
                      spec.protocol.scoring.empty)
    protocol = with_overrides(load_protocol("harness"), n_clicks=10)
    sources = folder_sources(data / "images", data / "labels", read_class_map(data / "classes.json"),
                             dataset="demo", modality="CT")
    click_dirs = [out / "runs" / f"clicks-{model}" for model in CLICK_MODELS]
    for model, run_dir in zip(CLICK_MODELS, click_dirs):
        spec = RunSpec(run=f"demo-{model}", model=model, protocol=protocol)
        rows, _, _ = run_cases(sources, run_dir, spec, sources_label="synthetic demo set")
        print_click_summary(rows, f"bench run --model {model} --protocol harness: mean over "
                                  f"{rows.case_id.nunique()} cases", n_clicks=10)

    run_dirs = [out / "runs" / model for model in PRETEND_MODELS]
    typer.echo("\nRegion-wise (SAT Table 1 layout), 95% bootstrap intervals over cases:\n")
    typer.echo(tables_text(run_dirs, by="region", seed=0, n_boot=200), nl=False)
    typer.echo("\nClass-wise (SAT Table 3/4 layout):\n")
    typer.echo(tables_text(run_dirs, by="class"), nl=False)
    typer.echo("\n" + leaderboard_text(run_dirs), nl=False)
    from bench.views.report import write_report  # here, not at import: matplotlib slows every CLI start

    index = write_report(
        [*run_dirs, *click_dirs], out / "report", published=["sat-table1", "sat-table3", "sat-table4"]
    )
    typer.echo(f"\nreport: {index} (open it in a browser)")
