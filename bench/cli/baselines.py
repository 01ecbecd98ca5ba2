"""`bench baselines nnunet ...`: SAT's 72 nnU-Net specialists through nnunetv2 (convert, plan, train, predict, Table 11)."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.cli.app import HandledGroup
from bench.data.catalog import DatasetInfo, load_catalog
from bench.data.io import InputError

baselines_app = typer.Typer(
    cls=HandledGroup, help="Baselines: SAT's per-dataset nnU-Net specialists.", no_args_is_help=True)
nnunet_app = typer.Typer(
    cls=HandledGroup, no_args_is_help=True,
    help="The 72 SAT-DS nnU-Net specialists through nnunetv2: convert a SAT-DS dataset, plan (nnU-Net's planner or "
         "SAT-DS's plans), train, predict and score, Table 11.")
baselines_app.add_typer(nnunet_app, name="nnunet")

WORK_HELP = "nnU-Net workspace: raw/, preprocessed/, results/, predictions/ (nnU-Net's variables are set from it)."
DEVICE_HELP = "cpu, cuda, cuda:N or mps; auto = cuda when available."


def _dataset(name: str) -> DatasetInfo:
    return load_catalog().dataset(name)


def _workspace(work: Path):
    from baselines.nnunet.workspace import Workspace

    return Workspace(work)


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@nnunet_app.command("convert")
def convert(
    dataset: str = typer.Option(..., help="Catalog dataset name, e.g. AMOS22_CT."),
    root: Path = typer.Option(..., help="Data root: SAT-DS's data root (with --manifest), or an nnU-Net/MSD folder."),
    manifest: Path = typer.Option(None, help="SAT-DS jsonl (or YAML/JSON manifest) listing the cases under --root."),
    out: Path = typer.Option(None, help="nnU-Net raw folder to write DatasetNNN_Name/ into (default WORK/raw)."),
    work: Path = typer.Option(Path("results/nnunet"), help=WORK_HELP),
    overwrite: bool = typer.Option(False, help="Rewrite cases already converted (default: keep them, resume)."),
) -> None:
    """A SAT-DS dataset as nnU-Net raw data: SAT's split (test cases to imagesTs only), original labels, exact geometry."""
    from baselines.nnunet.convert import convert_dataset
    from bench.data.catalog.cases import dataset_sources

    info = _dataset(dataset)
    sources = dataset_sources(info.name, root, "all", manifest)
    report = convert_dataset(info, sources, out or _workspace(work).raw, overwrite=overwrite)
    typer.echo(f"{report.folder}: {len(report.train)} training case(s) in imagesTr, {len(report.test)} test case(s) "
               f"in imagesTs ({report.reused} kept from an earlier run)")
    if report.dropped_values:
        listed = ", ".join(f"{value} ({voxels} voxels)" for value, voxels in sorted(report.dropped_values.items()))
        typer.echo(f"label values SAT-DS does not use were set to background: {listed}")


@nnunet_app.command("plan")
def plan(
    dataset: str = typer.Option(..., help="Catalog dataset name (converted first)."),
    use_sat_plans: bool = typer.Option(True, "--use-sat-plans/--plan",
                                       help="SAT-DS's shipped plans (default) or nnU-Net's own planner."),
    satds: Path = typer.Option(None, help="SAT-DS folder holding nnunet/DatasetNNN_Name/nnUNetPlans.json."),
    configuration: list[str] = typer.Option(["3d_fullres"], help="Configuration(s) to preprocess."),
    workers: int = typer.Option(None, min=1, help="nnU-Net's processes (default cores - 1)."),
    work: Path = typer.Option(Path("results/nnunet"), help=WORK_HELP),
) -> None:
    """Plan (or install SAT-DS's plans under their own identifier), then preprocess."""
    from baselines.nnunet import stages

    info = _dataset(dataset)
    identifier = stages.plan(_workspace(work), info, use_sat_plans, satds, tuple(configuration),
                             stages.Settings(workers=workers))
    typer.echo(f"{info.nnunet_name}: plans {identifier}, preprocessed {', '.join(configuration)}")


