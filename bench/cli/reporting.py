"""What `bench evaluate`, `bench run` and `bench clicks` print: the per-class tables, click tables, notes, and
the reporting around a run (`run_reported`: the untrained-model note, failed cases, Ctrl-C). Imported by the
commands when they run, not at start-up, so `--help` and a bad option need none of the engine."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from bench.engine import store
from bench.engine.evaluation import class_summary, summary_numbers
from bench.engine.progress import CaseProgress
from bench.engine.runner import CaseFailures, given_kinds, model_for, run_cases, untrained
from bench.engine.spec import RunSpec
from bench.views.runs import both_empty_line
from protocols.interactive import case_table, max_over_clicks, summarise_clicks
from protocols.protocol import Protocol


def _score(value: float) -> str:
    return "      -" if value != value else f"{value:7.4f}"


def print_summary(table, title: str, policy: str) -> None:
    """The per-class means, their mean over classes, and how many rows were empty in both reference and
    prediction (`both empty`: left out of the means under the "nan" policy, each scored 1 under "sat")."""
    summary = class_summary(table)
    typer.echo(f"\n{title}\n")
    typer.echo(f"| {'class':<28} | {'DSC':>7} | {'NSD':>7} | {'cases':>5} | {'both empty':>10} |")
    typer.echo(f"|{'-' * 30}|{'-' * 9}|{'-' * 9}|{'-' * 7}|{'-' * 12}|")
    for row in summary.itertuples():
        typer.echo(f"| {row.Index:<28} | {_score(row.dsc)} | {_score(row.nsd)} | {row.cases:5d} | "
                   f"{row.both_empty:10d} |")
    typer.echo(f"| {'mean over classes':<28} | {_score(summary.dsc.mean())} | {_score(summary.nsd.mean())} | "
               f"{'':5} | {int(summary.both_empty.sum()):10d} |")
    typer.echo("\n" + both_empty_line(int(summary.both_empty.sum()), policy, total=len(table)))


def note(text: str) -> None:
    typer.secho(text, fg="yellow", err=True)


def interrupted(out: Path) -> None:
    """Ctrl-C: say what is stored and that the same command resumes; exit 130 (128 + SIGINT), as shells do."""
    stored = len(store.stored_case_files(out)) if out.is_dir() else 0
    typer.secho(f"\ninterrupted: {stored} case(s) stored in {out}; run the same command again to resume "
                "(stored cases with unchanged inputs are kept)", fg="yellow", err=True)
    raise typer.Exit(130)


def print_click_summary(rows: pd.DataFrame, title: str, n_clicks: int | None = None, auc: str = "normalised") -> None:
    """The per-class click table: DSC/NSD at 1, 3, 5, 10 clicks (those within `n_clicks`), final and AUC."""
    at = tuple(k for k in (1, 3, 5, 10) if n_clicks is None or k <= n_clicks) or (1,)
    summary = summarise_clicks(rows, at=at, auc=auc)
    typer.echo(f"\n{title}\n")
    columns = [c for c in summary.columns if c.startswith("dsc") or c.startswith("nsd")]
    typer.echo("| class | " + " | ".join(columns) + " |")
    typer.echo("|---|" + "---|" * len(columns))
    for _, row in summary.iterrows():
        typer.echo(f"| {row.class_name} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")


def print_case_table(rows: pd.DataFrame, protocol: Protocol, time_limit: bool = False) -> None:
    """The per-case table of a protocol that reports `cases` (the SegFM script's CSV columns), and their means."""
    scoring = protocol.scoring
    table = case_table(rows, n_clicks=protocol.prompts.n_clicks, auc=scoring.auc,
                       nsd_zero_at_dsc=scoring.nsd_zero_at_dsc,
                       time_limit_s_per_class=scoring.time_limit_s_per_class if time_limit else None)
    columns = ["DSC_AUC", "NSD_AUC", "DSC_Final", "NSD_Final",
               *[f"{m}_{k}" for m in ("DSC", "NSD") for k in range(1, protocol.prompts.n_clicks + 2)],
               "TotalRunningTime", "num_class"]
    limit = (f"; time limit {scoring.time_limit_s_per_class:g} s per class applied" if time_limit and
             scoring.time_limit_s_per_class is not None else "")
    typer.echo(f"\nPer case, as {protocol.name} scores it (interaction 1 = box, 2.. = clicks; means over the classes "
               f"of the case, the NSD rule applied to them, not to the per-class table above; AUC over the "
               f"clicks{limit}):\n")
    typer.echo(table[["case_id", *columns]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    typer.echo("mean over cases: " + ", ".join(f"{c} {table[c].mean():.4f}" for c in columns[:4]))


def print_click_results(rows: pd.DataFrame, model: str, protocol: Protocol, unit: str = "mm",
                        time_limit: bool = False) -> None:
    """The per-class click table, the per-case table where the protocol reports one, and the paper-era max over
    clicks where the protocol reports it."""
    how = f" ({protocol.description})" if protocol.name == "clicks" else ""
    if protocol.scoring.distances == "voxels":
        unit = "voxel of the working space"
    print_click_summary(rows, f"{model} under {protocol.name}{how}: mean over cases of DSC/NSD after k clicks "
                              f"(NSD tolerance {protocol.scoring.tolerance_mm:g} {unit})",
                        n_clicks=protocol.prompts.n_clicks, auc=protocol.scoring.auc)
    if "cases" in protocol.scoring.report:
        print_case_table(rows, protocol, time_limit)
    if "max_over_clicks" in protocol.scoring.report:
        typer.echo("\nPaper-era score, for reproducing SAM-Med3D tables only (max DSC over clicks per case):\n")
        typer.echo(max_over_clicks(rows).to_string(index=False))


def run_reported(sources, out: Path, spec: RunSpec, *, command: str, **options) -> tuple[pd.DataFrame, int, int]:
    """`run_cases` as `bench run` and `bench clicks` report it: a model run without weights is named first; failed
    cases are listed on stderr and end the command with exit code 1 (the other cases are stored); run.json gets
    the ``command`` line that reproduces the run and its summary numbers."""
    missing = sorted(set(spec.protocol.prompts.kinds) - model_for(spec).capabilities.prompts)
    if missing and spec.protocol.interactive:
        note(f"note: {spec.model} takes no {', '.join(missing)} prompts: under {spec.protocol.name} it gets "
             f"{' and '.join(sorted(given_kinds(model_for(spec), spec.protocol)))} only"
             + (" (a case without a box: interaction 1 scores 0)" if "boxes" in missing else ""))
    if untrained(spec):
        note(f"note: no --checkpoint: {spec.model} runs with random weights; its scores test the pipeline, not the "
             f"model (`bench models fetch {spec.model}` gets the official weights; `bench models show {spec.model}` "
             "says where they come from)")
    progress = CaseProgress(f"{spec.model}, protocol {spec.protocol.name}")
    try:
        rows, done, skipped = run_cases(sources, out, spec, on_case=progress, **options)
        store.update_config(out, command_line=command, summary=summary_numbers(rows))
        return rows, done, skipped
    except KeyboardInterrupt:
        interrupted(out)
    except CaseFailures as failures:
        for case, message in failures.errors.items():
            typer.secho(f"error in case {case}: {message}", fg="red", err=True)
        typer.secho(f"{len(failures.errors)} case(s) failed; nothing was stored for them. Fix them and run the "
                    "same command again to resume.", fg="red", err=True)
        raise typer.Exit(1) from failures
    finally:
        progress.close()
