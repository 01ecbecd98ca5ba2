"""Scoring folders of predictions against references: reading, checking, scoring, storing.

This is the side-effect edge around `protocols.case.evaluate_case`: it reads each case, checks that prediction and
reference share one geometry, scores it on the chosen grid, and stores the rows of the case atomically with the
fingerprints of its files, through the one driver (`bench.engine.driver.run_folder`): cases run here, in a local
pool or on Dask; a failing case (the driver's per-case errors) stores nothing and is reported at the end; a resumed
run re-scores cases whose files changed and drops cases whose prediction is gone.
"""

from __future__ import annotations

import time
from collections import Counter
from functools import partial
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from bench.engine import store
from bench.engine.driver import input_meta, run_folder
from bench.data.catalog.names import unified_class_name
from bench.data.io import InputError, Volume, check_same_geometry, read_binary_mask, read_label_map, volume_suffix
from bench.data.matching import CasePair, match_cases
from bench.engine.progress import CaseProgress
from bench.engine.provenance import provenance
from bench.engine.spec import RunSpec
from bench.data.catalog.orientation import SAT_ORIENTATION
from bench.data.sammed2d import mask_name, mask_volume
from protocols.case import ClassMap, SegmentationIndex, evaluate_case
from protocols.class_metrics import BASE_METRICS, DISTANCE_NAMES, LESION, metric_columns, parse_metrics
from protocols.lesions import MATCHERS
from protocols.metrics import EMPTY_POLICIES, EVALUATION_GRIDS, check_tolerance
from protocols.protocol import LesionMatching, evaluation_protocol


def evaluation_spec(*, run: str, model: str, predictions: Path, classes: ClassMap, grid: str = "native",
                    tolerance_mm: float = 1.0, empty_policy: str = "nan", distances: bool = False,
                    metrics: tuple[str, ...] = BASE_METRICS, ignore_label: int | None = None,
                    lesion_classes: tuple[str, ...] | None = None, connectivity: int | None = None,
                    matcher: str = "hungarian", match_iou: float = 0.5, instance_maps: bool = False) -> RunSpec:
    """The spec of scoring the prediction folder `predictions` (`bench evaluate`'s options, each checked with a
    one-line error naming it; `classes` is the class map they are checked against). Both empty: left out
    (`nan`), as nnU-Net and MONAI (ignore_empty); `sat` scores them 1. `lesion_classes` None: every class (with
    the lesion metric); `connectivity` None: full (26 in 3D, 8 in 2D); `instance_maps`: the files are instance
    label maps of one class, whose instances are the lesions."""
    try:
        check_tolerance(tolerance_mm)
    except ValueError as error:
        raise InputError(f"--tolerance: {error}") from None
    try:
        asked = parse_metrics([*metrics, *(DISTANCE_NAMES if distances else ()), *((LESION,) if instance_maps else ())])
    except ValueError as error:
        raise InputError(f"--metrics: {error}") from None
    if matcher not in MATCHERS:
        raise InputError(f"--matcher: choose from {', '.join(MATCHERS)}, got {matcher!r}")
    if not 0 < match_iou <= 1:
        raise InputError(f"--match-iou: an IoU in (0, 1], got {match_iou}")
    if connectivity not in (None, 4, 6, 8, 18, 26):
        raise InputError(f"--connectivity: 26, 18 or 6 in 3D, 8 or 4 in 2D, got {connectivity}")
    if instance_maps:
        if len(classes) != 1:
            raise InputError(f"--instance-maps: the files are instance maps of one class; the class map names "
                             f"{len(classes)} ({', '.join(classes)})")
        if connectivity is not None:
            raise InputError("--connectivity: lesions are connected components; with --instance-maps they are "
                             "the given instances")
        lesion_classes = None
    claimed = {int(v) for value in classes.values() for v in np.atleast_1d(value)}
    if ignore_label is not None and int(ignore_label) in claimed:
        raise InputError(f"--ignore-label {ignore_label}: that value is a class of the class map")
    if grid not in EVALUATION_GRIDS:
        raise InputError(f"--grid: choose from {', '.join(EVALUATION_GRIDS)}, got {grid!r}")
    if empty_policy not in EMPTY_POLICIES:
        raise InputError(f"--empty-policy: choose from {', '.join(EMPTY_POLICIES)}, got {empty_policy!r}")
    lesions = (LesionMatching(None if lesion_classes is None else tuple(lesion_classes), connectivity, matcher,
                              float(match_iou), instance_maps) if LESION in asked else None)
    protocol = evaluation_protocol(grid=grid, tolerance_mm=float(tolerance_mm), empty=empty_policy, metrics=asked,
                                   ignore_label=None if ignore_label is None else int(ignore_label), lesions=lesions)
    return RunSpec(run=run, model=model, protocol=protocol, predictions=str(Path(predictions).resolve()))


