"""`bench evaluate`: per-case, per-class DSC and NSD of a prediction folder against references."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from bench.engine import store
from bench.data.catalog import load_catalog, term_key
from bench.data.catalog.cases import SPLITS
from bench.engine.executors import EXECUTORS
from protocols.class_metrics import BASE_METRICS, METRIC_NAMES, SHORTHANDS
from protocols.metrics import EMPTY_POLICIES, EVALUATION_GRIDS
from bench.cli.reporting import interrupted, note, print_summary
from bench.engine.evaluation import (check_out_dir, evaluate_pairs, evaluation_config, evaluation_spec,
                                     summary_numbers, with_reference)
from bench.data.io import InputError
from bench.data.matching import match_predictions
from bench.engine.provenance import command_line
from bench.data.targets import resolve_references


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A Typer choice built from the protocol's own tuple of names."""
    return Enum(name, {value: value for value in values}, type=str)


EmptyPolicy = _choices("EmptyPolicy", EMPTY_POLICIES)
Grid = _choices("Grid", EVALUATION_GRIDS)
Executor = _choices("Executor", EXECUTORS)


Split = _choices("Split", SPLITS)


def lesion_classes(modality: str, classes) -> tuple[str, ...]:
    """The classes of a class map the catalog marks as lesions (SAT-DS's abnormal terms) for the modality."""
    terms = load_catalog().terms
    abnormal = set(terms.loc[terms["abnormal"], "key"])
    return tuple(name for name in classes if term_key(modality, name) in abnormal)


