"""The `bench` command line: one typer app; each command lives in its own module under `bench/commands/`."""

from __future__ import annotations

import typer

from bench.commands import clicks, compare, demo, evaluate, leaderboard, report, run, tables
from bench.commands.datasets import datasets_app
from bench.commands.models import models_app

app = typer.Typer(
    help="Benchmark universal medical image segmentation models with SAT-DS protocols (DSC, NSD).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("evaluate")(evaluate.evaluate)
app.command("demo")(demo.demo)
app.command("tables")(tables.tables)
app.command("leaderboard")(leaderboard.leaderboard_command)
app.command("compare")(compare.compare)
app.command("report")(report.report)
app.command("clicks")(clicks.clicks)
app.command("run")(run.run)
app.add_typer(datasets_app, name="datasets")
app.add_typer(models_app, name="models")

if __name__ == "__main__":
    app()
