"""`bench clicks`: simulated interactive segmentation, DSC/NSD after every click, resumable.

For every case (image `<case>_0000.nii.gz` or `<case>.nii.gz` in --images, label map `<case>.nii.gz` in
--refs; or the cases of a catalog-style dataset under --root, with its class map) and every class present in
the reference, the interactive loop runs N clicks. One row per (case,
class, click) goes to the results store (the evaluation columns plus prompt_policy, first_click, click,
seed); the clicks themselves go to `prompts/<case>/<class>.json` with the seed that made them. The same
seed gives every model the same first click; `--replay RUN` gives a model the stored clicks of another run
in order (after them, the policy takes over), and replays a run exactly for the same model.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from tqdm import tqdm

from bench import store
from bench.catalog.cases import CaseSource
from bench.interactive import run_clicks
from bench.io import InputError, check_same_geometry, read_label_map, read_volume
from bench.runner import (
    input_meta,
    is_current,
    prompt_record_path,
    replayed_clicks,
    resolve_sources,
    scorer,
)
from bench.spaces import model_modality
from models.base import Image, Model
from models.registry import get_model, model_names
from protocols.case import ClassMap, class_mask
from protocols.interactive import summarise_clicks
from protocols.prompts import clicks_to_json, prompt_rng
from protocols.prompts_clicks import FIRST_CLICKS, NEXT_CLICKS

CLICK_COLUMNS = store.METRIC_COLUMNS + ["prompt_policy", "first_click", "click", "seed"]


@dataclass(frozen=True, kw_only=True)
class ClickSettings:
    """Everything that determines the numbers of a click run (stored in run.json; resuming requires equality)."""

    run: str
    model: str
    dataset: str
    modality: str
    classes: ClassMap
    policy: str = "center_largest_error"
    first_click: str = "center"
    n_clicks: int = 10
    seed: int = 0
    tolerance_mm: float = 1.0
    replay: str | None = None

    def __post_init__(self):
        if self.policy not in NEXT_CLICKS:
            raise InputError(f"unknown --policy {self.policy!r}; choose from {', '.join(sorted(NEXT_CLICKS))}")
        if self.first_click not in FIRST_CLICKS:
            raise InputError(f"unknown --first-click {self.first_click!r}; choose from {', '.join(FIRST_CLICKS)}")
        if self.n_clicks < 1:
            raise InputError(f"--n-clicks must be >= 1, got {self.n_clicks}")

    def as_config(self, sources: str) -> dict:
        return dict(asdict(self), command="clicks", sources=sources)


def simulate_case(case_id: str, image_path: Path, ref_path: Path, model: Model,
                  settings: ClickSettings) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Click rows of one case and the prompt record of each class; classes absent from the reference are
    skipped (a click needs a target)."""
    volume, labels = read_volume(image_path), read_label_map(ref_path)
    check_same_geometry(volume, labels)
    image = Image(array=volume.array, spacing=tuple(volume.spacing), affine=volume.affine,
                  modality=model_modality(settings.modality))
    constants = {
        "run": settings.run, "model": settings.model, "dataset": settings.dataset, "modality": settings.modality,
        "case_id": case_id, "tolerance_mm": settings.tolerance_mm,
        "spacing": "x".join(f"{s:g}" for s in volume.spacing),
        "prompt_policy": settings.policy, "first_click": settings.first_click, "seed": settings.seed,
    }
    rows, records = [], {}
    for name, value in settings.classes.items():
        reference = class_mask(labels.array, value)
        if not reference.any():
            continue
        steps = run_clicks(
            model=model, image=image, reference=reference, name=name, n_clicks=settings.n_clicks,
            score=scorer(reference, volume.spacing, tolerance_mm=settings.tolerance_mm),
            policy_for=lambda k: settings.first_click if k == 1 else settings.policy,
            rng_for=lambda k, name=name: prompt_rng(settings.seed, case_id, name, _policy_of_click(settings, k), k),
            replay=replayed_clicks(settings.replay, case_id, name),
        )
        ref_voxels = int(np.count_nonzero(reference))
        for step in steps:
            rows.append({**constants, "class_name": name, "dsc": step.dsc, "nsd": step.nsd, "ref_empty": False,
                         "pred_empty": step.pred_voxels == 0, "ref_voxels": ref_voxels,
                         "pred_voxels": step.pred_voxels, "seconds": step.seconds, "click": step.click_index})
        records[name] = clicks_to_json(case_id=case_id, class_name=name, policy=settings.policy,
                                       first_click=settings.first_click, seed=settings.seed,
                                       clicks=[step.click for step in steps if step.click is not None],
                                       replayed_from=settings.replay)
    return pd.DataFrame(rows, columns=CLICK_COLUMNS), records


