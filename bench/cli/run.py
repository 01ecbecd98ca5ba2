"""`bench run`: a model over a dataset under a protocol: predictions on the native grid, scored rows, resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.data.errors import InputError
from bench.engine.presets import DEFAULT_PRESET, load_protocol, preset_names
from models.registry import model_names
from protocols.protocol import with_overrides


def run(
    ctx: typer.Context,
    model: str = typer.Option(..., help=f"Model name: {', '.join(model_names())}."),
    out: Path = typer.Option(..., help="Run folder: metrics.parquet, run.json, cases/, prompts/, predictions/."),
    dataset: str = typer.Option(None, help="Dataset name (catalog name, stored in the rows)."),
    root: Path = typer.Option(None, help="Dataset folder (nnU-Net raw, MSD task or with a manifest)."),
    split: str = typer.Option("test", help="SAT's split of a catalog dataset: test, train or all."),
    manifest: Path = typer.Option(None, help="Case manifest (YAML/JSON, or SAT-DS .jsonl) under --root."),
    images: Path = typer.Option(None, help="Ad-hoc folder of images (instead of --root)."),
    refs: Path = typer.Option(None, "--refs", "--ref", help="Ad-hoc folder of reference label maps (with --images; "
                              "--ref as bench evaluate spells it)."),
    classes: Path = typer.Option(None, help="Class map for --refs (JSON or dataset.json)."),
    labels: str = typer.Option(None, help="Inline class map for --refs, e.g. '1=liver,2=spleen'."),
    modality: str = typer.Option(None, help="CT, MRI or PET for --images cases (default: the catalog's or the "
                                            "dataset.json's)."),
    protocol: str = typer.Option(DEFAULT_PRESET, help=f"Protocol preset ({', '.join(preset_names())}) or YAML."),
    n_clicks: int = typer.Option(None, help="Override the protocol's number of clicks."),
    seed: int = typer.Option(None, help="Override the protocol's seed."),
    only: list[str] = typer.Option(None, "--class", help="Only this class (repeatable)."),
    model_args: list[str] = typer.Option(None, "--model-args", help="Model option key=value (repeatable)."),
    checkpoint: Path = typer.Option(None, help="Official checkpoint file (or folder) to load."),
    trust_checkpoint: bool = typer.Option(False, help="Unpickle everything in the checkpoint (only for files "
                                                      "you trust: arbitrary code can run)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    run_name: str = typer.Option(None, "--run", help="Run name stored in the rows (default: output folder name)."),
    overwrite: bool = typer.Option(False, help="Run every case again, dropping what --out holds."),
    workers: int = typer.Option(1, min=1, help="Processes running cases in parallel (each loads the model once)."),
    executor: str = typer.Option("local", help="Where cases run: local (this process or a pool) or dask."),
    scheduler: str = typer.Option(None, help="Dask scheduler address (default: a local cluster of --workers)."),
    replay: Path = typer.Option(None, help="A previous run folder: give its stored clicks, in order, in place of the "
                                           "protocol's (the same prompts for another model)."),
) -> None:
    """Run a model on every case: its own preprocessing, the protocol's prompts, predictions mapped back to the
    native grid and written as NIfTI, DSC/NSD scored into the results store; re-running resumes."""
    from bench.data.sources import resolve_sources, tolerance_unit

    preset = with_overrides(load_protocol(protocol), n_clicks=n_clicks, seed=seed)
    sources, label = resolve_sources(dataset=dataset, root=root, split=split, manifest=manifest, images=images,
                                     refs=refs, classes=classes, labels=labels, modality=modality)
    if only:
        known = set().union(*(source.classes for source in sources))
        unknown = sorted(set(only) - known)
        if unknown:
            raise InputError(f"--class {', '.join(unknown)}: not a class of these cases "
                             f"({', '.join(sorted(known))})")
    from bench.cli.reporting import print_click_results, print_summary, run_reported  # the engine, once the
    from bench.engine.provenance import command_line                                   # options are checked
    from bench.engine.runner import model_spec

    spec = model_spec(run=run_name or out.name, model=model, protocol=preset, model_args=model_args,
                      checkpoint=checkpoint, trust_checkpoint=trust_checkpoint, device=device, only=only,
                      replay=replay)
    rows, done, skipped = run_reported(sources, out, spec, command=command_line(ctx), sources_label=label,
                                       overwrite=overwrite,
                                       workers=workers, executor=executor, scheduler=scheduler)
    typer.echo(f"ran {done} case(s), {skipped} already stored with unchanged inputs in {out} (protocol "
               f"{preset.name}, device {spec.device})")
    clicks = rows[rows["click"].notna()] if "click" in rows.columns else rows.iloc[:0]
    if not clicks.empty:
        print_click_results(clicks, model, preset, tolerance_unit(sources))
    else:
        print_summary(rows, f"{model} under {preset.name}: mean over cases (NSD tolerance "
                            f"{preset.scoring.tolerance_mm:g} {tolerance_unit(sources)})", preset.scoring.empty)
