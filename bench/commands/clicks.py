"""`bench clicks`: simulated interactive segmentation with a click policy given on the command line.

It is `bench run` under an ad-hoc protocol: native grid, millimetre distances, `--first-click` for click 1 and
`--policy` for every later one, `--n-clicks`, `--seed`. For every case (image `<case>_0000.nii.gz` or
`<case>.nii.gz` in --images, label map `<case>.nii.gz` in --refs; or the cases of a catalog-style dataset under
--root, with its class map) and every class present in the reference, one row per (case, class, click) goes to
the results store; the clicks go to `prompts/<case>/<class>.json` with the seed that made them. The same seed
gives every model the same first click; `--replay RUN` gives a model the stored clicks of another run in order
(after them, the policy takes over), and replays a run exactly for the same model.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from bench.io import InputError
from bench.runner import RunSpec, resolve_sources, run_cases, tolerance_unit
from models.registry import model_names
from protocols.interactive import summarise_clicks
from protocols.prompts_clicks import FIRST_CLICKS, NEXT_CLICKS
from protocols.protocol import FEEDS, Protocol, parse_protocol


def click_protocol(*, first_click: str, policy: str, n_clicks: int, seed: int, tolerance_mm: float,
                   feed: str = "all") -> Protocol:
    """The protocol `bench clicks` runs: one first-click and one next-click policy on the native grid."""
    if policy not in NEXT_CLICKS:
        raise InputError(f"unknown --policy {policy!r}; choose from {', '.join(sorted(NEXT_CLICKS))}")
    if first_click not in FIRST_CLICKS:
        raise InputError(f"unknown --first-click {first_click!r}; choose from {', '.join(FIRST_CLICKS)}")
    if n_clicks < 1:
        raise InputError(f"--n-clicks must be >= 1, got {n_clicks}")
    if feed not in FEEDS:
        raise InputError(f"unknown --feed {feed!r}; choose from {', '.join(FEEDS)}")
    return parse_protocol({
        "name": "clicks", "description": f"{first_click} first click, then {policy}", "space": {"grid": "native"},
        "prompts": {"kinds": ["points"], "clicks": [[1, first_click], [2, policy]], "feed": feed,
                    "n_clicks": n_clicks, "seed": seed},
        "scoring": {"grid": "native", "tolerance_mm": tolerance_mm, "report": ["per_click", "auc", "final"]},
    })


def print_click_summary(rows: pd.DataFrame, title: str, n_clicks: int | None = None) -> None:
    """The per-class click table: DSC/NSD at 1, 3, 5, 10 clicks (those within `n_clicks`), final and AUC."""
    at = tuple(k for k in (1, 3, 5, 10) if n_clicks is None or k <= n_clicks) or (1,)
    summary = summarise_clicks(rows, at=at)
    typer.echo(f"\n{title}\n")
    columns = [c for c in summary.columns if c.startswith("dsc") or c.startswith("nsd")]
    typer.echo("| class | " + " | ".join(columns) + " |")
    typer.echo("|---|" + "---|" * len(columns))
    for _, row in summary.iterrows():
        typer.echo(f"| {row.class_name} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")


def clicks(
    model: str = typer.Option(..., help=f"Model name: {', '.join(model_names())}."),
    images: Path = typer.Option(None, help="Folder of images (<case>_0000.nii.gz or <case>.nii.gz)."),
    refs: Path = typer.Option(None, help="Folder of reference label maps (<case>.nii.gz)."),
    root: Path = typer.Option(None, help="Catalog-style dataset folder (nnU-Net raw, MSD; class map from the "
                                         "catalog or its dataset.json) instead of --images/--refs."),
    split: str = typer.Option("test", help="SAT's split of a catalog dataset (with --root): test, train or all."),
    out: Path = typer.Option(..., help="Run folder: metrics.parquet, run.json, cases/ and prompts/."),
    classes: Path = typer.Option(None, help="JSON class map ({'liver': 1} or {'1': 'liver'} or dataset.json)."),
    labels: str = typer.Option(None, help="Inline class map, e.g. '1=liver,2=spleen'."),
    only: list[str] = typer.Option(None, "--class", help="Only this class (repeatable)."),
    policy: str = typer.Option("center_largest_error", help=f"Next-click policy: {', '.join(sorted(NEXT_CLICKS))}."),
    first_click: str = typer.Option("center", help=f"First click: {' or '.join(FIRST_CLICKS)}."),
    n_clicks: int = typer.Option(10, help="Clicks per target."),
    seed: int = typer.Option(0, help="Run seed; every prompt's generator is derived from it by hashing."),
    feed: str = typer.Option("all", help="Give the model all clicks so far, or only the newest (a model that "
                                         "feeds back its previous logits)."),
    tolerance: float = typer.Option(1.0, help="NSD tolerance in mm."),
    dataset: str = typer.Option(None, help="Dataset name stored in the rows (default: catalog name or reference "
                                           "folder name)."),
    modality: str = typer.Option(None, help="CT, MRI or PET (default: the catalog's or the dataset.json's; CT "
                                            "for --images/--refs)."),
    run: str = typer.Option(None, help="Run name stored in the rows (default: output folder name)."),
    replay: Path = typer.Option(None, help="A previous `bench clicks` or `bench run` folder: give its stored "
                                           "clicks, in order, in place of the policy (same prompts for another "
                                           "model)."),
    workers: int = typer.Option(1, min=1, help="Processes running cases in parallel (Dask: local cluster size)."),
    executor: str = typer.Option("local", help="Where cases run: local (this process or a pool) or dask."),
    scheduler: str = typer.Option(None, help="Dask scheduler address (default: a local cluster of --workers)."),
) -> None:
    """Simulate clicks on every case and class: DSC/NSD after each click, resumable, prompts saved as JSON."""
    try:
        protocol = click_protocol(first_click=first_click, policy=policy, n_clicks=n_clicks, seed=seed,
                                  tolerance_mm=tolerance, feed=feed)
        sources, label = resolve_sources(dataset=dataset, root=root, split=split, images=images, refs=refs,
                                         classes=classes, labels=labels,
                                         modality=modality or ("CT" if root is None else None))
        known = set().union(*(source.classes for source in sources))
        unknown = sorted(set(only or ()) - known)
        if unknown:
            raise InputError(f"--class {', '.join(unknown)}: not in the class map ({', '.join(sorted(known))})")
        spec = RunSpec(run=run or out.name, model=model, protocol=protocol, classes=tuple(only) if only else None,
                       replay=str(replay.resolve()) if replay else None)
        rows, done, skipped = run_cases(sources, out, spec, sources_label=label, write_masks=False, workers=workers,
                                        executor=executor, scheduler=scheduler)
    except (InputError, ValueError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"simulated {done} case(s), {skipped} already stored in {out}")
    if rows.empty:
        typer.secho(f"error: no reference of the {done + skipped} case(s) contains any requested class, so there was "
                    "nothing to click on; check --class and the class map", fg="red", err=True)
        raise typer.Exit(1)
    print_click_summary(rows, f"{model}: mean over cases of DSC/NSD after k clicks ({first_click} first click, "
                              f"then {policy}; NSD tolerance {tolerance:g} {tolerance_unit(sources)})",
                        n_clicks=n_clicks)