def _policy_of_click(settings: ClickSettings, k: int) -> str:
    """The policy that makes click k; it names the click's generator, so the first click of a case does not
    change with the next-click policy and runs of different policies start from the same click."""
    return f"first:{settings.first_click}" if k == 1 else settings.policy


def _write_prompts(out: Path, case_id: str, records: dict[str, dict]) -> None:
    for name, record in records.items():
        path = prompt_record_path(out, case_id, name)
        store.write_json(path, record)


def simulate_sources(sources: list[CaseSource], out: Path, settings: ClickSettings, *, sources_label: str,
                     progress: bool = True) -> tuple[pd.DataFrame, int, int]:
    """Run every case not stored with unchanged inputs in `out` (`bench run`'s resume rules); returns (all rows,
    cases run, cases kept)."""
    if not sources:
        raise InputError("no cases found")
    model = get_model(settings.model)
    store.open_run(out, settings.as_config(sources_label))
    stored = store.stored_cases(out)
    for case_id in sorted(set(stored) - {source.case_id for source in sources}):
        store.drop_case(out, case_id)
    todo = [source for source in sources if not is_current(source, stored.get(source.case_id))]
    for source in tqdm(todo, desc=f"clicks {settings.model}", unit="case", disable=not progress or None):
        start = time.perf_counter()
        rows, records = simulate_case(source.case_id, source.image, source.label, model, settings)
        _write_prompts(out, source.case_id, records)
        store.write_case(out, source.case_id, rows, input_meta(source))
        if progress:
            tqdm.write(f"{source.case_id}: {len(records)} classes in {time.perf_counter() - start:.1f} s")
    return store.consolidate(out), len(todo), len(sources) - len(todo)


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
    tolerance: float = typer.Option(1.0, help="NSD tolerance in mm."),
    dataset: str = typer.Option(None, help="Dataset name stored in the rows (default: catalog name or reference "
                                           "folder name)."),
    modality: str = typer.Option(None, help="CT, MRI or PET (default: the catalog's or the dataset.json's; CT "
                                            "for --images/--refs)."),
    run: str = typer.Option(None, help="Run name stored in the rows (default: output folder name)."),
    replay: Path = typer.Option(None, help="A previous `bench clicks` run folder: give its stored clicks, in "
                                           "order, in place of the policy (same prompts for another model)."),
) -> None:
    """Simulate clicks on every case and class: DSC/NSD after each click, resumable, prompts saved as JSON."""
    try:
        sources, label = resolve_sources(dataset=dataset, root=root, split=split, images=images, refs=refs,
                                         classes=classes, labels=labels,
                                         modality=modality or ("CT" if root is None else None))
        class_map = dict(sources[0].classes) if sources else {}
        unknown = sorted(set(only or ()) - set(class_map))
        if unknown:
            raise InputError(f"--class {', '.join(unknown)}: not in the class map ({', '.join(class_map)})")
        settings = ClickSettings(
            run=run or out.name, model=model, dataset=sources[0].dataset or dataset or "",
            modality=sources[0].modality, classes={k: v for k, v in class_map.items() if not only or k in only},
            policy=policy, first_click=first_click, n_clicks=n_clicks, seed=seed, tolerance_mm=tolerance,
            replay=str(replay.resolve()) if replay else None,
        )
        rows, done, skipped = simulate_sources(sources, out, settings, sources_label=label)
    except (InputError, ValueError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"simulated {done} case(s), {skipped} already stored in {out}")
    print_click_summary(rows, f"{model}: mean over cases of DSC/NSD after k clicks ({first_click} first click, "
                              f"then {policy}; NSD tolerance {tolerance:g} mm)")
