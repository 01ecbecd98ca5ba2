"""Scoring folders of predictions against folders of references: reading, checking, scoring, storing.

This is the side-effect edge around `protocols.case.evaluate_case`: it reads each case, checks that
prediction and reference share one geometry, scores it, and stores the rows of the case atomically. Cases run
in a local process pool; a failing case stores nothing and is reported at the end.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from bench import store
from bench.cases import CasePair, match_cases
from bench.io import InputError, Volume, check_same_geometry, read_binary_mask, read_label_map, volume_suffix
from protocols.case import ClassMap, evaluate_case


@dataclass(frozen=True)
class RunSettings:
    """Everything that determines the numbers of a run (stored in run.json; resuming requires equality)."""

    run: str
    model: str
    dataset: str
    modality: str
    classes: ClassMap
    tolerance_mm: float = 1.0
    empty_policy: str = "sat"

    def as_config(self, pred_dir: Path, ref_dir: Path) -> dict:
        return {
            "run": self.run, "model": self.model, "dataset": self.dataset, "modality": self.modality,
            "classes": dict(self.classes), "tolerance_mm": self.tolerance_mm, "empty_policy": self.empty_policy,
            "pred_dir": str(pred_dir.resolve()), "ref_dir": str(ref_dir.resolve()),
        }


@dataclass
class RunOutcome:
    table: pd.DataFrame | None
    scored: int
    skipped: int
    unmatched_refs: list[str]
    errors: dict[str, str] = field(default_factory=dict)


def _read_side(path: Path, classes: ClassMap) -> tuple[np.ndarray | dict[str, np.ndarray], list[Volume]]:
    """A label map file, or a folder of per-class binary masks named `<class>.<suffix>`."""
    if volume_suffix(path):
        volume = read_label_map(path)
        return volume.array, [volume]
    masks, volumes = {}, []
    for name in classes:
        files = [f for f in path.iterdir() if volume_suffix(f) and f.name[: -len(volume_suffix(f))] == name]
        if not files:
            raise InputError(f"{path}: no mask file for class {name!r} (expected {name}.nii.gz)")
        volume = read_binary_mask(files[0])
        masks[name] = volume.array
        volumes.append(volume)
    return masks, volumes


def score_case(pair: CasePair, settings: RunSettings) -> pd.DataFrame:
    """Rows (one per class) for one case; raises InputError naming the files on any problem."""
    start = time.perf_counter()
    ref, ref_volumes = _read_side(pair.ref, settings.classes)
    pred, pred_volumes = _read_side(pair.pred, settings.classes)
    for volume in ref_volumes[1:] + pred_volumes:
        check_same_geometry(ref_volumes[0], volume)
    spacing = ref_volumes[0].spacing
    try:
        scores = evaluate_case(pred, ref, spacing, settings.classes, settings.tolerance_mm, settings.empty_policy)
    except ValueError as error:
        raise InputError(f"case {pair.case_id} ({pair.pred} vs {pair.ref}): {error}") from error
    seconds = time.perf_counter() - start
    rows = pd.DataFrame([vars(score) for score in scores])
    rows.insert(0, "case_id", pair.case_id)
    for column in ("run", "model", "dataset", "modality"):
        rows[column] = getattr(settings, column)
    rows["tolerance_mm"] = settings.tolerance_mm
    rows["spacing"] = "x".join(f"{s:g}" for s in spacing)
    rows["seconds"] = seconds
    return rows[store.METRIC_COLUMNS]


def _score_and_store(pair: CasePair, settings: RunSettings, out_dir: Path) -> None:
    store.write_case(out_dir, pair.case_id, score_case(pair, settings))


def evaluate_folders(
    pred_dir: Path, ref_dir: Path, out_dir: Path, settings: RunSettings, workers: int = 1, progress: bool = True
) -> RunOutcome:
    """Score every predicted case not yet stored in `out_dir`; write metrics.parquet if no case failed."""
    pairs, unmatched = match_cases(pred_dir, ref_dir)
    store.open_run(out_dir, settings.as_config(pred_dir, ref_dir))
    todo = [pair for pair in pairs if not store.is_done(out_dir, pair.case_id)]
    errors: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc=f"scoring {settings.model}", unit="case", disable=not progress or None)
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_score_and_store, pair, settings, out_dir): pair for pair in todo}
            for future in as_completed(futures):
                error = future.exception()
                if isinstance(error, InputError):
                    errors[futures[future].case_id] = str(error)
                elif error is not None:
                    raise error
                bar.update()
    else:
        for pair in todo:
            try:
                _score_and_store(pair, settings, out_dir)
            except InputError as error:
                errors[pair.case_id] = str(error)
            bar.update()
    bar.close()
    table = None if errors else store.consolidate(out_dir)
    return RunOutcome(table, len(todo) - len(errors), len(pairs) - len(todo), unmatched, errors)


def class_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean DSC and NSD per class over cases (NaN scores are excluded), with the number of cases."""
    grouped = table.groupby("class_name", sort=False)
    return pd.DataFrame({
        "dsc": grouped["dsc"].mean(),
        "nsd": grouped["nsd"].mean(),
        "cases": grouped["case_id"].nunique(),
    })
