"""Pictures of the segmentations: for one run, the best, median and worst case of each chosen class (or one given
case), three orthogonal slices through the structure with the reference and every run's contour, one colour per
run, as PNG. Files come from each run.json's ``pred_dir``/``ref_dir``; what cannot be found is skipped with a note.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.io import (
    InputError,
    Volume,
    read_binary_mask,
    read_label_map,
    read_volume,
    volume_suffix,
)
from bench.data.matching import case_id_for, list_cases
from bench.views.report.figures import COLOURS, save
from bench.views.report.page import anchor, picture
from bench.views.runs import Runs
from protocols.label_maps import class_mask

_DIR = "figures/pictures"
_MARGIN = 12  # voxels of context around the structure
_IMAGE_DIRS = ("images", "imagesTs", "imagesTr")


def chosen_cases(rows: pd.DataFrame, case: str | None = None) -> list[tuple[str, str]]:
    """(label, case_id) of the best, median and worst case by DSC (distinct cases, ties by case id), or the given
    case. ``rows``: one run's rows of one class. A case empty in both reference and prediction is never picked
    (it has nothing to show, and SAT's rule would make it the "best")."""
    both_empty = rows["ref_empty"].eq(True) & rows["pred_empty"].eq(True) if "ref_empty" in rows else False
    scored = rows[~both_empty].dropna(subset=["dsc"]).sort_values(["dsc", "case_id"], ascending=[False, True])
    if case is not None:
        return [("case", case)] if case in set(rows["case_id"]) else []
    if scored.empty:
        return []
    picks = {"best": 0, "median": (len(scored) - 1) // 2, "worst": len(scored) - 1}
    chosen, seen = [], set()
    for label, position in picks.items():
        case_id = scored["case_id"].iloc[position]
        if case_id not in seen:
            chosen.append((f"{label} (DSC {100 * scored['dsc'].iloc[position]:.1f})", case_id))
            seen.add(case_id)
    return chosen


@lru_cache(maxsize=8)
def _volume(path: Path, labels: bool) -> Volume:
    return read_label_map(path) if labels else read_volume(path)


def _mask(path: Path, class_name: str, value) -> np.ndarray:
    """A class's mask from a label map file (its label value or values) or a per-class mask folder."""
    if path.is_dir():
        files = [f for f in path.iterdir() if volume_suffix(f) and f.name[: -len(volume_suffix(f))] == class_name]
        if not files:
            raise InputError(f"{path}: no mask file for class {class_name!r}")
        return read_binary_mask(files[0]).array.astype(bool)
    return class_mask(_volume(path, True).array, value)


def _find(folder: Path, case_id: str) -> Path | None:
    """The entry of ``folder`` that names the case (itself or with nnU-Net's ``_0000`` channel tag)."""
    try:
        entries = list_cases(folder) if folder.is_dir() else {}
    except InputError:
        return None
    return next((path for name, path in entries.items() if case_id_for(name, {case_id: path}) == case_id), None)


def _image(config: dict, case_id: str) -> Volume | None:
    folders = [Path(config["images"])] if config.get("images") else []
    ref_dir = Path(config["ref_dir"])
    folders += [ref_dir.parent / name for name in _IMAGE_DIRS]
    for folder in folders:
        found = _find(folder, case_id)
        if found is not None and found.is_file():
            try:
                return _volume(found, False)
            except InputError:
                return None
    return None


def _slices(mask: np.ndarray) -> tuple[tuple[slice, ...], tuple[int, ...]]:
    """The crop around a mask (with margin) and the voxel through its centre of mass."""
    points = np.argwhere(mask)
    centre = tuple(round(c) for c in points.mean(axis=0))
    low = np.maximum(points.min(axis=0) - _MARGIN, 0)
    high = np.minimum(points.max(axis=0) + _MARGIN + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high)), centre


CT_WINDOW = (-160.0, 240.0)  # soft-tissue window (level 40, width 400 HU)


def render_case(
    reference: np.ndarray, predictions: dict[str, np.ndarray], spacing: Sequence[float], image: np.ndarray | None,
    title: str, window: tuple[float, float] | None = None,
):
    """A figure of three orthogonal slices (axial, coronal, sagittal in array axes 2, 1, 0) through the structure:
    the image (in ``window``, else its 1-99th percentiles; the reference filled in grey without an image), the
    reference contour in black, each run's in its colour."""
    import matplotlib.pyplot as plt

    focus = reference if reference.any() else next((p for p in predictions.values() if p.any()), reference)
    if not focus.any():
        focus = np.ones_like(reference)
    crop, centre = _slices(focus)
    figure, axes = plt.subplots(1, 3, figsize=(9.0, 3.4), layout="constrained")
    views = (("axial", 2), ("coronal", 1), ("sagittal", 0))
    for axis_plot, (name, axis) in zip(axes, views):
        index = [crop[0], crop[1], crop[2]]
        index[axis] = centre[axis]
        plane = tuple(index)
        shown = [a for a in range(3) if a != axis]
        aspect = spacing[shown[1]] / spacing[shown[0]]
        background = image[plane] if image is not None else reference[plane].astype(float) * 0.3
        low, high = window if window and image is not None else np.percentile(background, [1, 99])
        axis_plot.imshow(background.T, cmap="gray", origin="lower", aspect=aspect, interpolation="nearest",
                         vmin=low, vmax=max(high, low + 1e-6))
        if reference[plane].any():
            axis_plot.contour(reference[plane].T.astype(float), levels=[0.5], colors="black", linewidths=1.6)
        for i, (run, mask) in enumerate(predictions.items()):
            if mask[plane].any():
                axis_plot.contour(mask[plane].T.astype(float), levels=[0.5], colors=COLOURS[i % len(COLOURS)],
                                  linewidths=1.0)
        axis_plot.set_title(name, fontsize=9)
        axis_plot.set_axis_off()
    handles = [plt.Line2D([], [], color="black", label="reference")]
    handles += [plt.Line2D([], [], color=COLOURS[i % len(COLOURS)], label=run) for i, run in enumerate(predictions)]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=8)
    figure.suptitle(title, fontsize=9)
    return figure


