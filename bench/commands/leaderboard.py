"""`bench leaderboard`: runs and published entries ranked, with deltas against a baseline and coverage."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import typer

from bench.commands.tables import collect_entries, load_runs
from bench.tables import default_baseline, leaderboard, render_leaderboard, restrict_to_runs
from protocols.published import list_published


def ranked(
    entries: pd.DataFrame, by: str = "class", baseline: str | None = None
) -> tuple[pd.DataFrame, str | None, list[str]]:
    """(leaderboard, the baseline used, what the comparisons left out) from collected entries."""
    if by not in ("class", "dataset"):
        raise ValueError(f"unknown --by {by!r}; choose class or dataset")
    level_entries, left_out = restrict_to_runs(entries, by)
    chosen = baseline or default_baseline(list(dict.fromkeys(level_entries["method"])))
    board = leaderboard(pd.concat([level_entries, entries[entries["level"] == "overall"]]), by, chosen)
    return board, chosen, left_out


def leaderboard_text(
    run_dirs: Sequence[Path], published: Sequence[str] | None = None, baseline: str | None = None,
    by: str = "class", fmt: str = "md",
) -> str:
    """The leaderboard as text, then notes on what each comparison left out.

    ``published`` defaults to every packaged table; ``baseline`` to the nnU-Net specialists when present.
    """
    entries, notes = collect_entries(load_runs(run_dirs), list_published() if published is None else list(published))
    board, chosen, left_out = ranked(entries, by, baseline)
    title = f"Leaderboard ({by}-wise, percent)"
    title += f", deltas against {chosen} on the {by} keys both cover" if chosen else ""
    basis = (f"ranked by ΔDSC on the 'common' keys each method shares with {chosen}; DSC/NSD (common) are the "
             "method's means on those keys, DSC/NSD on all of its own keys") if chosen else (
             "ranked by DSC on the keys every method covers ('common')")
    lines = [f"- {line}" for line in [basis, *left_out, *notes]]
    return f"{title}\n\n{render_leaderboard(board, chosen, fmt)}" + ("\n" + "\n".join(lines) + "\n" if lines else "")


def leaderboard_command(
    run: list[Path] = typer.Option(..., "--run", help="Run folder (or metrics.parquet); repeat for several runs."),
    published: list[str] = typer.Option(None, "--published", help="Published tables to include (default: all)."),
    baseline: str = typer.Option(None, "--baseline", help="Method to compare with (default: nnU-Nets if present)."),
    by: str = typer.Option("class", "--by", help="class | dataset"),
    fmt: str = typer.Option("md", "--format", help="md | csv | latex"),
) -> None:
    """Rank runs next to published entries; each compared with the baseline only on what both cover."""
    try:
        typer.echo(leaderboard_text(run, published or None, baseline, by, fmt), nl=False)
    except (ValueError, KeyError, FileNotFoundError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