def scoring_grid(spec: RunSpec) -> str:
    """The grid `bench evaluate` scores on, as its rows name it: `native` or `satds`."""
    return "satds" if spec.protocol.space.grid == "satds" else "native"


def with_reference(pairs: list[CasePair], *, dataset: str, modality: str, classes: ClassMap,
                   orientation: str = SAT_ORIENTATION) -> list[CasePair]:
    """The pairs carrying what their reference set says of every case (as a `CaseSource` does)."""
    return [replace(pair, dataset=dataset, modality=modality, classes=classes, orientation=orientation)
            for pair in pairs]


def evaluation_config(spec: RunSpec, ref_dir: Path, *, dataset: str, modality: str, classes: ClassMap,
                      orientation: str = SAT_ORIENTATION) -> dict:
    """run.json of scoring a prediction folder: the spec, the reference folder and what the reference set says
    of its cases (as `with_reference` gives the pairs)."""
    return {**spec.as_config(), "ref_dir": str(Path(ref_dir).resolve()), "dataset": dataset, "modality": modality,
            "classes": {k: list(v) if not np.isscalar(v) else v for k, v in classes.items()},
            "orientation": orientation, "provenance": provenance()}


@dataclass
class RunOutcome:
    table: pd.DataFrame | None
    scored: int
    skipped: int
    unmatched_refs: list[str]
    errors: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    unscored: dict[str, int] = field(default_factory=dict)


def _mask_files(folder: Path, classes: ClassMap) -> dict[str, list[Path]]:
    """Mask files by the class they are for: a file named by the class map's own name (TotalSegmentator's
    `kidney_right.nii.gz`) or by the unified one (`right kidney.nii.gz`) is found under the unified name; other
    files keep their own name."""
    files: dict[str, list[Path]] = {}
    for file in sorted(folder.iterdir()):
        suffix = volume_suffix(file)
        if suffix and file.is_file():
            stem = file.name[: -len(suffix)]
            unified = unified_class_name(stem)
            files.setdefault(unified if stem not in classes and unified in classes else stem, []).append(file)
    return files


def _read_mask_folder(folder: Path, classes: ClassMap) -> tuple[dict[str, np.ndarray], list[Volume], list[str]]:
    """Per-class masks `<class>.<suffix>` for the requested classes; a union class with no file of its own is
    built from the single-label classes that make it up. Returns masks, volumes, and unrequested file names."""
    files = _mask_files(folder, classes)
    for name, found in files.items():
        if len(found) > 1:
            raise InputError(f"{folder}: class {name!r} has several mask files ({', '.join(f.name for f in found)})")
    single = {tuple(np.atleast_1d(v).tolist()): name for name, v in classes.items() if np.size(v) == 1}
    masks, volumes = {}, []
    for name, value in classes.items():
        if name in files:
            volume = read_binary_mask(files[name][0])
            masks[name], volumes = volume.array, volumes + [volume]
    for name, value in classes.items():
        if name in masks:
            continue
        parts = [single.get((int(v),)) for v in np.atleast_1d(value)]
        if np.size(value) < 2 or any(p is None or p not in masks for p in parts):
            raise InputError(f"{folder}: no mask file for class {name!r} (expected {name}.nii.gz, or the file named "
                             "as in the class map, e.g. TotalSegmentator's kidney_right.nii.gz)")
        masks[name] = np.logical_or.reduce([masks[p] for p in parts])
    unrequested = sorted(f[0].name for name, f in files.items() if name not in classes)
    return masks, volumes, unrequested


def _read_side(path: Path | tuple[Path, ...], classes: ClassMap) -> tuple[SegmentationIndex, list[Volume], list[str]]:
    """A label map file, a folder of per-class binary masks, or (2D) a tuple of mask PNGs in the order of
    `classes`; with the values or files no class claims."""
    if isinstance(path, tuple):
        volumes = [mask_volume(file) for file in path]
        return SegmentationIndex({name: v.array for name, v in zip(classes, volumes)}), volumes, []
    if volume_suffix(path) and path.is_file():
        volume = read_label_map(path)
        index = SegmentationIndex(volume.array)
        return index, [volume], [str(v) for v in index.unclaimed_labels(classes)]
    masks, volumes, unrequested = _read_mask_folder(path, classes)
    return SegmentationIndex(masks), volumes, unrequested