def picture_sections(
    runs: Runs, out_dir: Path, n_classes: int = 6, case: str | None = None
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(the pictures section for the first run (classes with the lowest mean DSC first), notes on what was
    skipped, the class keys pictured)."""
    configs = {config.get("run"): config for config in runs.configs.values() if config}
    rows = runs.rows
    first = rows["run"].iloc[0]
    config = configs.get(first, {})
    if not config.get("pred_dir") or not config.get("ref_dir"):
        return [], [f"pictures skipped: {first} has no run.json with pred_dir and ref_dir"], []
    pred_dir, ref_dir = Path(config["pred_dir"]), Path(config["ref_dir"])
    if not pred_dir.is_dir() or not ref_dir.is_dir():
        return [], [f"pictures skipped: {pred_dir} or {ref_dir} is not available on this machine"], []
    own = rows[rows["run"] == first]
    order = own.groupby("key")["dsc"].mean().sort_values(kind="stable").index[:n_classes]
    others = [r for r in dict.fromkeys(rows["run"]) if r != first and configs.get(r, {}).get("pred_dir")]
    parts, skipped, pictured = [], [], []
    for key in order:
        class_rows = own[own["key"] == key]
        class_name = class_rows["class_name"].iloc[0]
        pictures = []
        for label, case_id in chosen_cases(class_rows, case):
            try:
                pictures.append(_picture(configs, [first, *others], class_name, key, case_id, label, out_dir))
            except (InputError, KeyError, OSError, ValueError) as error:
                skipped.append(f"{key} in {case_id}: {error}")
        if pictures:
            pictured.append(key)
            parts.append(f'<h3 id="{anchor("pictures", key)}">{html.escape(key)}</h3>'
                         f'<div class="pictures">{"".join(pictures)}</div>')
    notes = [f"{len(skipped)} picture(s) skipped, e.g. {skipped[0]}"] if skipped else []
    if not parts:
        return [], notes or ["pictures skipped: no case could be drawn"], []
    heading = f"Pictures of the segmentations ({first}: best, median and worst case per class)"
    notes.append(f"pictures: {len(parts)} classes of {first} with the lowest mean DSC; reference in black, runs in "
                 "colour; more with --pictures N, one case with --picture-case ID")
    return [(heading, "".join(parts))], notes, pictured


def _picture(configs, run_names, class_name, key, case_id, label, out_dir: Path) -> str:
    config = configs[run_names[0]]
    ref_path = _find(Path(config["ref_dir"]), case_id)
    if ref_path is None:
        raise InputError(f"no reference file for case {case_id!r} in {config['ref_dir']}")
    value = config.get("classes", {}).get(class_name)
    reference = _mask(ref_path, class_name, value)
    predictions = {}
    for run in run_names:
        pred_path = _find(Path(configs[run]["pred_dir"]), case_id)
        if pred_path is None:
            continue
        mask = _mask(pred_path, class_name, configs[run].get("classes", {}).get(class_name, value))
        if mask.shape == reference.shape:
            predictions[run] = mask
    image = _image(config, case_id)
    volume = _volume(ref_path, True) if ref_path.is_file() else None
    spacing = volume.spacing if volume is not None else (1.0, 1.0, 1.0)
    if image is not None and image.array.shape != reference.shape:
        image = None
    stem = Path(out_dir) / _DIR / f"{_safe(key)}__{_safe(case_id)}"
    figure = render_case(reference, predictions, spacing, None if image is None else image.array,
                         f"{key}, {case_id}: {label}", CT_WINDOW if str(config.get("modality", "")).upper() == "CT" else None)
    save(figure, stem, formats=("png",))
    return picture(f"{_DIR}/{stem.name}.png", f"{label}: {case_id}")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))