@nnunet_app.command("train")
def train(
    dataset: str = typer.Option(None, help="Catalog dataset name (converted and planned first)."),
    all_datasets: bool = typer.Option(False, "--all", help="Every planned dataset of the 72; finished ones are "
                                                           "skipped, interrupted ones resume."),
    fold: str = typer.Option("0", help="Fold 0-4 (needs 5+ training cases) or all."),
    configuration: str = typer.Option("3d_fullres", help="nnU-Net configuration."),
    trainer: str = typer.Option("nnUNetTrainer", help="Trainer class; nnUNetTrainer_BenchSmoke = 1 epoch x 2 "
                                                      "iterations for smoke runs."),
    plans: str = typer.Option(None, help="Plans identifier (default: SAT-DS's plans if installed, else nnU-Net's)."),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    da_workers: int = typer.Option(None, min=0, help="Augmentation processes (default 0 on CPU, 12 on GPU)."),
    workers: int = typer.Option(None, min=1, help="nnU-Net's validation export processes (default cores - 1)."),
    work: Path = typer.Option(Path("results/nnunet"), help=WORK_HELP),
) -> None:
    """Train with nnunetv2's run_training, resuming from the latest checkpoint."""
    from baselines.nnunet import stages

    if bool(dataset) == all_datasets:
        raise InputError("give either --dataset NAME or --all")
    workspace = _workspace(work)
    settings = stages.Settings(device=_device(device), da_workers=da_workers, workers=workers)
    if dataset:
        targets = [_dataset(dataset)]
    else:
        targets = [info for info in load_catalog().datasets.values() if stages.installed_plans(workspace, info)]
        skipped = len(load_catalog().datasets) - len(targets)
        typer.echo(f"{len(targets)} planned dataset(s) to train; {skipped} not converted/planned, skipped")
    failures = []
    for info in targets:
        try:
            model, status = stages.train(workspace, info, fold, configuration, trainer, plans, settings)
        except (InputError, stages.StageError) as error:
            if not all_datasets:
                raise
            typer.secho(f"error: {error}", fg="red", err=True)
            failures.append(info.name)
            continue
        typer.echo(f"{info.name}: {status} ({model / f'fold_{fold}'})")
    if failures:
        typer.secho(f"{len(failures)} dataset(s) failed: {', '.join(failures)}; run again to resume", fg="red", err=True)
        raise typer.Exit(1)


@nnunet_app.command("predict")
def predict(
    dataset: str = typer.Option(..., help="Catalog dataset name (converted first)."),
    checkpoint_folder: Path = typer.Option(None, help="Trained model folder (Trainer__Plans__config, from here or "
                                                      "elsewhere); default: this workspace's model."),
    fold: list[str] = typer.Option(None, help="Fold(s) to ensemble (default: fold all, else every trained fold)."),
    configuration: str = typer.Option("3d_fullres", help="Configuration of the default model folder."),
    trainer: str = typer.Option("nnUNetTrainer", help="Trainer of the default model folder."),
    plans: str = typer.Option(None, help="Plans of the default model folder (default as for train)."),
    out: Path = typer.Option(None, help="Run folder for the scores (default results/runs/nnunet-DATASET)."),
    run: str = typer.Option(None, help="Run name stored in the rows (default: the run folder name)."),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    mirroring: bool = typer.Option(True, help="Test-time mirroring, as nnU-Net does by default."),
    step_size: float = typer.Option(0.5, help="Sliding-window step as a fraction of the patch."),
    score: bool = typer.Option(True, help="Score the predictions against labelsTs."),
    work: Path = typer.Option(Path("results/nnunet"), help=WORK_HELP),
) -> None:
    """nnUNetPredictor on the test cases, then ingestion under SAT's unified classes and DSC/NSD scoring."""
    from baselines.nnunet import ingest, stages
    from bench.cli.reporting import print_summary

    info = _dataset(dataset)
    workspace = _workspace(work)
    settings = stages.Settings(device=_device(device))
    if checkpoint_folder is None:
        identifier = stages.resolve_plans(workspace, info, plans)
        checkpoint_folder = workspace.model_folder(info.nnunet_name, trainer, identifier, configuration)
    predictions = workspace.predictions / info.nnunet_name / checkpoint_folder.name
    cases = stages.predict(workspace, info, checkpoint_folder, predictions, fold or None, step_size=step_size,
                           mirroring=mirroring, settings=settings)
    typer.echo(f"predicted {len(cases)} test case(s) into {predictions}")
    if not score:
        return
    scored = ingest.ingest(info, predictions, checkpoint_folder, predictions.with_name(predictions.name + "-ingested"))
    out = out or Path("results/runs") / f"nnunet-{info.name}"
    outcome = ingest.score(info, scored, stages.raw_folder(workspace, info) / "labelsTs", out, run=run)
    if outcome.errors:
        for case, message in outcome.errors.items():
            typer.secho(f"error in case {case}: {message}", fg="red", err=True)
        raise typer.Exit(1)
    print_summary(outcome.table, f"nnU-Net on {info.name}: mean over {outcome.table.case_id.nunique()} test case(s)",
                  "sat")  # ingest.score keeps SAT's rule: these runs stand beside SAT's published nnU-Net numbers
    typer.echo(f"\nscores: {out}")


@nnunet_app.command("table11")
def table11(
    satds: Path = typer.Option(..., help="SAT-DS folder holding nnunet/DatasetNNN_Name/{nnUNetPlans,dataset}.json."),
    out: Path = typer.Option(None, help="Also write the rows as CSV here."),
) -> None:
    """SAT Table 11 recomputed from SAT-DS's 72 plans: networks built by nnunetv2, parameters counted."""
    from baselines.nnunet.table11 import recompute, table_text, write_csv

    rows = recompute(satds)
    typer.echo(table_text(rows), nl=False)
    if out is not None:
        write_csv(rows, out)
        typer.echo(f"wrote {out}")
