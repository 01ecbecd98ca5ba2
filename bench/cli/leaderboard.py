"""`bench leaderboard`: runs ranked on the keys they all share, published entries beside them, deltas, coverage."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import typer

from bench.cli.tables import METRIC_HELP, POLICY_HELP, EmptyPolicy, Format, echo_notes
from bench.views.cost import cost_table, cost_text, parse_targets
from bench.views.leaderboard import ranked, render_leaderboard, with_cost
from bench.views.tables import canonical_format
from bench.views.runs import collect_entries, empty_lines, load_runs
from bench.views.published import list_published
from bench.views.tables import UNSCALED
from protocols import aggregate
from protocols.class_metrics import view_columns


def leaderboard_output(
    run_dirs: Sequence[Path], published: Sequence[str] | None = None, baseline: str | None = None,
    by: str = "class", fmt: str = "md", empty_policy: str | None = None, metric: str = "both", cost: bool = False,
    noc_targets: str | None = None,
) -> tuple[str, list[str]]:
    """(title and leaderboard, notes). ``published`` defaults to every packaged table; ``baseline`` to the
    nnU-Net specialists when present; ``metric`` as `bench tables --metric` (the first ranks); ``cost`` puts the
    runs' median seconds per case and per call, peak memory and NoC beside their DSC/NSD, and the runs' whole
    cost table (`bench.views.cost`: click runs too) below (md, latex). Click runs are not ranked: said in a note."""
    metrics = view_columns(metric)
    runs = load_runs(run_dirs, empty_policy)
    entries, notes = collect_entries(runs, list_published() if published is None else list(published),
                                     metrics=metrics)
    board, chosen, board_lines = ranked(entries, by, baseline, aggregate.Cells(runs.rows, metrics).table, metrics)
    unit = "mm" if metrics[0] in UNSCALED else "percent"
    title = f"Leaderboard ({by}-wise, {unit})" + (f", deltas against {chosen}" if chosen else "")
    targets = parse_targets(noc_targets)
    if cost:
        run_of = dict(zip(runs.rows["method"], runs.rows["run"]))
        board = with_cost(board, cost_table(run_dirs, targets)[0], run_of)
    table = render_leaderboard(board, chosen, fmt, metrics)
    text = table if fmt != "md" else f"{title}\n\n{table}"
    clicks_only = [str(run) for run in dict.fromkeys(runs.clicks["run"]) if run not in set(runs.rows["run"])]
    notes += [f"{run}: a click run, not ranked here (`bench tables` prints its DSC per click"
              f"{'; its cost and NoC are in the cost table' if cost else ''})" for run in clicks_only]
    if cost and fmt == "csv":
        notes.append("--cost: the runs' whole cost table is left out of CSV; `bench tables --cost --format csv` "
                     "prints it")
    elif cost:
        body, cost_notes = cost_text(run_dirs, targets, fmt)
        text += ("\nCost of the runs (medians; the warm-up call apart):\n\n" if fmt == "md" else "\n% Cost\n") + body
        notes += cost_notes
    return text, list(dict.fromkeys([*board_lines, *empty_lines(runs), *notes]))


def leaderboard_text(
    run_dirs: Sequence[Path], published: Sequence[str] | None = None, baseline: str | None = None,
    by: str = "class", fmt: str = "md", empty_policy: str | None = None,
) -> str:
    """The leaderboard followed by its notes, as one text (for the demo and for reading in a terminal)."""
    text, notes = leaderboard_output(run_dirs, published, baseline, by, fmt, empty_policy)
    return text + "\n" + "".join(f"- {line}\n" for line in notes)


def leaderboard_command(
    run: list[Path] = typer.Option(..., "--run", help="Run folder (or metrics.parquet); repeat for several runs."),
    published: list[str] = typer.Option(None, "--published", help="Published tables to include (default: all)."),
    baseline: str = typer.Option(None, "--baseline", help="Method to compare with (default: nnU-Nets if present)."),
    by: Literal["class", "dataset"] = typer.Option("class", "--by", help="Keys: class or dataset."),
    fmt: Format = typer.Option("md", "--format", help="md (or markdown) | csv | latex"),
    empty_policy: EmptyPolicy = typer.Option(None, "--empty-policy", help=POLICY_HELP),
    metric: str = typer.Option("both", "--metric", help=METRIC_HELP),
    cost: bool = typer.Option(False, "--cost", help="Add the runs' cost: median seconds per case and per call, "
                                                    "peak memory, NoC for click runs (as `bench tables --cost`)."),
    noc_targets: str = typer.Option(None, "--noc-targets", help="NoC targets for --cost, percent (default 85,90)."),
) -> None:
    """Rank runs on the keys they all share, published entries beside them; deltas on the keys both cover.

    The leaderboard goes to stdout, notes to stderr."""
    text, notes = leaderboard_output(run, published or None, baseline, by, canonical_format(fmt), empty_policy,
                                     metric, cost, noc_targets)
    typer.echo(text, nl=not text.endswith("\n"))
    echo_notes(notes)