def _on_grid(pred: SegmentationIndex, ref: SegmentationIndex, volume: Volume, grid: str, orientation: str):
    """Both sides and the spacing on the scoring grid: native as read, or SAT-DS's resampled grid."""
    if grid == "native":
        return pred, ref, volume.spacing
    from bench.engine.scoring_grid import to_scoring_grid  # resampling code is needed only for this grid

    p, r, spacing = to_scoring_grid(pred.segmentation, ref.segmentation, volume.affine, volume.array.shape,
                                    grid, orientation)
    return SegmentationIndex(p), SegmentationIndex(r), spacing


def score_case(pair: CasePair, spec: RunSpec) -> tuple[pd.DataFrame, dict]:
    """Rows (one per class) for one case, and its metadata (file fingerprints, what was not scored); raises
    InputError naming the files on any problem."""
    start = time.perf_counter()
    scoring, grid = spec.protocol.scoring, scoring_grid(spec)
    lesions = scoring.lesions or LesionMatching()
    meta = input_meta(_inputs(pair))
    classes = ({mask_name(path, pair.case_id): 1 for path in pair.ref} if isinstance(pair.ref, tuple)
               else pair.classes)  # a 2D case scores each of its own masks (SAM-Med2D's test.py)
    ref, ref_volumes, ref_unscored = _read_side(pair.ref, classes)
    pred, pred_volumes, pred_unscored = _read_side(pair.pred, classes)
    for volume in ref_volumes[1:] + pred_volumes:
        check_same_geometry(ref_volumes[0], volume)
    pred, ref, spacing = _on_grid(pred, ref, ref_volumes[0], grid, pair.orientation)
    try:
        scores = evaluate_case(pred, ref, spacing, classes, scoring.tolerance_mm, scoring.empty,
                               metrics=scoring.metrics, ignore_label=scoring.ignore_label,
                               lesion_classes=lesions.classes, lesion_options={
                                   "connectivity": lesions.connectivity, "matcher": lesions.matcher,
                                   "threshold": lesions.match_iou}, instance_maps=lesions.instance_maps)
    except ValueError as error:
        raise InputError(f"case {pair.case_id} ({pair.pred} vs {pair.ref}): {error}") from error
    seconds = time.perf_counter() - start
    rows = pd.DataFrame([score.as_row() for score in scores])
    rows.insert(0, "case_id", pair.case_id)
    rows["run"], rows["model"], rows["dataset"], rows["modality"] = spec.run, spec.model, pair.dataset, pair.modality
    rows["grid"] = grid
    rows["tolerance_mm"] = scoring.tolerance_mm
    rows["spacing"] = "x".join(f"{s:g}" for s in spacing)
    rows["seconds"] = seconds
    ignored = str(scoring.ignore_label)  # the ignore label is left out on purpose, not unscored
    if lesions.instance_maps:  # every non-zero value is a lesion of the one class
        pred_unscored, ref_unscored = [], []
    meta["unscored"] = {"pred": pred_unscored, "ref": [name for name in ref_unscored if name != ignored]}
    if LESION in scoring.metrics:
        meta["lesions"] = [{"class_name": score.class_name, **vars(lesion)} for score in scores
                           for lesion in score.lesions]
    # reindexed: in a case without a lesion class the lesion columns are NaN, not missing
    return rows.reindex(columns=store.METRIC_COLUMNS + metric_columns(scoring.metrics)), meta


def _score_and_store(pair: CasePair, *, spec: RunSpec, out_dir: Path) -> None:
    rows, meta = score_case(pair, spec)
    store.write_case(out_dir, pair.case_id, rows, meta)


def _inputs(pair: CasePair) -> dict:
    """The input files a stored pair's resume check fingerprints."""
    return {"pred": pair.pred, "ref": pair.ref}


def _case_id(pair: CasePair) -> str:
    return pair.case_id


def _unscored_summary(stored: dict[str, dict]) -> dict[str, int]:
    """'pred label 3' / 'ref mask bladder.nii.gz' -> number of cases where it was present but not scored."""
    counts: Counter[str] = Counter()
    for meta in stored.values():
        for side, names in meta.get("unscored", {}).items():
            counts.update(f"{side} {'mask' if not name.isdigit() else 'label'} {name}" for name in names)
    return dict(sorted(counts.items()))


