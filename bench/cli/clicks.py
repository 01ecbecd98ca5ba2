"""`bench clicks`: simulated interactive segmentation, a score after every click.

The clicks come from a protocol preset (`--protocol sam-med3d-paper`, `harness`, ...: `bench run`'s presets, with
their crop space, feed and scoring) or from an ad-hoc protocol given on the command line: native grid, millimetre
distances, `--first-click` for click 1 and `--policy` for every later one. `--n-clicks` and `--seed` override
either. For every case (image `<case>_0000.nii.gz` or `<case>.nii.gz` in --images, label map `<case>.nii.gz` in
--refs; or the cases of a catalog-style dataset under --root, with its class map) and every class present in the
reference, one row per (case, class, click) goes to the results store; the clicks go to
`prompts/<case>/<class>.json` with the seed that made them. The same seed gives every model the same first click;
`--replay RUN` gives a model the stored clicks of another run in order (after them, the policy takes over), and
replays a run exactly for the same model. Weights: `--checkpoint` (an official file, loaded without unpickling
arbitrary objects unless `--trust-checkpoint`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from bench.data.errors import InputError
from bench.engine.presets import load_protocol, preset_names
from models.registry import model_names
from protocols.prompts_clicks import FIRST_CLICKS, NEXT_CLICKS
from protocols.protocol import FEEDS, Protocol, parse_protocol, with_overrides

AD_HOC = {"policy": "center_largest_error", "first_click": "center", "feed": "all", "tolerance": 1.0}


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
        "scoring": {"grid": "native", "tolerance_mm": tolerance_mm, "empty": "nan",
                    "report": ["per_click", "auc", "final"]},
    })


def chosen_protocol(protocol: str | None, *, n_clicks: int | None, seed: int | None, **ad_hoc) -> Protocol:
    """A click preset (its settings, `--n-clicks`/`--seed` overriding) or the ad-hoc protocol of `--policy`,
    `--first-click`, `--feed` and `--tolerance` (defaults in AD_HOC); both at once is an error."""
    given = sorted(f"--{name.replace('_', '-')}" for name, value in ad_hoc.items() if value is not None)
    if protocol is None:
        settings = {name: AD_HOC[name] if value is None else value for name, value in ad_hoc.items()}
        return click_protocol(first_click=settings["first_click"], policy=settings["policy"],
                              n_clicks=10 if n_clicks is None else n_clicks, seed=seed or 0,
                              tolerance_mm=settings["tolerance"], feed=settings["feed"])
    if given:
        raise InputError(f"--protocol {protocol} sets the clicks and the scoring; drop {', '.join(given)} (or drop "
                         "--protocol for an ad-hoc protocol)")
    preset = with_overrides(load_protocol(protocol), n_clicks=n_clicks, seed=seed)
    if not preset.interactive:
        raise InputError(f"--protocol {preset.name} gives no clicks (prompts: {', '.join(preset.prompts.kinds)}); "
                         "run it with `bench run`")
    return preset


def clicks(
    ctx: typer.Context,
    model: str = typer.Option(..., help=f"Model name: {', '.join(model_names())}."),
    images: Path = typer.Option(None, help="Folder of images (<case>_0000.nii.gz or <case>.nii.gz)."),
    refs: Path = typer.Option(None, "--refs", "--ref", help="Folder of reference label maps (<case>.nii.gz; --ref as "
                              "bench evaluate spells it)."),
    root: Path = typer.Option(None, help="Catalog-style dataset folder (nnU-Net raw, MSD; class map from the "
                                         "catalog or its dataset.json) instead of --images/--refs."),
    split: str = typer.Option("test", help="SAT's split of a catalog dataset (with --root): test, train or all."),
    manifest: Path = typer.Option(None, help="Case manifest (YAML/JSON, or SAT-DS .jsonl) under --root."),
    out: Path = typer.Option(..., help="Run folder: metrics.parquet, run.json, cases/ and prompts/."),
    classes: Path = typer.Option(None, help="JSON class map ({'liver': 1} or {'1': 'liver'} or dataset.json)."),
    labels: str = typer.Option(None, help="Inline class map, e.g. '1=liver,2=spleen'."),
    only: list[str] = typer.Option(None, "--class", help="Only this class (repeatable)."),
    protocol: str = typer.Option(None, help=f"A click preset ({', '.join(preset_names())}) or YAML file, instead "
                                            "of --policy/--first-click/--feed/--tolerance."),
    policy: str = typer.Option(None, help=f"Next-click policy: {', '.join(sorted(NEXT_CLICKS))} (default "
                                          f"{AD_HOC['policy']})."),
    first_click: str = typer.Option(None, help=f"First click: {' or '.join(FIRST_CLICKS)} (default "
                                               f"{AD_HOC['first_click']})."),
    n_clicks: int = typer.Option(None, help="Clicks per target (default 10, or the preset's)."),
    seed: int = typer.Option(None, help="Run seed; every prompt's generator is derived from it by hashing "
                                        "(default 0, or the preset's)."),
    feed: str = typer.Option(None, help="Give the model all clicks so far, or only the newest (a model that "
                                        "feeds back its previous logits). Default: all."),
    tolerance: float = typer.Option(None, help="NSD tolerance in mm (default 1)."),
    model_args: list[str] = typer.Option(None, "--model-args", help="Model option key=value (repeatable)."),
    checkpoint: Path = typer.Option(None, help="Official checkpoint file (or folder) to load."),
    trust_checkpoint: bool = typer.Option(False, help="Unpickle everything in the checkpoint (only for files "
                                                      "you trust: arbitrary code can run)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    dataset: str = typer.Option(None, help="Dataset name stored in the rows (default: catalog name or reference "
                                           "folder name)."),
    modality: str = typer.Option(None, help="CT, MRI or PET (default: the catalog's or the dataset.json's)."),
    run: str = typer.Option(None, help="Run name stored in the rows (default: output folder name)."),
    replay: Path = typer.Option(None, help="A previous `bench clicks` or `bench run` folder: give its stored "
                                           "clicks, in order, in place of the policy (same prompts for another "
                                           "model)."),
    time_limit: bool = typer.Option(False, help="Apply the preset's time limit (segfm-cvpr25: a case above 90 s of "
                                                "model time per class scores 0)."),
    overwrite: bool = typer.Option(False, help="Run every case again, dropping what --out holds."),
    workers: int = typer.Option(1, min=1, help="Processes running cases in parallel (Dask: local cluster size)."),
    executor: str = typer.Option("local", help="Where cases run: local (this process or a pool) or dask."),
    scheduler: str = typer.Option(None, help="Dask scheduler address (default: a local cluster of --workers)."),
) -> None:
    """Simulate clicks on every case and class: DSC/NSD after each click, resumable, prompts saved as JSON."""
    from bench.data.sources import resolve_sources, tolerance_unit

    chosen = chosen_protocol(protocol, n_clicks=n_clicks, seed=seed, policy=policy, first_click=first_click,
                             feed=feed, tolerance=tolerance)
    if time_limit and chosen.scoring.time_limit_s_per_class is None:
        raise InputError(f"--time-limit: protocol {chosen.name} sets no time limit")
    sources, label = resolve_sources(dataset=dataset, root=root, split=split, manifest=manifest, images=images,
                                     refs=refs, classes=classes, labels=labels,
                                     modality=modality)
    known = set().union(*(source.classes for source in sources))
    unknown = sorted(set(only or ()) - known)
    if unknown:
        raise InputError(f"--class {', '.join(unknown)}: not in the class map ({', '.join(sorted(known))})")
    from bench.cli.reporting import print_click_results, run_reported  # the engine, once the options are checked
    from bench.engine import store
    from bench.engine.provenance import command_line
    from bench.engine.runner import model_spec

    spec = model_spec(run=run or out.name, model=model, protocol=chosen, model_args=model_args,
                      checkpoint=checkpoint, trust_checkpoint=trust_checkpoint, device=device, only=only,
                      replay=replay)
    rows, done, skipped = run_reported(sources, out, spec, command=command_line(ctx), sources_label=label,
                                       write_masks=False,
                                       overwrite=overwrite, workers=workers, executor=executor,
                                       scheduler=scheduler)
    store.update_config(out, time_limit=time_limit)  # `bench tables --cost` re-applies it from the seconds
    typer.echo(f"simulated {done} case(s), {skipped} already stored in {out} (protocol {chosen.name}, device "
               f"{spec.device})")
    if rows.empty:
        asked = ", ".join(only) if only else ", ".join(dict.fromkeys(c for s in sources for c in s.classes))
        typer.secho(f"error: no reference of the {done + skipped} case(s) contains any requested class ({asked}), so "
                    "there was nothing to click on; check --class and the class map", fg="red", err=True)
        raise typer.Exit(1)
    print_click_results(rows, model, chosen, tolerance_unit(sources), time_limit=time_limit)
