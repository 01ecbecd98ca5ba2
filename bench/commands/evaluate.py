"""`bench evaluate`: per-case, per-class DSC and NSD of a prediction folder against a reference folder."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.cases import parse_labels, read_class_map
from bench.evaluation import RunSettings, class_summary, evaluate_folders
from bench.io import InputError
from protocols.case import ClassMap
from protocols.metrics import EMPTY_POLICIES


def resolve_classes(classes: Path | None, labels: str | None, ref_dir: Path) -> ClassMap:
    """--classes file, else --labels text, else the nnU-Net dataset.json next to or inside the references."""
    if classes and labels:
        raise InputError("give either --classes or --labels, not both")
    if classes:
        return read_class_map(classes)
    if labels:
        return parse_labels(labels)
    for candidate in (ref_dir / "dataset.json", ref_dir.parent / "dataset.json"):
        if candidate.is_file():
            return read_class_map(candidate)
    raise InputError(f"no class map: pass --classes FILE.json or --labels '1=liver,...' (no dataset.json near {ref_dir})")


def print_summary(table, title: str) -> None:
    summary = class_summary(table)
    typer.echo(f"\n{title}\n")
    typer.echo(f"| {'class':<28} | {'DSC':>7} | {'NSD':>7} | {'cases':>5} |")
    typer.echo(f"|{'-' * 30}|{'-' * 9}|{'-' * 9}|{'-' * 7}|")
    for name, row in summary.iterrows():
        typer.echo(f"| {name:<28} | {row.dsc:7.4f} | {row.nsd:7.4f} | {int(row.cases):5d} |")


def evaluate(
    pred: Path = typer.Option(..., help="Folder of predictions (label maps, or one folder of class masks per case)."),
    ref: Path = typer.Option(..., help="Folder of reference segmentations."),
    out: Path = typer.Option(..., help="Run folder: metrics.parquet, run.json and per-case files."),
    classes: Path = typer.Option(None, help="JSON class map ({'liver': 1} or {'1': 'liver'} or dataset.json)."),
    labels: str = typer.Option(None, help="Inline class map, e.g. '1=liver,2=spleen,2+3=kidney'."),
    tolerance: float = typer.Option(1.0, help="NSD tolerance in mm."),
    empty_policy: str = typer.Option("sat", help=f"Empty-mask policy: {' or '.join(EMPTY_POLICIES)}."),
    workers: int = typer.Option(1, min=1, help="Processes scoring cases in parallel."),
    model: str = typer.Option(None, help="Model name stored in the rows (default: prediction folder name)."),
    dataset: str = typer.Option(None, help="Dataset name stored in the rows (default: reference folder name)."),
    modality: str = typer.Option("CT", help="Modality stored in the rows (CT, MRI or PET)."),
    run: str = typer.Option(None, help="Run name stored in the rows (default: output folder name)."),
) -> None:
    """Score predictions against references: per-case, per-class DSC and NSD, resumable."""
    if empty_policy not in EMPTY_POLICIES:
        raise typer.BadParameter(f"must be one of {EMPTY_POLICIES}", param_hint="--empty-policy")
    try:
        settings = RunSettings(
            run=run or out.name, model=model or pred.name, dataset=dataset or ref.name, modality=modality,
            classes=resolve_classes(classes, labels, ref), tolerance_mm=tolerance, empty_policy=empty_policy,
        )
        outcome = evaluate_folders(pred, ref, out, settings, workers=workers)
    except (InputError, ValueError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"scored {outcome.scored} case(s), {outcome.skipped} already stored in {out}")
    if outcome.unmatched_refs:
        typer.echo(f"{len(outcome.unmatched_refs)} reference(s) without prediction, not scored: "
                   f"{', '.join(outcome.unmatched_refs[:10])}")
    if outcome.errors:
        for case, message in outcome.errors.items():
            typer.secho(f"error in case {case}: {message}", fg="red", err=True)
        typer.secho(f"{len(outcome.errors)} case(s) failed; nothing was written for them and metrics.parquet "
                    "was not updated. Fix them and run the same command again to resume.", fg="red", err=True)
        raise typer.Exit(1)
    print_summary(outcome.table, f"{settings.model} on {settings.dataset}: mean over cases "
                                 f"(NSD tolerance {tolerance:g} mm, empty policy {empty_policy})")