def evaluate(
    ctx: typer.Context,
    pred: Path = typer.Option(..., help="Folder of predictions (label maps, or one folder of class masks per case)."),
    out: Path = typer.Option(..., help="Run folder: metrics.parquet, run.json and per-case files."),
    ref: Path = typer.Option(None, help="Folder of reference segmentations (ad hoc; or use --dataset/--root), or an "
                                        "SA-Med2D folder of 2D PNG slices (label2image_test.json)."),
    dataset: str = typer.Option(None, help="Catalog dataset (with --root), or the name of an ad-hoc dataset."),
    root: Path = typer.Option(None, help="Dataset folder (nnU-Net raw, MSD task or with a manifest; class map from "
                                         "the catalog or its dataset.json), as `bench run --root` takes it."),
    split: Split = typer.Option(Split.test, help="SAT's split of a catalog dataset; test or train index of an "
                                                 "SA-Med2D folder."),
    manifest: Path = typer.Option(None, help="Manifest of cases under --root (YAML/JSON, or a SAT-DS .jsonl)."),
    classes: Path = typer.Option(None, help="JSON class map ({'liver': 1} or {'1': 'liver'} or dataset.json)."),
    labels: str = typer.Option(None, help="Inline class map, e.g. '1=liver,2=spleen,2+3=kidney'."),
    modality: str = typer.Option(None, help="CT, MRI or PET (default: the catalog's or the dataset.json's)."),
    tolerance: float = typer.Option(1.0, help="NSD tolerance in mm (in pixels for 2D PNG slices)."),
    empty_policy: EmptyPolicy = typer.Option(EmptyPolicy.nan, help="Both empty: left out (nan), or 1 (sat, SAT's "
                                                                   "rule)."),
    grid: Grid = typer.Option(Grid.native, help="Score on the native grid, or on SAT-DS's 1x1x3 mm grid."),
    distances: bool = typer.Option(False, help="Also HD95 and ASSD (mm) per class, as extra columns (slower)."),
    metrics: str = typer.Option("dsc,nsd", help="Metrics to score, comma-separated: dsc, nsd (always), "
                                f"{', '.join(m for m in METRIC_NAMES if m not in BASE_METRICS)}; or "
                                f"{', '.join(SHORTHANDS)}."),
    ignore_label: int = typer.Option(None, help="Reference label value left out of both sides (nnU-Net's "
                                     "ignore_label); needs reference label maps."),
    instances: bool = typer.Option(False, help="With --metrics lesion: score every class lesion by lesion, not "
                                   "only the classes the catalog marks as lesions (lesions: connected components)."),
    instance_maps: bool = typer.Option(False, help="The prediction and reference files are instance label maps of "
                                       "the class map's one class (0 background, each other value one lesion, as "
                                       "panoptica's inputs): the class is every non-zero voxel, and lesion-wise "
                                       "scores (implied) match the given instances, not connected components."),
    connectivity: int = typer.Option(None, help="With --metrics lesion: a lesion is a connected component at this "
                                     "connectivity: 26 (default), 18 or 6 neighbours in 3D; 8 (default) or 4 in 2D."),
    matcher: str = typer.Option("hungarian", help="With --metrics lesion: hungarian (most matches, then IoU) or "
                                "greedy (by decreasing IoU), as panoptica's two matchers."),
    match_iou: float = typer.Option(0.5, help="With --metrics lesion: a lesion pair matches at IoU >= this."),
    workers: int = typer.Option(1, min=1, help="Processes scoring cases in parallel (Dask: local cluster size)."),
    executor: Executor = typer.Option(Executor.local, help="Run cases in local processes or on a Dask cluster."),
    scheduler: str = typer.Option(None, help="Dask scheduler address (tcp://host:8786); default: a local cluster."),
    model: str = typer.Option(None, help="Model name stored in the rows (default: prediction folder name)."),
    run: str = typer.Option(None, help="Run name stored in the rows (default: output folder name)."),
    overwrite: bool = typer.Option(False, help="Score every case again, dropping what --out holds."),
) -> None:
    """Score predictions against references: per-case, per-class DSC and NSD, resumable."""
    try:
        target = resolve_references(ref=ref, root=root, dataset=dataset, split=split.value, manifest=manifest,
                                    classes=classes, labels=labels, modality=modality)
        if target.ndim == 2 and grid is not Grid.native:
            raise InputError(f"--grid {grid.value}: {ref} holds 2D PNG slices, scored on their own pixel grid only")
        spec = evaluation_spec(
            run=run or out.name, model=model or pred.name, predictions=pred, classes=target.classes,
            tolerance_mm=tolerance, empty_policy=empty_policy.value, grid=grid.value, distances=distances,
            metrics=tuple(metrics.split(",")), ignore_label=ignore_label, connectivity=connectivity,
            matcher=matcher, match_iou=match_iou,
            lesion_classes=None if instances else lesion_classes(target.modality, target.classes),
            instance_maps=instance_maps,
        )
        lesions = spec.protocol.scoring.lesions
        if lesions and not lesions.classes and not (instances or instance_maps):
            note("note: --metrics lesion: no class of this class map is a lesion class of the catalog; "
                 "--instances scores every class lesion by lesion")
        check_out_dir(out, pred, ref, root)
        pairs, unmatched = match_predictions(pred, target.refs, target.elsewhere)
        reference = {"dataset": target.dataset, "modality": target.modality, "classes": target.classes,
                     "orientation": target.orientation}
        pairs = with_reference(pairs, **reference)
        config = {**evaluation_config(spec, ref or root, **reference), "references": target.source}
        if target.unmapped:
            note(f"note: {len(target.unmapped)} class(es) have no SAT term for {target.modality} and fall outside "
                 f"SAT's regions: {', '.join(target.unmapped[:20])}")
        outcome = evaluate_pairs(pairs, unmatched, out, spec, config, workers=workers, overwrite=overwrite,
                                 executor=executor.value, scheduler=scheduler)
    except KeyboardInterrupt:
        interrupted(out)
    typer.echo(f"scored {outcome.scored} case(s), {outcome.skipped} stored with unchanged inputs, in {out}")
    if outcome.dropped:
        note(f"dropped {len(outcome.dropped)} stored case(s) whose prediction is gone: {', '.join(outcome.dropped[:10])}")
    if outcome.unscored:
        note("warning: present but not in the class map, so not scored (recorded in run.json unscored_labels): "
             + ", ".join(f"{name} ({n} case{'s' * (n > 1)})" for name, n in list(outcome.unscored.items())[:20]))
    if outcome.unmatched_refs:
        note(f"{len(outcome.unmatched_refs)} reference(s) without prediction, not scored: "
             f"{', '.join(outcome.unmatched_refs[:10])}")
    if outcome.errors:
        for case, message in outcome.errors.items():
            typer.secho(f"error in case {case}: {message}", fg="red", err=True)
        typer.secho(f"{len(outcome.errors)} case(s) failed; nothing was written for them and metrics.parquet "
                    "was not updated. Fix them and run the same command again to resume.", fg="red", err=True)
        raise typer.Exit(1)
    store.update_config(out, command_line=command_line(ctx), summary=summary_numbers(outcome.table))
    unit = "mm" if target.ndim == 3 else "pixel (PNG slices carry no spacing)"
    print_summary(outcome.table, f"{spec.model} on {target.dataset} ({target.modality}): mean over cases "
                                 f"(NSD tolerance {tolerance:g} {unit}, empty policy {empty_policy.value}, "
                                 f"{grid.value} grid)", empty_policy.value)