def check_out_dir(out_dir: Path, *inputs: Path) -> None:
    """--out must be a folder (or not exist yet) and must not lie inside an input folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: exists and is not a folder")
    for folder in inputs:
        if folder is not None and out_dir.resolve().is_relative_to(folder.resolve()):
            raise InputError(f"--out {out_dir} is inside the input folder {folder}; choose a folder outside it")


def evaluate_pairs(pairs: list[CasePair], unmatched: list[str], out_dir: Path, spec: RunSpec,
                   config: dict, *, workers: int = 1, overwrite: bool = False, progress: bool = True,
                   executor: str = "local", scheduler: str | None = None) -> RunOutcome:
    """Score every pair whose rows are not stored with unchanged inputs; drop stored cases no longer predicted;
    write metrics.parquet if no case failed. A complete run with nothing to do writes nothing (read-only runs
    can be re-run)."""
    bar = CaseProgress(f"scoring {spec.model}", enabled=progress)
    try:
        outcome = run_folder(pairs, out_dir, config, partial(_score_and_store, spec=spec, out_dir=out_dir),
                             _case_id, _inputs, overwrite=overwrite, on_case=bar, executor=executor,
                             workers=workers, scheduler=scheduler)
    finally:
        bar.close()
    if not outcome.wrote:
        unscored = store.read_config(out_dir).get("unscored_labels", {})
        return RunOutcome(store.read_metrics([out_dir]), 0, len(pairs), unmatched, {}, [], unscored)
    unscored = _unscored_summary(store.stored_cases(out_dir))
    store.update_config(out_dir, unscored_labels=unscored)
    table = None if outcome.errors else store.consolidate(out_dir)
    if table is not None and LESION in spec.protocol.scoring.metrics:
        write_lesion_table(out_dir)
    return RunOutcome(table, len(outcome.ran) - len(outcome.errors), len(pairs) - len(outcome.ran), unmatched,
                      outcome.errors, outcome.dropped, unscored)


LESIONS_FILE = "lesions.parquet"
LESION_TABLE_COLUMNS = ["case_id", "class_name", "side", "lesion", "voxels", "volume_mm3", "size_bin", "partner",
                        "iou", "dsc", "nsd"]


def write_lesion_table(out_dir: Path) -> pd.DataFrame:
    """`lesions.parquet`: one row per lesion (case, class, side, lesion number), from the stored cases."""
    records = [{"case_id": case_id, **lesion} for case_id, meta in sorted(store.stored_cases(out_dir).items())
               for lesion in meta.get("lesions", [])]
    table = pd.DataFrame(records, columns=LESION_TABLE_COLUMNS)
    temporary = out_dir / f".{LESIONS_FILE}.tmp"
    table.to_parquet(temporary, index=False)
    temporary.replace(out_dir / LESIONS_FILE)
    return table


def evaluate_folders(ref_dir: Path, out_dir: Path, spec: RunSpec, *, dataset: str, modality: str,
                     classes: ClassMap, orientation: str = SAT_ORIENTATION, **options) -> RunOutcome:
    """`evaluate_pairs` (same options) for the spec's prediction folder against a reference folder (matched by
    file name) of one dataset, modality and class map."""
    reference = {"dataset": dataset, "modality": modality, "classes": classes, "orientation": orientation}
    pairs, unmatched = match_cases(Path(spec.predictions), ref_dir)
    return evaluate_pairs(with_reference(pairs, **reference), unmatched, out_dir, spec,
                          evaluation_config(spec, ref_dir, **reference), **options)


def summary_numbers(table: pd.DataFrame) -> dict:
    """What run.json records of a run's result: the mean over classes of each class's mean DSC and NSD (final
    click for click rows), and what it rests on (cases, classes, rows empty on both sides)."""
    if "click" in table.columns and table["click"].notna().any():
        table = table.sort_values("click", kind="stable").drop_duplicates(["case_id", "class_name"], keep="last")
    summary = class_summary(table)
    return {"dsc": float(summary["dsc"].mean()), "nsd": float(summary["nsd"].mean()),
            "cases": int(table["case_id"].nunique()), "classes": int(len(summary)),
            "both_empty": int(summary["both_empty"].sum())}


def both_empty_rows(table: pd.DataFrame) -> pd.Series:
    """Whether each row is empty in both reference and prediction (its stored flags)."""
    return table["ref_empty"].eq(True) & table["pred_empty"].eq(True)


def class_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean DSC and NSD per class over cases (NaN scores, e.g. both-empty rows under the "nan" policy, are left
    out), with the number of cases scored and of cases empty in both reference and prediction."""
    grouped = table.groupby("class_name", sort=False)
    order = grouped["dsc"].mean().index  # the classes in the order the run scored them
    return pd.DataFrame({
        "dsc": grouped["dsc"].mean(),
        "nsd": grouped["nsd"].mean(),
        "cases": table.dropna(subset=["dsc"]).groupby("class_name", sort=False)["case_id"].nunique(),
        "both_empty": both_empty_rows(table).groupby(table["class_name"], sort=False).sum(),
    }).reindex(order).fillna({"cases": 0}).astype({"cases": int, "both_empty": int})
